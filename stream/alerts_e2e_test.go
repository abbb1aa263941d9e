package stream_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/dataset"
	"github.com/txpipe/txpipe/internal/kafkatest"
	"github.com/txpipe/txpipe/internal/mysqltest"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/serving/mysqlstore"
	"github.com/txpipe/txpipe/stream"
)

// testClock is a processing-time clock the test moves.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestAlertsEndToEnd runs the simulator over cards of which a tenth are
// reported stolen, through three consumers of which one leaves mid-run,
// then lets the idle watermark close everything: the alerts in the
// alerts topic, results/alerts.csv and the MySQL table are those an
// independent recomputation from the validated topic gives, each once.
func TestAlertsEndToEnd(t *testing.T) {
	kafkatest.EachConcurrent(t, func(t *testing.T, k kafkatest.Broker) {
		brokers := k.Addrs
		data := t.TempDir()
		if _, err := dataset.Generate(context.Background(), data, dataset.Options{Customers: 60, Cards: 100, Transactions: 10, Seed: 21}); err != nil {
			t.Fatal(err)
		}
		m, err := csvfile.ReadMaster(data)
		if err != nil {
			t.Fatal(err)
		}
		topics := k.Topics(t, "alerting")
		ctx := context.Background()
		if err := stream.PublishMaster(ctx, brokers, topics, m.Cards, m.Customers); err != nil {
			t.Fatal(err)
		}
		zip := map[int64]string{}
		for _, c := range m.Customers {
			zip[c.ID] = txpipe.ZIP(c.Address)
		}
		var cards []stream.SimCard
		var stolen []txpipe.StolenCard
		for i, c := range m.Cards {
			cards = append(cards, stream.SimCard{ID: c.ID, ZIP: zip[c.CustomerID], Limit: c.CreditLimit})
			if i%10 == 0 {
				stolen = append(stolen, txpipe.StolenCard{CardID: c.ID, ReportedAt: time.Now().Add(-time.Hour).UTC().Truncate(time.Second)})
			}
		}
		if err := stream.PublishStolen(ctx, brokers, topics, stolen); err != nil {
			t.Fatal(err)
		}
		st, err := stream.Simulate(ctx, stream.SimulateConfig{Brokers: brokers, Topics: topics, Cards: cards, Rate: 3000, Count: 6000, Seed: 5,
			Late: 0.02, LateBy: 20 * time.Second, Log: slog.New(slog.DiscardHandler)})
		if err != nil || st.Acked != 6000 {
			t.Fatalf("simulate: %+v, %v", st, err)
		}
		db, err := mysqlstore.Open(ctx, mysqltest.NewDatabase(t), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()

		logs := &failLog{}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("what the consumers logged of their partitions and transactions:\n%s", logs.lines("partitions", "aborted", "WARN", "ERROR"))
			}
		})
		clock := &testClock{now: time.Unix(1_900_000_000, 0)}
		results := t.TempDir()
		var judged sync.Map
		run := func(ctx context.Context, instance string, untilIdle time.Duration, done chan<- error) {
			st, err := stream.Consume(ctx, stream.ConsumeConfig{
				Brokers: brokers, Topics: topics, Group: topics.Input, Instance: instance, ResultsDir: results, Store: db,
				MaxBatch: 200, CheckpointEvery: 500, Alerts: true, Staging: true, Clock: clock, UntilIdle: untilIdle,
				Log:  slog.New(slog.NewTextHandler(logs, nil)).With("instance", instance),
				Done: func(s stream.ConsumeStats) bool { judged.Store(instance, s.Judged+s.Rejected); return false },
			})
			if err == nil { // the last transaction a member commits on its way out comes after its last Done
				judged.Store(instance, st.Judged+st.Rejected)
			}
			done <- err
		}
		sum := func() int64 {
			var n int64
			judged.Range(func(_, v any) bool { n += v.(int64); return true })
			return n
		}
		// a and b start; once they have judged a fifth, c joins and a leaves.
		ctxA, stopA := context.WithCancel(ctx)
		ctxBC, stopBC := context.WithCancel(ctx)
		defer stopA()
		defer stopBC()
		done := make(chan error, 3)
		go run(ctxA, "a", 0, done)
		go run(ctxBC, "b", 0, done)
		for deadline := time.Now().Add(2 * time.Minute); sum() < 1200; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("no progress")
			}
		}
		go run(ctxBC, "c", 0, done)
		time.Sleep(200 * time.Millisecond)
		stopA()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(3 * time.Minute); sum() < 6000; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("judged %d of 6000", sum())
			}
		}
		// Quiet now: hours of processing time close every window and every
		// summary. (A task restored by a late rebalance starts its quiet time
		// afresh: the clock moves on until every alert is out.)
		want := recomputeAlerts(t, brokers, topics)
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(300 * time.Millisecond) {
			clock.add(2 * time.Hour)
			if n := len(topicAlerts(t, brokers, topics.Alerts)); n >= len(want) || time.Now().After(deadline) {
				break
			}
		}
		// The sinks write the last alerts: wait for the table to have them
		// all (the members stop when it does or, short of it, after a
		// bound, and the comparisons below say what is missing).
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			var n int
			if err := db.SQL.QueryRow("SELECT COUNT(*) FROM alerts").Scan(&n); err == nil && n >= len(want) {
				break
			}
		}
		stopBC()
		for range 2 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		if err := csvfile.Merge(results, topics.Validated, topics.DLQ, topics.Alerts); err != nil {
			t.Fatal(err)
		}
		got := topicAlerts(t, brokers, topics.Alerts)
		sameAlerts(t, "the alerts topic", got, want)
		var fromCSV []string
		if err := csvfile.ReadColumns(filepath.Join(results, csvfile.AlertsFile), []string{"alert_type", "card_id", "window_from", "window_to", "late", "payments", "total"}, func(f []string) {
			fromCSV = append(fromCSV, strings.Join(f, " "))
		}); err != nil {
			t.Fatal(err)
		}
		sameAlerts(t, "results/alerts.csv", fromCSV, want)
		rows, err := db.SQL.Query("SELECT alert_type, card_id, DATE_FORMAT(window_from, '%Y-%m-%d %H:%i:%s.%f'), DATE_FORMAT(window_to, '%Y-%m-%d %H:%i:%s.%f'), late, payments, total FROM alerts")
		if err != nil {
			t.Fatal(err)
		}
		var fromDB []string
		for rows.Next() {
			var f [7]string
			if err := rows.Scan(&f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6]); err != nil {
				t.Fatal(err)
			}
			f[2], f[3] = f[2][:len(f[2])-3], f[3][:len(f[3])-3] // microseconds to milliseconds
			fromDB = append(fromDB, strings.Join(f[:], " "))
		}
		rows.Close()
		sameAlerts(t, "the alerts table", fromDB, want)
		var staged, payments int
		db.SQL.QueryRow("SELECT COUNT(*), SUM(event_type = 'PAYMENT_EVENT') FROM event_staging").Scan(&staged, &payments)
		if payments != 6000 || staged != 6000+len(want) {
			t.Fatalf("event_staging holds %d events (%d payments), want %d (6000)", staged, payments, 6000+len(want))
		}
		t.Logf("%d alerts from %d payments on %d stolen cards", len(want), 6000, len(stolen))
	})
}

func sameAlerts(t *testing.T, where string, got, want []string) {
	t.Helper()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		var miss, extra []string
		for _, w := range want {
			if !slices.Contains(got, w) {
				miss = append(miss, w)
			}
		}
		for _, g := range got {
			if !slices.Contains(want, g) {
				extra = append(extra, g)
			}
		}
		var twice []string
		for i := 1; i < len(got); i++ {
			if got[i] == got[i-1] {
				twice = append(twice, got[i])
			}
		}
		t.Fatalf("%s: %d alerts, want %d; missing %d (first %q), unexpected %d (first %q), repeated %d (first %q, last %q)",
			where, len(got), len(want), len(miss), first(miss), len(extra), first(extra), len(twice), first(twice), last(twice))
	}
}

func last(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

const alertTime = "2006-01-02 15:04:05.000"

// alertLine is how the test compares an alert.
func alertLine(typ string, card int64, from, to time.Time, late bool, n int, total txpipe.Money) string {
	l := "0"
	if late {
		l = "1"
	}
	return fmt.Sprintf("%s %d %s %s %s %d %s", typ, card, from.UTC().Format(alertTime), to.UTC().Format(alertTime), l, n, total)
}

// topicAlerts reads the alerts topic.
func topicAlerts(t *testing.T, brokers []string, topic string) []string {
	t.Helper()
	var out []string
	readAll(t, brokers, topic, func(r *kgo.Record) {
		a, err := stream.DecodeAlert(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, alertLine(a.Type, a.CardID, a.From, a.To, a.Late, int(a.Count), a.Total))
	})
	return out
}

// recomputeAlerts derives the alerts from the validated topic, partition
// by partition in offset order (the order the validator judged them),
// with the rules written out plainly: 5-second windows, a watermark 5 s
// behind the largest event time, late payments alerted alone, summaries
// of the last hour every 10 s, and at the end everything closed.
func recomputeAlerts(t *testing.T, brokers []string, topics stream.Topics) []string {
	t.Helper()
	byPart := map[int32][]txpipe.Result{}
	readAll(t, brokers, topics.Validated, func(r *kgo.Record) {
		res, err := stream.DecodeResult(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		byPart[r.Partition] = append(byPart[r.Partition], res)
	})
	const win, every, span, bound = 5000, 10000, 3600000, 5000
	var out []string
	for _, p := range slices.Sorted(maps.Keys(byPart)) {
		type pay struct {
			at    int64
			amt   txpipe.Money
			late  bool
			card  int64
			alert bool // in a window not yet alerted
		}
		var pays []pay
		var maxEvent, wm, tick int64
		closeUpTo := func(to int64) {
			if to <= wm {
				return
			}
			old := wm
			wm = to
			// windows that close
			type wk struct{ start, card int64 }
			groups := map[wk][]pay{}
			for _, x := range pays {
				s := x.at - x.at%win
				if !x.late && s+win > old && s+win <= wm {
					groups[wk{s, x.card}] = append(groups[wk{s, x.card}], x)
				}
			}
			for k, g := range groups {
				var total txpipe.Money
				for _, x := range g {
					total += x.amt
				}
				out = append(out, alertLine(txpipe.EventAlert, k.card, time.UnixMilli(k.start), time.UnixMilli(k.start+win), false, len(g), total))
			}
			for tick != 0 && tick <= wm {
				perCard := map[int64][]pay{}
				for _, x := range pays {
					if x.at > tick-span && x.at <= tick {
						perCard[x.card] = append(perCard[x.card], x)
					}
				}
				for card, g := range perCard {
					var total txpipe.Money
					for _, x := range g {
						total += x.amt
					}
					out = append(out, alertLine(txpipe.EventAlertSummary, card, time.UnixMilli(tick-span), time.UnixMilli(tick), false, len(g), total))
				}
				tick += every
				keep := pays[:0:0]
				for _, x := range pays {
					if x.at > tick-span || (!x.late && x.at-x.at%win+win > wm) {
						keep = append(keep, x)
					}
				}
				pays = keep
				if len(pays) == 0 {
					tick = 0
				}
			}
		}
		for _, r := range byPart[p] {
			at := r.EventTime().UnixMilli()
			if r.DeclineReason == txpipe.DeclineStolen {
				x := pay{at: at, amt: r.Amount, card: r.CardID}
				if s := at - at%win; s+win <= wm {
					x.late = true
					out = append(out, alertLine(txpipe.EventAlert, r.CardID, time.UnixMilli(s), time.UnixMilli(s+win), true, 1, r.Amount))
				}
				pays = append(pays, x)
				if tick == 0 {
					from := max(at, wm)
					tick = from - from%every + every
				}
			}
			maxEvent = max(maxEvent, at)
			closeUpTo(maxEvent - bound)
		}
		closeUpTo(maxEvent + 3*span) // the idle watermark, hours later
	}
	slices.Sort(out)
	return out
}

// TestAlertsOffAfterOn: a consumer started without alerts on a state topic
// a consumer with alerts checkpointed to restores its cards and skips
// the alerts' state; so does a reader of the card states.
func TestAlertsOffAfterOn(t *testing.T) {
	kafkatest.EachConcurrent(t, func(t *testing.T, k kafkatest.Broker) {
		data := t.TempDir()
		if _, err := dataset.Generate(context.Background(), data, dataset.Options{Customers: 20, Cards: 30, Transactions: 600, Seed: 4}); err != nil {
			t.Fatal(err)
		}
		topics := k.Topics(t, "toggle")
		st := loadAndProduce(t, k.Addrs, topics, data)
		results := t.TempDir()
		run := func(alerts bool) stream.ConsumeStats {
			t.Helper()
			got, err := stream.Consume(context.Background(), stream.ConsumeConfig{
				Brokers: k.Addrs, Topics: topics, Group: topics.Input, Instance: "t1", ResultsDir: results,
				Alerts: alerts, UntilIdle: 2 * time.Second, CheckpointEvery: 50, Log: slog.New(slog.DiscardHandler),
			})
			if err != nil {
				t.Fatalf("consume with alerts %v: %v", alerts, err)
			}
			return got
		}
		if got := run(true); got.Judged+got.Rejected != st.Records {
			t.Fatalf("with alerts: %+v, want %d decisions", got, st.Records)
		}
		states, err := stream.CardStates(context.Background(), k.Addrs, topics)
		if err != nil || len(states) == 0 {
			t.Fatalf("card states after a run with alerts: %d cards, %v", len(states), err)
		}
		// The same transactions again: the restored ledger rejects every
		// one as a duplicate.
		src, err := stream.CSVRows(filepath.Join(data, csvfile.TransactionsFile))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Produce(context.Background(), stream.ProducerConfig{Brokers: k.Addrs, Topics: topics, FromStart: true}, src); err != nil {
			t.Fatal(err)
		}
		if got := run(false); got.Judged != 0 || got.Rejected != st.Records {
			t.Fatalf("without alerts, the same transactions again: %+v, want %d rejected as duplicates", got, st.Records)
		}
	})
}
