package memory

import (
	"slices"
	"sort"
	"time"

	"github.com/txpipe/txpipe"
)

// interner stores each distinct string once; rows hold its number. Id 0
// is the empty string.
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
	s = string([]byte(s)) // do not keep the caller's larger buffer alive
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

// row is a transaction of a view, compact: 80 bytes, and the strings it
// shares with every other row through the interner.
type row struct {
	id, card        int64
	ts              int64 // Unix seconds (transaction times are whole seconds, UTC)
	amount, balance txpipe.Money
	off             int64 // offset on the validated topic (-1: not known)
	merchant        uint32
	location        uint32
	typ             uint32
	related         uint32
	status          uint32
	reason          uint32
	part            int32
}

func (r *row) key() txpipe.TxKey { return txpipe.TxKey{Timestamp: time.Unix(r.ts, 0).UTC(), ID: r.id} }

// less orders rows as TxKey does.
func (r *row) less(o *row) bool {
	if r.ts != o.ts {
		return r.ts < o.ts
	}
	return r.id < o.id
}

// view is a set of transaction rows with their order by card and by
// merchant (indexes into rows, each sorted by timestamp and id).
type view struct {
	rows       []row
	byCard     map[int64][]int32
	byMerchant map[uint32][]int32
}

func newView() *view { return &view{byCard: map[int64][]int32{}, byMerchant: map[uint32][]int32{}} }

// add appends r. Rows mostly come in time order: each list is searched
// from its end.
func (v *view) add(r row) {
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
