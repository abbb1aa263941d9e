package stream

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe"
)

// alertHarness drives an alerts task directly, with a fake clock, and
// collects what it emits.
type alertHarness struct {
	t     *testing.T
	clock *fakeClock
	op    *alertsOp
	task  *alertsTask
	out   *Emitter
	sent  []txpipe.Alert
	state map[string][]byte // the changelog, as the state topic keeps it
}

var alertBase = time.Date(2025, 4, 1, 12, 0, 0, 0, time.UTC)

func newAlertHarness(t *testing.T) *alertHarness {
	h := &alertHarness{t: t, clock: &fakeClock{now: time.Unix(1_800_000_000, 0)}, state: map[string][]byte{}}
	h.op = NewAlerts(AlertsConfig{Topic: "a", Clock: h.clock}).(*alertsOp)
	h.task = h.op.NewTask(0).(*alertsTask)
	h.task.Restored(context.Background(), nil)
	h.wire()
	return h
}

func (h *alertHarness) wire() {
	e := &Engine{downstream: map[string][]int{}, clock: h.clock}
	e.sink = func(r *kgo.Record) {
		a, err := DecodeAlert(r.Value)
		if err != nil {
			h.t.Fatalf("emitted record %s: %v", r.Value, err)
		}
		h.sent = append(h.sent, a)
	}
	h.out = &Emitter{e: e, w: &batchWorker{}, ctx: context.Background()}
}

// pay feeds a payment at event time base+at, on a stolen card or not.
func (h *alertHarness) pay(id, card int64, at time.Duration, stolen bool) {
	h.task.Begin()
	r := &txpipe.Result{Transaction: txpipe.Transaction{ID: id, CardID: card, Amount: txpipe.Money(100 * id), Merchant: fmt.Sprintf("M%d", id%3),
		Location: fmt.Sprintf("L%d", id%2), Timestamp: alertBase.Add(at).Truncate(time.Second), Origin: alertBase.Add(at)}}
	if stolen {
		r.Status, r.DeclineReason = txpipe.StatusDeclined, txpipe.DeclineStolen
	}
	h.task.Receive(ForwardResults, r, h.out)
	h.commit()
}

// idle moves the processing-time clock and fires the timer when due.
func (h *alertHarness) idle(d time.Duration) {
	h.clock.add(d)
	if at := h.task.NextTimer(); !at.IsZero() && !at.After(h.clock.Now()) {
		h.task.Begin()
		h.task.OnTime(h.clock.Now(), h.out)
		h.commit()
	}
}

// commit checkpoints into the harness's state topic and commits.
func (h *alertHarness) commit() {
	e := &Engine{cfg: EngineConfig{StateTopic: "s"}}
	e.sink = func(r *kgo.Record) {
		k := strings.TrimPrefix(string(r.Key), AlertsName+"/")
		if r.Value == nil {
			delete(h.state, k)
		} else {
			h.state[k] = r.Value
		}
	}
	h.task.Checkpoint(&StateWriter{e: e, ctx: context.Background(), prefix: AlertsName + "/"}, false, nil)
	h.task.Commit(nil)
}

// restart builds a new task from the changelog, as a restore does.
func (h *alertHarness) restart() {
	h.task = h.op.NewTask(0).(*alertsTask)
	for k, v := range h.state {
		if err := h.task.Restore([]byte(k), v); err != nil {
			h.t.Fatal(err)
		}
	}
	h.task.Restored(context.Background(), nil)
}

func (h *alertHarness) take() []string {
	var out []string
	for _, a := range h.sent {
		s := fmt.Sprintf("%s card %d %s–%s n=%d total=%s", a.Type, a.CardID, a.From.Format("15:04:05"), a.To.Format("15:04:05"), a.Count, a.Total)
		if a.Late {
			s += " late"
		}
		out = append(out, s)
	}
	h.sent = nil
	return out
}

func TestAlertWindows(t *testing.T) {
	s := time.Second
	t.Run("a payment exactly on a boundary belongs to the next window", func(t *testing.T) {
		h := newAlertHarness(t)
		h.pay(1, 7, 4999*time.Millisecond, true)
		h.pay(2, 7, 5*s, true)
		h.pay(3, 8, 16*s, false) // watermark 11 s: both windows closed, the 10 s summary due
		got := h.take()
		want := []string{
			"PAYMENT_ALERT card 7 12:00:00–12:00:05 n=1 total=1.00",
			"PAYMENT_ALERT card 7 12:00:05–12:00:10 n=1 total=2.00",
			"PAYMENT_ALERT_SUMMARY card 7 11:00:10–12:00:10 n=2 total=3.00",
		}
		if !slices.Equal(got, want) {
			t.Fatalf("emitted\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
	t.Run("late and very late payments", func(t *testing.T) {
		h := newAlertHarness(t)
		h.pay(1, 7, 1*s, true)
		h.pay(2, 8, 20*s, false) // watermark 15 s: [0,5) closes, summary at 10 s
		h.take()
		h.pay(3, 7, 12*s, true)        // window [10,15) closed already (watermark 15 s): late
		h.pay(4, 7, 2*time.Hour, true) // far ahead: moves the watermark on
		h.pay(5, 7, 3*s, true)         // very late: its window and its hour are long gone
		got := h.take()
		if len(got) < 3 || got[0] != "PAYMENT_ALERT card 7 12:00:10–12:00:15 n=1 total=3.00 late" {
			t.Fatalf("a late payment: %q", got)
		}
		// The late payment is in the summaries after it: the one at 20 s.
		if !slices.Contains(got, "PAYMENT_ALERT_SUMMARY card 7 11:00:20–12:00:20 n=2 total=4.00") {
			t.Fatalf("the late payment is not in the next summary:\n%s", strings.Join(got, "\n"))
		}
		if last := got[len(got)-1]; last != "PAYMENT_ALERT card 7 12:00:00–12:00:05 n=1 total=5.00 late" {
			t.Fatalf("a very late payment: %q", last)
		}
	})
	t.Run("the hour's summary slides", func(t *testing.T) {
		h := newAlertHarness(t)
		h.pay(1, 7, 0, true)
		h.pay(2, 7, 30*time.Minute, true)
		h.pay(3, 8, 61*time.Minute, false)
		var counts []string
		for _, a := range h.sent {
			if a.Type == txpipe.EventAlertSummary && (a.To.Equal(alertBase.Add(59*time.Minute+50*s)) || a.To.Equal(alertBase.Add(60*time.Minute+10*s))) {
				counts = append(counts, fmt.Sprintf("%s n=%d", a.To.Format("15:04:05"), a.Count))
			}
		}
		if !slices.Equal(counts, []string{"12:59:50 n=2", "13:00:10 n=1"}) {
			t.Fatalf("summaries around the hour: %v (payment 1 leaves the hour at 13:00:00)", counts)
		}
	})
	t.Run("a back-dated payment releases no burst of past summaries", func(t *testing.T) {
		h := newAlertHarness(t)
		h.pay(1, 8, 2*time.Hour, false) // watermark 13:59:55, no stolen payment held
		h.pay(2, 7, 3*s, true)          // two hours late
		h.pay(3, 8, 2*time.Hour+20*s, false)
		got := h.take()
		want := []string{"PAYMENT_ALERT card 7 12:00:00–12:00:05 n=1 total=2.00 late"}
		if !slices.Equal(got, want) {
			t.Fatalf("emitted %d alerts:\n%s\nwant\n%s", len(got), strings.Join(got[:min(len(got), 5)], "\n"), strings.Join(want, "\n"))
		}
	})
	t.Run("payments on cards not stolen emit nothing, not even on the idle timer", func(t *testing.T) {
		h := newAlertHarness(t)
		for i := int64(1); i <= 20; i++ {
			h.pay(i, 9, time.Duration(i)*s, false)
		}
		h.idle(time.Minute)
		if got := h.take(); len(got) != 0 {
			t.Fatalf("emitted %q", got)
		}
	})
	t.Run("a quiet partition's windows close on the processing-time timer", func(t *testing.T) {
		h := newAlertHarness(t)
		h.pay(1, 7, 1*s, true)
		h.idle(4 * s)
		if got := h.take(); len(got) != 0 {
			t.Fatalf("emitted before the idle timer: %q", got)
		}
		h.idle(2 * s) // quiet for 6 s: the watermark follows processing time
		h.idle(5 * s)
		got := h.take()
		if len(got) == 0 || got[0] != "PAYMENT_ALERT card 7 12:00:00–12:00:05 n=1 total=1.00" {
			t.Fatalf("a quiet partition: %q", got)
		}
	})
	t.Run("a restart mid-window neither repeats nor drops an alert", func(t *testing.T) {
		run := func(restartAt int) []string {
			h := newAlertHarness(t)
			var all []string
			for i := int64(1); i <= 40; i++ {
				if int(i) == restartAt {
					h.restart()
					h.wire()
				}
				h.pay(i, 7+i%2, time.Duration(i)*1700*time.Millisecond, i%3 != 0)
				all = append(all, h.take()...)
			}
			return all
		}
		want := run(-1)
		if len(want) < 10 {
			t.Fatalf("only %d alerts: the test proves nothing", len(want))
		}
		for _, at := range []int{2, 7, 13, 29} {
			if got := run(at); !slices.Equal(got, want) {
				t.Fatalf("restart before payment %d:\n%s\nwant\n%s", at, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		}
	})
	t.Run("an aborted transaction rolls back", func(t *testing.T) {
		h := newAlertHarness(t)
		h.pay(1, 7, 1*s, true)
		h.task.Begin()
		h.task.Receive(ForwardResults, &txpipe.Result{Transaction: txpipe.Transaction{ID: 2, CardID: 7, Amount: 5, Timestamp: alertBase.Add(2 * s), Origin: alertBase.Add(2 * s)},
			DeclineReason: txpipe.DeclineStolen}, h.out)
		h.task.Rollback()
		h.sent = nil
		h.pay(3, 8, 20*s, false)
		got := h.take()
		if len(got) == 0 || got[0] != "PAYMENT_ALERT card 7 12:00:00–12:00:05 n=1 total=1.00" {
			t.Fatalf("after a rollback: %q", got)
		}
	})
}
