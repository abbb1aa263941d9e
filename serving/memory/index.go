package memory

import (
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/txpipe/txpipe"
)

// interner stores each distinct string once; rows hold its number. Id 0
// is the empty string. It holds the strings rows share: merchants (looked
// up by name), transaction types, statuses, decline reasons.
type interner struct {
	ids  map[string]uint32
	vals []string
}

func newInterner() *interner { return &interner{ids: map[string]uint32{"": 0}, vals: []string{""}} }

func (in *interner) id(s string) uint32 {
	if id, ok := in.ids[s]; ok {
		return id
	}
	id := uint32(len(in.vals))
	s = strings.Clone(s) // do not keep the caller's larger buffer alive
	in.ids[s] = id
	in.vals = append(in.vals, s)
	return id
}

// lookup returns the id of s, and whether it was ever stored.
func (in *interner) lookup(s string) (uint32, bool) {
	id, ok := in.ids[s]
	return id, ok
}

func (in *interner) str(id uint32) string { return in.vals[id] }

// arena stores text that is mostly unique to a row (locations, related
// ids) in 1 MiB chunks: no map, no string header per row, and rows that
// refer to it by number hold no pointer for the garbage collector to
// scan.
type arena struct {
	chunks [][]byte
}

const (
	chunkSize = 1 << 20
	maxText   = 1<<20 - 1 // longer text is cut (no column is near it)
)

// textRef locates text in an arena: chunk (24 bits), offset (20 bits),
// length (20 bits). 0 is the empty text.
type textRef uint64

func (a *arena) add(s string) textRef {
	if s == "" {
		return 0
	}
	if len(s) > maxText {
		s = s[:maxText]
	}
	n := len(a.chunks)
	if n == 0 || cap(a.chunks[n-1])-len(a.chunks[n-1]) < len(s) {
		a.chunks = append(a.chunks, make([]byte, 0, max(chunkSize, len(s))))
		n++
	}
	c := a.chunks[n-1]
	off := len(c)
	a.chunks[n-1] = append(c, s...)
	return textRef(uint64(n-1)<<40 | uint64(off)<<20 | uint64(len(s)))
}

// str returns a copy of the text (the arena's memory is never handed out).
func (a *arena) str(r textRef) string {
	if r == 0 {
		return ""
	}
	chunk, off, n := uint64(r)>>40, uint64(r)>>20&(1<<20-1), uint64(r)&(1<<20-1)
	return string(a.chunks[chunk][off : off+n])
}

// row is a transaction of a view in 80 bytes without pointers; its text is
// in its view's interners and arena.
type row struct {
	id, card        int64
	ts              int64 // Unix seconds (transaction times are whole seconds, UTC)
	amount, balance txpipe.Money
	off             int64 // offset on the validated topic (-1: not known)
	location        textRef
	related         textRef
	merchant        uint32
	typ             uint16
	status          uint16
	reason          uint16
	part            int32
}

// less orders rows as txpipe.TxKey does.
func (r *row) less(o *row) bool {
	if r.ts != o.ts {
		return r.ts < o.ts
	}
	return r.id < o.id
}

// view is a set of transaction rows, their text, and their order by card
// and by merchant (indexes into rows, each sorted by timestamp and id).
type view struct {
	rows       []row
	strs       *interner
	small      *interner // types, statuses, decline reasons (a few each)
	text       *arena
	byCard     map[int64][]int32
	byMerchant map[uint32][]int32
}

func newView() *view {
	return &view{strs: newInterner(), small: newInterner(), text: &arena{}, byCard: map[int64][]int32{}, byMerchant: map[uint32][]int32{}}
}

// add stores a result. Rows mostly come in time order: each list is
// searched from its end.
func (v *view) add(r *txpipe.Result) {
	v.push(row{id: r.ID, card: r.CardID, ts: r.Timestamp.Unix(), amount: r.Amount, balance: r.PendingBalance,
		off: r.Pos.Offset, part: r.Pos.Partition, merchant: v.strs.id(r.Merchant), location: v.text.add(r.Location),
		related: v.text.add(r.RelatedID), typ: v.smallID(r.Type), status: v.smallID(string(r.Status)),
		reason: v.smallID(string(r.DeclineReason))})
}

// smallID numbers a type, status or reason (a handful of each); past
// 65,535 distinct values the rest read as "(other)".
func (v *view) smallID(s string) uint16 {
	if id, ok := v.small.lookup(s); ok {
		return uint16(id)
	}
	if len(v.small.vals) > 65534 {
		return uint16(v.small.id("(other)"))
	}
	return uint16(v.small.id(s))
}

func (v *view) push(r row) {
	i := int32(len(v.rows))
	v.rows = append(v.rows, r)
	v.byCard[r.card] = v.insert(v.byCard[r.card], i)
	v.byMerchant[r.merchant] = v.insert(v.byMerchant[r.merchant], i)
}

func (v *view) insert(list []int32, i int32) []int32 {
	r := &v.rows[i]
	at := len(list)
	for at > 0 && r.less(&v.rows[list[at-1]]) {
		at--
	}
	return slices.Insert(list, at, i)
}

// result expands a row back into a transaction row.
func (v *view) result(r *row, settled bool) txpipe.TxRow {
	out := txpipe.TxRow{Settled: settled}
	out.ID, out.CardID, out.Timestamp = r.id, r.card, time.Unix(r.ts, 0).UTC()
	out.Merchant, out.Location, out.RelatedID = v.strs.str(r.merchant), v.text.str(r.location), v.text.str(r.related)
	out.Type, out.Status, out.DeclineReason = v.small.str(uint32(r.typ)), v.status(r), txpipe.DeclineReason(v.small.str(uint32(r.reason)))
	out.Amount, out.PendingBalance = r.amount, r.balance
	out.Pos = txpipe.Position{Partition: r.part, Offset: r.off}
	if settled {
		out.Pos = txpipe.Unpositioned
	}
	return out
}

// status is a row's status.
func (v *view) status(r *row) txpipe.Status { return txpipe.Status(v.small.str(uint32(r.status))) }

// start returns the position in list of the first row at or after from
// and after k (nil: no cursor).
func (v *view) start(list []int32, from time.Time, k *txpipe.TxKey) int {
	at := 0
	if !from.IsZero() {
		t := from.Unix()
		at = sort.Search(len(list), func(j int) bool { return v.rows[list[j]].ts >= t })
	}
	if k != nil {
		kr := row{ts: k.Timestamp.Unix(), id: k.ID}
		at = max(at, sort.Search(len(list), func(j int) bool { return kr.less(&v.rows[list[j]]) }))
	}
	return at
}

// keep returns a new view of the rows for which keep holds, with text of
// its own (so that what is dropped is freed).
func (v *view) keep(keep func(*row) bool) *view {
	out := newView()
	for i := range v.rows {
		r := &v.rows[i]
		if !keep(r) {
			continue
		}
		res := v.result(r, false)
		out.add(&res.Result)
	}
	return out
}
