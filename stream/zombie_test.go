package stream

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// tickOp emits, on a processing-time timer every 50 ms, a record naming
// the engine that runs it: transactions that consume nothing.
type tickOp struct{ input, out, who string }

func (o *tickOp) Name() string           { return "tick" }
func (o *tickOp) Inputs() []string       { return []string{o.input} }
func (o *tickOp) NewTask(int32) Task     { return &tickTask{op: o} }
func (o *tickOp) OutputTopics() []string { return []string{o.out} }

type tickTask struct {
	op   *tickOp
	next time.Time
}

func (t *tickTask) Process(*kgo.Record, *Emitter)                   {}
func (t *tickTask) Receive(string, any, *Emitter)                   {}
func (t *tickTask) NextTimer() time.Time                            { return t.next }
func (t *tickTask) Dirty() bool                                     { return false }
func (t *tickTask) Begin()                                          {}
func (t *tickTask) Rollback()                                       {}
func (t *tickTask) Commit(map[string]int64)                         {}
func (t *tickTask) Checkpoint(*StateWriter, bool, map[string]int64) {}
func (t *tickTask) Restore([]byte, []byte) error                    { return nil }
func (t *tickTask) Restored(context.Context, StateReader) error {
	t.next = time.Now()
	return nil
}
func (t *tickTask) OnTime(now time.Time, out *Emitter) {
	out.Send(&kgo.Record{Topic: t.op.out, Value: []byte(t.op.who)}, false)
	t.next = now.Add(50 * time.Millisecond)
}

// TestAssignmentDropsPartitionsNoRevokeNamed: the transact session passes
// on only the first revoke between two ends of a transaction, so two
// rebalances in a row (a member joins, another leaves) may leave a
// member with partitions nobody revoked. The eager assignment names every
// partition the member owns: the others go, with their timers.
func TestAssignmentDropsPartitionsNoRevokeNamed(t *testing.T) {
	e := &Engine{owned: map[int32]*partition{}, log: slog.New(slog.DiscardHandler)}
	for id := range int32(8) {
		e.owned[id] = &partition{id: id, tasks: []Task{&tickTask{next: time.Now()}}}
	}
	// Partitions 0–3 stay: nothing to restore, so no broker is needed.
	e.assigned(context.Background(), nil, map[string][]int32{"in": {0, 1, 2, 3}, "in.repartition": {0, 1, 2, 3}})
	if len(e.owned) != 4 {
		t.Fatalf("after an assignment of partitions 0–3 the engine runs %d partitions", len(e.owned))
	}
	for id := range int32(4) {
		if e.owned[id] == nil {
			t.Fatalf("partition %d, still assigned, was dropped", id)
		}
	}
}
