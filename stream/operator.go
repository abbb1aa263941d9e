package stream

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// How the stream layer grows: operators.
//
// Stateful stream logic (the card ledger, and later windows over stolen
// cards, velocity rules, alerts) is written as operators, in the spirit of
// Kafka Streams processors and Flink keyed operators. The Engine runs them
// exactly once:
//
//   - An Operator makes one Task per input partition. A task owns the state
//     of its partition (the cards keyed to it): it is touched by ONE
//     goroutine at a time, the one the engine gives the partition for a
//     batch, so tasks need no locks. State shared by all tasks (master
//     data) is read-only to them and replaced, never changed, by others.
//   - A task processes the records of its partition in order and emits zero
//     or more records to topics (Emitter.Send), or values to the operators
//     downstream of it in the same process (Emitter.Forward).
//   - Everything the tasks emit for a batch, their checkpoints and the
//     consumed offsets commit in ONE Kafka transaction. Begin marks the
//     state at the start of a batch; Rollback returns to it when the
//     transaction aborts; Commit confirms it.
//   - Checkpoint writes a task's state into the state topic (same partition
//     as the input, compacted on Kafka), under the operator's name; on
//     assignment the engine reads the state topic back into new tasks
//     (Restore), then lets each task catch up (Restored), e.g. by replaying
//     its own output after its last checkpoint.
//   - Time: a task sees processing time through the engine's injected
//     Clock and keeps its own event time (the largest event time of its
//     partition, minus a bound, is its watermark). Timers fire through
//     OnTime, called for every owned task whose NextTimer is due, also when
//     its partition is quiet.

// Clock is the engine's source of processing time (injected: tests use a
// fake one).
type Clock interface {
	Now() time.Time
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Operator makes the tasks that process the partitions.
type Operator interface {
	// Name prefixes the keys of its state on the state topic; unique among
	// the engine's operators, without '/'.
	Name() string
	// Inputs names what its tasks process: source topics, or the names
	// upstream operators forward to.
	Inputs() []string
	// NewTask returns the task of an input partition, empty; Restore fills it.
	NewTask(partition int32) Task
}

// Task is an operator's state and logic for one input partition.
type Task interface {
	// Process handles a record of a source topic, in partition order.
	Process(r *kgo.Record, out *Emitter)
	// Receive handles a value forwarded by an upstream operator.
	Receive(input string, v any, out *Emitter)
	// NextTimer is when the task wants OnTime called next, by the engine's
	// clock (zero: no timer).
	NextTimer() time.Time
	// OnTime is called at or after NextTimer, inside a transaction.
	OnTime(now time.Time, out *Emitter)

	// Dirty reports whether the task has state its last checkpoint does
	// not hold (a quiet partition then gets a checkpoint of its own once
	// the interval has passed).
	Dirty() bool
	// Begin marks the state at the start of a transaction.
	Begin()
	// Rollback returns to the mark: the transaction aborted.
	Rollback()
	// Commit confirms the transaction. produced is, per topic, the offset
	// after the last record the task sent to it in the transaction.
	Commit(produced map[string]int64)

	// Checkpoint writes the state that changed since the last checkpoint,
	// inside the transaction, before it commits. due says whether the
	// engine's checkpoint interval is reached; a task may write state on
	// every transaction (a changelog) or only when due. produced is as for
	// Commit (offsets of this transaction's records, not yet committed).
	Checkpoint(w *StateWriter, due bool, produced map[string]int64)
	// Restore reads back a state record the task's operator wrote (key
	// without the operator's prefix), in offset order.
	Restore(key, value []byte) error
	// Restored ends the restore: the task may read its outputs from r to
	// catch up with what committed after its last checkpoint.
	Restored(ctx context.Context, r StateReader) error
}

// StateReader reads committed records of a topic partition for a task
// that restores.
type StateReader interface {
	// Read calls fn for every committed record of topic's partition of the
	// task from offset from up to the partition's end now. strict: records
	// from offset on deleted by retention are an error.
	Read(ctx context.Context, topic string, from int64, strict bool, fn func(*kgo.Record) error) error
}

// Emitter collects what a task emits while it processes. It belongs to
// the goroutine that runs the task.
type Emitter struct {
	e         *Engine
	w         *batchWorker
	partition int32
	op        int // the operator whose task emits
	ctx       context.Context
}

// Send produces a record in the transaction, to topic's partition of the
// task (or to r.Partition when partitioned is true: a repartition). The
// record and its bytes are the engine's until the transaction ends.
func (o *Emitter) Send(r *kgo.Record, partitioned bool) {
	if !partitioned {
		r.Partition = o.partition
	}
	o.e.produce(o.ctx, r)
}

// Wants reports whether an operator takes what is forwarded to name (so
// a task need not build a value nobody reads).
func (o *Emitter) Wants(name string) bool { return len(o.e.downstream[name]) > 0 }

// Forward hands v to the operators downstream of name, in this goroutine.
func (o *Emitter) Forward(name string, v any) {
	for _, d := range o.e.downstream[name] {
		t := o.w.tasks[d]
		prev := o.op
		o.op = d
		t.Receive(name, v, o)
		o.op = prev
	}
}

// Buffer returns an empty buffer with room for at least bound bytes, at
// the end of the transaction's slab: append a record key or value to it
// and pass the result to Keep.
func (o *Emitter) Buffer(bound int) []byte { return o.w.buffer(bound) }

// Keep keeps b, appended to what Buffer returned, until the transaction
// ends, and returns it.
func (o *Emitter) Keep(b []byte) []byte { return o.w.keep(b) }

// Record returns a record to fill and Send, from the transaction's slab
// of records (it lives until the transaction ends).
func (o *Emitter) Record() *kgo.Record { return o.w.record() }

// Now is the engine's clock.
func (o *Emitter) Now() time.Time { return o.e.clock.Now() }

// StateWriter writes a task's checkpoint records to the state topic, in
// the transaction.
type StateWriter struct {
	e         *Engine
	ctx       context.Context
	partition int32
	prefix    string
	n         int
}

// Put writes value (nil: a tombstone) under the task's key.
func (w *StateWriter) Put(key, value []byte) {
	k := make([]byte, 0, len(w.prefix)+len(key))
	k = append(append(k, w.prefix...), key...)
	w.n++
	w.e.produce(w.ctx, &kgo.Record{Topic: w.e.cfg.StateTopic, Partition: w.partition, Key: k, Value: value})
}

// knownOperators are the names of the operators of this version: their
// state records are skipped, not refused, by a run that does not run
// them (consume --alerts=false after a run with alerts, or a reader of
// card states alone).
var knownOperators = []string{LedgerName, AlertsName}
