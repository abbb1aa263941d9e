package stream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/internal/metrics"
)

// The card ledger is the first operator: it judges every transaction with
// the shared rules (txpipe.Ledger) and keeps, per card, the pending
// balance and the ids judged within the dedup horizon.
//
// Its state survives a process like this. Every result on the validated
// topic carries its card's pending balance after the decision, so the
// validated topic is itself the log of every card's state. Every
// CheckpointEvery results (or when the engine's interval has passed) the
// task also writes, in the same Kafka transaction as a batch, a checkpoint
// to the state topic:
//
//	ledger/c/<card>  {"pending":…,"last":…}  each card changed since the last checkpoint
//	ledger/d/<n>     the ids judged since the last checkpoint (card, id, event time),
//	                 an immutable segment; a tombstone drops one no longer needed
//	ledger/m         {"validated_next":N}     the validated offset the checkpoint covers
//
// Restoring reads them back, then replays the validated records after the
// marker. The segments only grow by what was judged since the previous
// checkpoint; when they hold over twice the live ids, a checkpoint writes
// the live ids afresh and drops the old segments, so a restore reads at
// most about three times the live ids.

// LedgerName is the ledger operator's name on the state topic.
const LedgerName = "ledger"

// segmentIDs is the most ids one segment record holds (about 16 bytes
// each encoded: well under a broker's default record limit).
const segmentIDs = 16384

// compactSlack is how many ids past twice the live ones the segments may
// hold before a checkpoint rewrites them.
const compactSlack = 65536

// Forward names of the ledger.
const (
	// ForwardResults carries every judged transaction (*txpipe.Result) to
	// the operators downstream of the ledger.
	ForwardResults = "ledger.results"
)

// ledgerOp judges transactions; its tasks hold the cards of a partition.
type ledgerOp struct {
	topics          Topics
	master          *masterView
	horizon         time.Duration
	checkpointEvery int
	partitions      int32 // of the input topic
	route           kgo.TopicPartitioner
	judged, reject  atomic.Int64 // committed
}

func newLedgerOp(t Topics, master *masterView, horizon time.Duration, every int, partitions int32) *ledgerOp {
	return &ledgerOp{
		topics: t, master: master, horizon: horizon, checkpointEvery: every, partitions: partitions,
		route: kgo.StickyKeyPartitioner(nil).ForTopic(t.Input),
	}
}

func (o *ledgerOp) Name() string     { return LedgerName }
func (o *ledgerOp) Inputs() []string { return []string{o.topics.Input, o.topics.Repartition} }

// partitionOf is the input partition of a card: where a producer that
// keys records by card id (as Kafka's default partitioner does, murmur2)
// puts its transactions. scratch is the caller's, reused.
func (o *ledgerOp) partitionOf(cardID string, scratch *kgo.Record) int32 {
	scratch.Key = unsafe.Slice(unsafe.StringData(cardID), len(cardID)) // read only
	p := o.route.Partition(scratch, int(o.partitions))
	scratch.Key = nil
	return int32(p)
}

func (o *ledgerOp) NewTask(p int32) Task {
	return &ledgerTask{
		op: o, p: p,
		l:         txpipe.NewLedger(o.master.get(), o.horizon),
		undo:      map[int64]txpipe.Snapshot{},
		changed:   map[int64]struct{}{},
		decisions: map[decision]int{},
		rejects:   map[txpipe.RejectReason]int{},
		segs:      map[int64]int{},
		restore:   &ledgerRestore{cards: map[int64]txpipe.CardState{}, segs: map[int64][]segEntry{}},
	}
}

// segEntry is a judged id in a segment.
type segEntry struct {
	card, id, at int64
}

// ledgerTask is the ledger of one input partition.
type ledgerTask struct {
	op *ledgerOp
	p  int32
	l  *txpipe.Ledger

	// the transaction in flight
	undo              map[int64]txpipe.Snapshot // cards judged, as they were before it
	newMark           int                       // len(newIDs) at its start
	judged, rejected  int64
	decisions         map[decision]int            // judged, by status and decline reason
	rejects           map[txpipe.RejectReason]int // rejected, by reason
	ckpt              *pendingCkpt                // the checkpoint it writes, applied on commit
	validatedNextMark int64

	// since the last committed checkpoint
	changed       map[int64]struct{} // cards
	since         int                // results
	newIDs        []segEntry         // ids judged, not yet in a segment
	validatedNext int64              // validated offset after the last committed result

	// the segments on the state topic: number → ids
	segs       map[int64]int
	segEntries int
	nextSeg    int64

	restore  *ledgerRestore // while restoring
	restored map[string]int // what the restore found
	scratch  kgo.Record     // for partitionOf
}

// RestoreCounts says what the task's restore found.
func (t *ledgerTask) RestoreCounts() map[string]int { return t.restored }

// decision is a judgement's status and decline reason, for the metrics.
type decision struct {
	status txpipe.Status
	reason txpipe.DeclineReason
}

// pendingCkpt is what a checkpoint written in a transaction changes once
// the transaction commits.
type pendingCkpt struct {
	dropSegs []int64
	addSegs  map[int64]int
}

func (t *ledgerTask) Begin() {
	clear(t.undo)
	t.newMark = len(t.newIDs)
	t.judged, t.rejected = 0, 0
	clear(t.decisions)
	clear(t.rejects)
	t.ckpt = nil
	t.validatedNextMark = t.validatedNext
	// The master data of this transaction: a new limit applies from the
	// next transaction on.
	t.l.SetMaster(t.op.master.get())
}

func (t *ledgerTask) Rollback() {
	for card, s := range t.undo {
		t.l.Rollback(card, s)
	}
	clear(t.undo)
	t.newIDs = t.newIDs[:t.newMark]
	t.ckpt = nil
	t.validatedNext = t.validatedNextMark
}

func (t *ledgerTask) Commit(produced map[string]int64) {
	for card := range t.undo {
		t.l.Settle(card)
		t.changed[card] = struct{}{}
	}
	if next, ok := produced[t.op.topics.Validated]; ok {
		t.validatedNext = next
	}
	t.since += int(t.judged)
	t.op.judged.Add(t.judged)
	t.op.reject.Add(t.rejected)
	for d, n := range t.decisions {
		metrics.ObserveJudged(d.status, d.reason, n)
	}
	for r, n := range t.rejects {
		metrics.ObserveRejected(r, n)
	}
	if c := t.ckpt; c != nil {
		for _, n := range c.dropSegs {
			t.segEntries -= t.segs[n]
			delete(t.segs, n)
		}
		for n, k := range c.addSegs {
			t.segs[n] = k
			t.segEntries += k
		}
		clear(t.changed)
		t.since = 0
		t.newIDs = t.newIDs[:0]
	}
	clear(t.undo)
	t.ckpt = nil
}

func (t *ledgerTask) Dirty() bool                { return len(t.changed) > 0 || len(t.newIDs) > 0 }
func (t *ledgerTask) NextTimer() time.Time       { return time.Time{} }
func (t *ledgerTask) OnTime(time.Time, *Emitter) {}
func (t *ledgerTask) Receive(string, any, *Emitter) {
}

// Process judges a record, or moves it to its card's partition.
func (t *ledgerTask) Process(r *kgo.Record, out *Emitter) {
	raw, err := decodeTransaction(r.Value, true)
	if err != nil {
		t.reject(r, out, txpipe.Rejected{Raw: txpipe.RawTransaction{Merchant: truncate(string(r.Value), 200)}, Reason: txpipe.RejectBadJSON, Detail: err.Error()})
		return
	}
	// A record on the wrong partition (a foreign producer's key, or none)
	// is judged where its card's transactions are: it moves through the
	// repartition topic, in this transaction.
	if r.Topic == t.op.topics.Input {
		if _, ok := txpipe.ParseID(raw.CardID); ok {
			if want := t.op.partitionOf(raw.CardID, &t.scratch); want != r.Partition {
				t.repartition(r, raw.CardID, want, out)
				return
			}
		}
	}
	tx, reason, detail := txpipe.ParseTransaction(raw)
	if reason == "" {
		tx.Seq = seqOf(r)
		if _, seen := t.undo[tx.CardID]; !seen {
			t.undo[tx.CardID] = t.l.Snapshot(tx.CardID)
		}
		var res txpipe.Result
		res, reason, detail = t.l.JudgeParsed(tx)
		if reason == "" {
			t.judged++
			t.decisions[decision{res.Status, res.DeclineReason}]++
			t.newIDs = append(t.newIDs, segEntry{card: tx.CardID, id: tx.ID, at: tx.Timestamp.Unix()})
			rec := out.Record()
			rec.Topic, rec.Key, rec.Headers = t.op.topics.Validated, r.Key, paymentHeaders
			rec.Value = out.Keep(EncodeResult(out.Buffer(resultSize(&res)), res))
			out.Send(rec, false)
			if out.Wants(ForwardResults) {
				fwd := res // only what is forwarded goes to the heap
				out.Forward(ForwardResults, &fwd)
			}
			return
		}
	}
	t.reject(r, out, txpipe.Rejected{Raw: raw, Reason: reason, Detail: detail})
}

// reject dead-letters a record that cannot be judged.
func (t *ledgerTask) reject(r *kgo.Record, out *Emitter, rej txpipe.Rejected) {
	t.rejected++
	t.rejects[rej.Reason]++
	rej.Source, rej.Seq = sourceOf(r), seqOf(r)
	rec := out.Record()
	rec.Topic, rec.Key, rec.Headers = t.op.topics.DLQ, r.Key, append(originHeaders(r), paymentHeaders...)
	rec.Value = out.Keep(EncodeRejected(out.Buffer(rejectedSize(&rej)), rej))
	out.Send(rec, false)
}

// repartition sends a record to its card's partition of the repartition
// topic, keyed by the card, keeping its headers and saying where it came
// from.
func (t *ledgerTask) repartition(r *kgo.Record, card string, to int32, out *Emitter) {
	hs := make([]kgo.RecordHeader, 0, len(r.Headers)+3)
	hs = append(hs, r.Headers...)
	if header(r, HeaderSource) == "" {
		hs = append(hs, kgo.RecordHeader{Key: HeaderSource, Value: []byte(sourceOf(r))})
	}
	if header(r, HeaderSeq) == "" {
		hs = append(hs, kgo.RecordHeader{Key: HeaderSeq, Value: strconv.AppendInt(nil, r.Offset, 10)})
	}
	out.Send(&kgo.Record{Topic: t.op.topics.Repartition, Partition: to, Key: []byte(card), Value: r.Value, Headers: hs}, true)
}

// resultSize bounds the encoded size of a result.
func resultSize(r *txpipe.Result) int {
	return 320 + 6*(len(r.Merchant)+len(r.Location)+len(r.Type)+len(r.RelatedID))
}

func rejectedSize(r *txpipe.Rejected) int {
	x := &r.Raw
	return 400 + 6*(len(x.TransactionID)+len(x.CardID)+len(x.Merchant)+len(x.Timestamp)+len(x.Amount)+len(x.Location)+len(x.Type)+len(x.RelatedID)+len(r.Detail)+len(r.Source))
}

// Checkpoint writes the cards changed since the last checkpoint, the ids
// judged since then as a segment (or every live id afresh, when the
// segments grew too large), and the marker, when due.
func (t *ledgerTask) Checkpoint(w *StateWriter, due bool, produced map[string]int64) {
	changed := len(t.changed) > 0 || len(t.undo) > 0
	if !changed || !(due || t.since+int(t.judged) >= t.op.checkpointEvery) {
		return
	}
	c := &pendingCkpt{addSegs: map[int64]int{}}
	cards := make(map[int64]struct{}, len(t.changed)+len(t.undo))
	for card := range t.changed {
		cards[card] = struct{}{}
	}
	for card := range t.undo {
		cards[card] = struct{}{}
	}
	for card := range cards {
		if s, ok := t.l.State(card); ok {
			w.Put(strconv.AppendInt([]byte("c/"), card, 10), EncodeState(nil, s))
		}
	}
	entries := t.newIDs
	live := t.l.Remembered()
	next := t.nextSeg
	if t.segEntries+len(entries) > 2*live+compactSlack {
		// Rewrite: every live id, then drop the old segments.
		entries = entries[:0:0]
		for _, card := range t.l.Cards() {
			s, _ := t.l.State(card)
			for _, seen := range s.Seen {
				entries = append(entries, segEntry{card: card, id: seen.ID, at: seen.At})
			}
		}
		for n := range t.segs {
			c.dropSegs = append(c.dropSegs, n)
		}
	}
	for len(entries) > 0 {
		k := min(len(entries), segmentIDs)
		w.Put(segmentKey(next), encodeSegment(entries[:k]))
		c.addSegs[next] = k
		next++
		entries = entries[k:]
	}
	for _, n := range c.dropSegs {
		w.Put(segmentKey(n), nil)
	}
	vnext := t.validatedNext
	if n, ok := produced[t.op.topics.Validated]; ok {
		vnext = n
	}
	w.Put([]byte("m"), encodeCheckpoint(nil, vnext))
	t.nextSeg = next
	t.ckpt = c
}

func segmentKey(n int64) []byte { return strconv.AppendInt([]byte("d/"), n, 10) }

// encodeSegment is a segment's value: a version byte, then per id the
// card (uvarint), the id (uvarint) and the event time (varint).
func encodeSegment(entries []segEntry) []byte {
	b := make([]byte, 1, 1+len(entries)*16)
	b[0] = 1
	for _, e := range entries {
		b = binary.AppendUvarint(b, uint64(e.card))
		b = binary.AppendUvarint(b, uint64(e.id))
		b = binary.AppendVarint(b, e.at)
	}
	return b
}

func decodeSegment(b []byte) ([]segEntry, error) {
	if len(b) == 0 || b[0] != 1 {
		return nil, errors.New("segment: unknown version")
	}
	b = b[1:]
	var out []segEntry
	for len(b) > 0 {
		card, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, errors.New("segment: bad card")
		}
		b = b[n:]
		id, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, errors.New("segment: bad id")
		}
		b = b[n:]
		at, n := binary.Varint(b)
		if n <= 0 {
			return nil, errors.New("segment: bad event time")
		}
		b = b[n:]
		out = append(out, segEntry{card: int64(card), id: int64(id), at: at})
	}
	return out, nil
}

// ledgerRestore is what a restore has read so far.
type ledgerRestore struct {
	cards  map[int64]txpipe.CardState
	segs   map[int64][]segEntry
	marker int64
}

func (t *ledgerTask) Restore(key, value []byte) error {
	r := t.restore
	switch {
	case len(key) > 2 && string(key[:2]) == "c/":
		card, ok := txpipe.ParseID(string(key[2:]))
		if !ok {
			return fmt.Errorf("card state key %q is not a card id", key)
		}
		if value == nil {
			delete(r.cards, card)
			return nil
		}
		s, err := DecodeState(value)
		if err != nil {
			return err
		}
		r.cards[card] = s
	case len(key) > 2 && string(key[:2]) == "d/":
		n, err := strconv.ParseInt(string(key[2:]), 10, 64)
		if err != nil {
			return fmt.Errorf("segment key %q is not a number", key)
		}
		if value == nil {
			delete(r.segs, n)
			return nil
		}
		entries, err := decodeSegment(value)
		if err != nil {
			return err
		}
		r.segs[n] = entries
		t.nextSeg = max(t.nextSeg, n+1)
	case string(key) == "m":
		next, err := decodeCheckpoint(value)
		if err != nil {
			return err
		}
		r.marker = next
	default:
		return fmt.Errorf("unknown ledger state key %q", key)
	}
	return nil
}

// Restored builds the ledger from the checkpoint, then replays the
// validated records after its marker.
func (t *ledgerTask) Restored(ctx context.Context, rd StateReader) error {
	r := t.restore
	t.restore = nil
	seen := map[int64][]txpipe.SeenID{}
	for _, n := range slices.Sorted(maps.Keys(r.segs)) {
		for _, e := range r.segs[n] {
			seen[e.card] = append(seen[e.card], txpipe.SeenID{ID: e.id, At: e.at})
		}
		t.segs[n] = len(r.segs[n])
		t.segEntries += len(r.segs[n])
	}
	for card, s := range r.cards {
		s.Seen = seen[card]
		t.l.Restore(card, s)
	}
	t.validatedNext = r.marker
	err := rd.Read(ctx, t.op.topics.Validated, r.marker, true, func(rec *kgo.Record) error {
		card, id, at, pending, err := decodeResultState(rec.Value)
		if err != nil {
			return fmt.Errorf("result at %s/%d/%d: %w", rec.Topic, rec.Partition, rec.Offset, err)
		}
		t.l.Replay(card, id, at, pending)
		t.l.Settle(card)
		t.changed[card] = struct{}{}
		t.newIDs = append(t.newIDs, segEntry{card: card, id: id, at: at.Unix()})
		t.since++
		t.validatedNext = rec.Offset + 1
		return nil
	})
	if err != nil {
		return fmt.Errorf("replay %s after its checkpoint: %w", t.op.topics.Validated, err)
	}
	t.restored = map[string]int{"cards_restored": len(r.cards), "ids_restored": t.segEntries, "results_replayed": t.since}
	return nil
}

// decodeResultState reads what a card's state needs from a validated
// record: the card, the transaction id, its event time and the pending
// balance after it.
func decodeResultState(b []byte) (card, id int64, at time.Time, pending txpipe.Money, err error) {
	var haveCard, haveID, havePending, haveAt bool
	err = flatObject(b, func(key string, val []byte, isString, isNull bool) error {
		var ok bool
		switch key {
		case "card_id":
			card, ok = txpipe.ParseID(string(val))
			haveCard = ok
		case "transaction_id":
			id, ok = txpipe.ParseID(string(val))
			haveID = ok
		case "timestamp":
			at, ok = txpipe.ParseTimestamp(string(val))
			haveAt = ok
		case "pending_balance":
			var err error
			pending, err = txpipe.ParseMoney(string(val))
			ok, havePending = err == nil, err == nil
		default:
			return nil
		}
		if !ok {
			return fmt.Errorf("%s %q is not valid", key, val)
		}
		return nil
	})
	if err == nil && !(haveCard && haveID && havePending && haveAt) {
		err = errors.New("card_id, transaction_id, timestamp or pending_balance missing")
	}
	return card, id, at, pending, err
}

// encodeCheckpoint is a marker's value: the validated offset from which a
// restore replays.
func encodeCheckpoint(b []byte, validatedNext int64) []byte {
	b = append(b, `{"validated_next":`...)
	b = strconv.AppendInt(b, validatedNext, 10)
	return append(b, '}')
}

func decodeCheckpoint(b []byte) (int64, error) {
	next := int64(-1)
	err := flatObject(b, func(key string, val []byte, isString, isNull bool) error {
		if key == "validated_next" {
			n, err := strconv.ParseInt(string(val), 10, 64)
			if err != nil || n < 0 {
				return fmt.Errorf("validated_next %q is not an offset", val)
			}
			next = n
		}
		return nil
	})
	if err == nil && next < 0 {
		err = errors.New("no validated_next")
	}
	return next, err
}

// CardStates rebuilds every card's state from the state and validated
// topics, as a validator does on assignment: what the stream layer would
// judge the next transaction of each card against.
func CardStates(ctx context.Context, brokers []string, t Topics, opts ...kgo.Opt) (map[int64]txpipe.CardState, error) {
	base := append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)
	cl, err := kgo.NewClient(base...)
	if err != nil {
		return nil, err
	}
	n, err := partitionCount(ctx, kadm.NewClient(cl), t.Input)
	cl.Close()
	if err != nil {
		return nil, err
	}
	view := &masterView{}
	view.cur.Store(txpipe.NewMasterIndex(nil))
	op := newLedgerOp(t, view, 0, DefaultCheckpointEvery, n)
	e := &Engine{cfg: EngineConfig{StateTopic: t.State, Operators: []Operator{op}}, base: base, workers: 2}
	parts := make([]int32, n)
	for i := range parts {
		parts[i] = int32(i)
	}
	restored, err := e.restore(ctx, parts)
	if err != nil {
		return nil, err
	}
	out := map[int64]txpipe.CardState{}
	for _, p := range restored {
		l := p.tasks[0].(*ledgerTask).l
		for _, card := range l.Cards() {
			out[card], _ = l.State(card)
		}
	}
	return out, nil
}
