package stream_test

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/dataset"
	"github.com/txpipe/txpipe/internal/kafkatest"
	"github.com/txpipe/txpipe/internal/mysqltest"
	"github.com/txpipe/txpipe/internal/reftest"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/serving/mysqlstore"
	"github.com/txpipe/txpipe/stream"
)

// startBroker starts an in-memory embedded broker for one benchmark.
func startBroker(t testing.TB) []string {
	t.Helper()
	return kafkatest.StartEmbedded(t).Addrs
}

// loadAndProduce publishes a dataset's master data and transactions.
func loadAndProduce(t *testing.T, brokers []string, topics stream.Topics, data string) stream.ProduceStats {
	t.Helper()
	ctx := context.Background()
	m, err := csvfile.ReadMaster(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.PublishMaster(ctx, brokers, topics, m.Cards, m.Customers); err != nil {
		t.Fatal(err)
	}
	src, err := stream.CSVRows(filepath.Join(data, csvfile.TransactionsFile))
	if err != nil {
		t.Fatal(err)
	}
	st, err := stream.Produce(ctx, stream.ProducerConfig{Brokers: brokers, Topics: topics}, src)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestStreamMatchesReference(t *testing.T) {
	kafkatest.EachConcurrent(t, func(t *testing.T, b kafkatest.Broker) {
		data, want := reftest.Data(t), reftest.Results(t)
		brokers := b.Addrs
		topics := b.Topics(t, "transactions")
		st := loadAndProduce(t, brokers, topics, data)
		results := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cs, err := stream.Consume(ctx, stream.ConsumeConfig{
			Brokers: brokers, Topics: topics, Group: kafkatest.Name("g"), Instance: "i1", ResultsDir: results,
			Done: func(s stream.ConsumeStats) bool { return s.Written >= st.Records },
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("consume: %+v", cs)
		reftest.CompareFile(t, filepath.Join(results, csvfile.StreamFile), filepath.Join(want, csvfile.StreamFile))
	})
}

// stConsume runs Consume with UntilIdle, or until stop says so.
func stConsume(ctx context.Context, t *testing.T, brokers []string, topics stream.Topics, instance, results string, idle time.Duration, stop func(stream.ConsumeStats) bool, done chan<- stRun) {
	st, err := stream.Consume(ctx, stream.ConsumeConfig{
		Brokers: brokers, Topics: topics, Group: "g-" + topics.Input, Instance: instance,
		ResultsDir: results, UntilIdle: idle, MaxBatch: 100, CheckpointEvery: 300, Done: stop,
		Log: slog.Default().With("instance", instance),
	})
	done <- stRun{instance, st, err}
}

func sumWritten(m *sync.Map) int64 {
	var sum int64
	m.Range(func(_, v any) bool { sum += v.(int64); return true })
	return sum
}

type stRun struct {
	instance string
	stats    stream.ConsumeStats
	err      error
}

// stStates rebuilds every card's state from a topic's checkpoints and
// results, as a validator restores it.
func stStates(t *testing.T, brokers []string, topics stream.Topics) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	states, err := stream.CardStates(ctx, brokers, topics)
	if err != nil {
		t.Fatalf("card states of %s: %v", topics.Input, err)
	}
	out := make(map[string]string, len(states))
	for id, s := range states {
		out[strconv.FormatInt(id, 10)] = fmt.Sprintf("pending %s, last %d, seen %v", s.Pending, s.Last, s.Seen)
	}
	return out
}

func stSameFiles(t *testing.T, gotDir, wantDir string, files ...string) {
	t.Helper()
	for _, f := range files {
		reftest.SameRows(t, filepath.Join(gotDir, f), filepath.Join(wantDir, f))
	}
}

// TestScaleOut runs two consumers in one group over an 8-partition topic, a
// third joining and the first leaving mid-run: the results equal one
// consumer's.
func TestScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("rebalances take several seconds")
	}
	kafkatest.EachConcurrent(t, func(t *testing.T, b kafkatest.Broker) {
		brokers := b.Addrs
		data := t.TempDir()
		if _, err := dataset.Generate(context.Background(), data, dataset.Options{Customers: 300, Cards: 500, Transactions: 60000, Seed: 3, BadRows: 14}); err != nil {
			t.Fatal(err)
		}
		oneT, manyT := b.Topics(t, "one"), b.Topics(t, "many")
		ref := loadAndProduce(t, brokers, oneT, data)
		loadAndProduce(t, brokers, manyT, data)
		one := t.TempDir()
		done := make(chan stRun, 4)
		stConsume(context.Background(), t, brokers, oneT, "solo", one, 3*time.Second, nil, done)
		if r := <-done; r.err != nil {
			t.Fatal(r.err)
		}

		many := t.TempDir()
		ctxA, stopA := context.WithCancel(context.Background())
		defer stopA()
		// b and c run until the sinks of the group have written every record
		// (a's included, after it leaves): what each member wrote, summed.
		var written sync.Map
		untilAll := func(instance string) func(stream.ConsumeStats) bool {
			return func(s stream.ConsumeStats) bool {
				written.Store(instance, s.Written)
				var sum int64
				written.Range(func(_, v any) bool { sum += v.(int64); return true })
				return sum >= ref.Records+ref.Rejected
			}
		}
		wrote := func(instance string) int64 {
			v, _ := written.Load(instance)
			n, _ := v.(int64)
			return n
		}
		waitWrote := func(instance string) {
			t.Helper()
			for deadline := time.Now().Add(60 * time.Second); wrote(instance) == 0; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("member %s wrote nothing in a minute", instance)
				}
			}
		}
		go stConsume(ctxA, t, brokers, manyT, "a", many, 0, untilAll("a"), done)
		go stConsume(context.Background(), t, brokers, manyT, "b", many, 8*time.Second, untilAll("b"), done)
		waitWrote("a") // a and b are working: c joins
		go stConsume(context.Background(), t, brokers, manyT, "c", many, 8*time.Second, untilAll("c"), done)
		// a leaves once c is a member of the validators' group: a
		// rebalance, not a time, says when.
		adm, cl := stAdmin(t, brokers)
		defer cl.Close()
		group := "g-" + manyT.Input
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("c did not join the group in a minute")
			}
			dg, err := adm.DescribeGroups(context.Background(), group)
			if err == nil && slices.ContainsFunc(dg[group].Members, func(m kadm.DescribedGroupMember) bool { return m.InstanceID != nil && *m.InstanceID == "c" }) {
				break
			}
		}
		stopA() // a leaves mid-run
		judged := map[string]int64{}
		for range 3 {
			r := <-done
			if r.err != nil {
				t.Fatal(r.err)
			}
			// a's last count, after its last Done call, completes the sum
			written.Store(r.instance, r.stats.Written)
			judged[r.instance] = r.stats.Judged + r.stats.Rejected
		}
		if wrote("a") == 0 || judged["b"]+judged["c"] == 0 {
			t.Fatalf("the work was not shared across the members as planned: judged %v, a wrote %d", judged, wrote("a"))
		}
		if judged["a"]+judged["b"]+judged["c"] < ref.Records || sumWritten(&written) < ref.Records+ref.Rejected {
			t.Errorf("the members judged %v and wrote %d records, want %d judged and %d written",
				judged, sumWritten(&written), ref.Records, ref.Records+ref.Rejected)
		}
		if err := csvfile.Merge(many, manyT.Validated, manyT.DLQ); err != nil {
			t.Fatal(err)
		}
		stSameFiles(t, many, one, csvfile.StreamFile)
		if t.Failed() {
			stAudit(t, brokers, manyT, oneT)
		}
		if got, want := stStates(t, brokers, manyT), stStates(t, brokers, oneT); len(got) != len(want) {
			t.Fatalf("card states: %d cards vs %d", len(got), len(want))
		} else {
			for k, v := range want {
				if got[k] != v {
					t.Fatalf("card %s: state %s, single consumer %s", k, got[k], v)
				}
			}
		}
		t.Logf("%d transactions; judged per member %v", ref.Records, judged)
	})
}

// TestLimitChangeMidStream publishes a lower limit for a card while a
// validator runs: later transactions of that card are judged against it.
func TestLimitChangeMidStream(t *testing.T) {
	kafkatest.EachConcurrent(t, func(t *testing.T, b kafkatest.Broker) {
		brokers := b.Addrs
		topics := b.Topics(t, "limits")
		ctx := context.Background()
		card := txpipe.Card{ID: 1, CustomerID: 1, CardTypeID: 1, Number: "4000-0000-0000-0002", Expiration: "01/30", CreditLimit: 100000, CurrentBalance: 0, IssueDate: "2024-01-01"}
		cust := txpipe.Customer{ID: 1, Name: "A", Address: "1 Main St, Albany, NY 12207", CreditScore: 700}
		if err := stream.PublishMaster(ctx, brokers, topics, []txpipe.Card{card}, []txpipe.Customer{cust}); err != nil {
			t.Fatal(err)
		}
		tx := func(id int, amount string) stream.Row {
			return stream.Row{Raw: txpipe.RawTransaction{TransactionID: strconv.Itoa(id), CardID: "1", Merchant: "M", Timestamp: "2025-04-01 10:00:0" + strconv.Itoa(id), Amount: amount, Location: "2 Shop Rd, Troy, NY 12180", Type: "purchase"}, Seq: int64(id), Source: "test:" + strconv.Itoa(id), FieldsOK: true}
		}
		produce := func(rows ...stream.Row) {
			t.Helper()
			_, err := stream.Produce(ctx, stream.ProducerConfig{Brokers: brokers, Topics: topics}, stream.RowsOf("test", func(yield func(stream.Row) error) error {
				for _, r := range rows {
					if err := yield(r); err != nil {
						return err
					}
				}
				return nil
			}))
			if err != nil {
				t.Fatal(err)
			}
		}
		results := t.TempDir()
		var written, applied atomic.Int64
		cctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := stream.Consume(cctx, stream.ConsumeConfig{
				Brokers: brokers, Topics: topics, Group: topics.Input, Instance: "l1", ResultsDir: results,
				Done: func(s stream.ConsumeStats) bool {
					written.Store(s.Written)
					applied.Store(s.MasterApplied)
					return false
				},
			})
			done <- err
		}()
		waitWritten := func(n int64) {
			t.Helper()
			deadline := time.Now().Add(20 * time.Second)
			for written.Load() < n {
				if time.Now().After(deadline) {
					t.Fatalf("only %d of %d records written", written.Load(), n)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		produce(tx(1, "400.00")) // pending 400 of 1000
		waitWritten(1)
		card.CreditLimit = 70000 // the batch lowered the limit to 700
		if err := stream.PublishMaster(ctx, brokers, topics, []txpipe.Card{card}, nil); err != nil {
			t.Fatal(err)
		}
		// The running validator follows the cards topic: wait until it has
		// applied all of it.
		masterEnd, err := stream.MasterEnd(ctx, brokers, topics)
		if err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(time.Minute); applied.Load() < masterEnd; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the validator applied the master data up to %d of %d in a minute", applied.Load(), masterEnd)
			}
		}
		produce(tx(2, "350.00"), tx(3, "300.00"))
		waitWritten(3)
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		var got []string
		if err := csvfile.ReadResults(filepath.Join(results, csvfile.StreamFile), func(r txpipe.Result, _ int) error {
			got = append(got, fmt.Sprintf("%d %s %s %s", r.ID, r.Status, r.DeclineReason, r.PendingBalance))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		want := []string{
			"1 pending  400.00",
			"2 declined amount_over_half_limit 400.00", // 2×350 ≥ 700: the new limit
			"3 pending  700.00",                        // lands exactly on the new limit
		}
		if !slices.Equal(got, want) {
			t.Fatalf("results\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}

// TestBadRecordsGoToTheDeadLetterTopic sends every kind of record that
// cannot be judged; each lands in rejected_transactions.csv with its
// reason, and the good records around them are judged.
func TestBadRecordsGoToTheDeadLetterTopic(t *testing.T) {
	kafkatest.EachConcurrent(t, func(t *testing.T, b kafkatest.Broker) {
		brokers := b.Addrs
		topics := b.Topics(t, "bad")
		ctx := context.Background()
		card := txpipe.Card{ID: 5, CustomerID: 1, CardTypeID: 1, Number: "4000-0000-0000-0002", Expiration: "01/30", CreditLimit: 100000, IssueDate: "2024-01-01"}
		cust := txpipe.Customer{ID: 1, Name: "A", Address: "1 Main St, Albany, NY 12207"}
		if err := stream.PublishMaster(ctx, brokers, topics, []txpipe.Card{card}, []txpipe.Customer{cust}); err != nil {
			t.Fatal(err)
		}
		good := `{"transaction_id":%s,"card_id":%s,"merchant_name":"M","timestamp":%s,"amount":%s,"location":"2 Shop Rd, Troy, NY 12180","transaction_type":"purchase","related_transaction_id":null}`
		values := []struct{ value, reason string }{
			{fmt.Sprintf(good, "1", "5", `"2025-04-01 10:00:00"`, "10.5"), ""}, // the Python producer's numbers
			{`not json`, "bad_json"},
			{`{"transaction_id":2,"card_id":5`, "bad_json"},
			{fmt.Sprintf(good, `"x"`, "5", `"2025-04-01 10:00:01"`, "1"), "bad_transaction_id"},
			{fmt.Sprintf(good, "3", `"five"`, `"2025-04-01 10:00:01"`, "1"), "bad_card_id"},
			{fmt.Sprintf(good, "4", "5", `"2025-04-01 10:00:01"`, `"12.505"`), "bad_amount"},
			{fmt.Sprintf(good, "5", "5", `"2025-04-01 10:00:01"`, `"1e3"`), "bad_amount"},
			{fmt.Sprintf(good, "6", "5", `"2025-04-01 10:00:01"`, "null"), "bad_amount"},
			{fmt.Sprintf(good, "7", "5", `"2025-13-01 10:00:01"`, "1"), "bad_timestamp"},
			{fmt.Sprintf(good, "8", "99", `"2025-04-01 10:00:01"`, "1"), "unknown_card"},
			{fmt.Sprintf(good, "1", "5", `"2025-04-01 10:00:02"`, "1"), "duplicate_transaction_id"},
			{fmt.Sprintf(good, `"9"`, `"5"`, `"2025-04-01 10:00:03"`, `"20"`), ""},
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stream.EnsureTopics(ctx, cl, topics, 1); err != nil {
			t.Fatal(err)
		}
		for i, v := range values {
			r := &kgo.Record{Topic: topics.Input, Key: []byte("5"), Value: []byte(v.value), Headers: []kgo.RecordHeader{{Key: stream.HeaderSeq, Value: []byte(strconv.Itoa(i + 1))}}}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		cl.Close()
		results := t.TempDir()
		st, err := stream.Consume(ctx, stream.ConsumeConfig{
			Brokers: brokers, Topics: topics, Group: topics.Input, Instance: "b1", ResultsDir: results,
			Done: func(s stream.ConsumeStats) bool { return s.Written >= int64(len(values)) },
		})
		if err != nil {
			t.Fatal(err)
		}
		if st.Judged != 2 || st.Rejected != int64(len(values)-2) {
			t.Fatalf("judged %d, rejected %d", st.Judged, st.Rejected)
		}
		var reasons []string
		if err := csvfile.ReadColumns(filepath.Join(results, csvfile.RejectedFile), []string{"reason", "source"}, func(v []string) {
			reasons = append(reasons, v[0])
			if v[1] == "" {
				t.Errorf("rejected row without a source")
			}
		}); err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, v := range values {
			if v.reason != "" {
				want = append(want, v.reason)
			}
		}
		if !slices.Equal(reasons, want) {
			t.Fatalf("rejected reasons %v, want %v", reasons, want)
		}
		var ids []string
		if err := csvfile.ReadResults(filepath.Join(results, csvfile.StreamFile), func(r txpipe.Result, _ int) error {
			ids = append(ids, fmt.Sprintf("%d=%s", r.ID, r.PendingBalance))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids, []string{"1=10.50", "9=30.50"}) {
			t.Fatalf("judged %v", ids)
		}
	})
}

// TestNewBrokerSameResults runs consume into a results folder, then
// against a new incarnation of its topics holding other data: on the
// embedded broker a new broker with topics of the same names, on Kafka the
// same topics deleted and created again (each has a new topic id, as on a
// new cluster). The old segments must not hide the new records.
func TestNewBrokerSameResults(t *testing.T) {
	kafkatest.EachConcurrent(t, func(t *testing.T, shared kafkatest.Broker) {
		results := t.TempDir()
		db, err := mysqlstore.Open(context.Background(), mysqltest.NewDatabase(t), slog.Default())
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		topics := shared.Topics(t, "same")
		group := kafkatest.Name("same")
		run := func(seed int64) string {
			b := shared
			if b.Real() {
				b.DeleteTopics(t, stream.ResetTopics(topics)...)
			} else {
				b = kafkatest.StartEmbedded(t)
			}
			data := t.TempDir()
			if _, err := dataset.Generate(context.Background(), data, dataset.Options{Customers: 20, Cards: 30, Transactions: 300, Seed: seed}); err != nil {
				t.Fatal(err)
			}
			st := loadAndProduce(t, b.Addrs, topics, data)
			if _, err := stream.Consume(context.Background(), stream.ConsumeConfig{
				Brokers: b.Addrs, Topics: topics, Group: group, Instance: "s", ResultsDir: results,
				Store: db, Done: func(s stream.ConsumeStats) bool { return s.Written >= st.Records },
			}); err != nil {
				t.Fatal(err)
			}
			out, err := os.ReadFile(filepath.Join(results, csvfile.StreamFile))
			if err != nil {
				t.Fatal(err)
			}
			return string(out)
		}
		first := run(1)
		second := run(2)
		if first == second || strings.Count(second, "\n") != 301 {
			t.Fatalf("the second broker's stream was not written afresh: %d lines", strings.Count(second, "\n"))
		}
		// The database too holds the second stream (same ids, new decisions).
		rows, err := db.StreamRows(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		w := csv.NewWriter(&b)
		w.Write(csvfile.StreamColumns)
		for _, r := range rows {
			w.Write(csvfile.AppendStreamResult(nil, r))
		}
		w.Flush()
		if b.String() != second {
			t.Fatal("MySQL still holds the first broker's stream")
		}
		fresh := t.TempDir()
		results = fresh
		if again := run(2); again != second {
			gl, sl := strings.Split(again, "\n"), strings.Split(second, "\n")
			for i := range min(len(gl), len(sl)) {
				if gl[i] != sl[i] {
					t.Fatalf("a fresh results folder differs from a reused one at line %d (%d vs %d lines):\n fresh  %s\n reused %s", i+1, len(gl), len(sl), gl[i], sl[i])
				}
			}
			t.Fatalf("a fresh results folder has %d lines, a reused one %d", len(gl), len(sl))
		}
	})
}

// stAudit reports, on failure, which transactions the validated topic of
// topic holds a different number of times than that of ref.
func stAudit(t *testing.T, brokers []string, topic, ref stream.Topics) {
	t.Helper()
	count := func(topics stream.Topics) map[string][]string {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topics.Validated),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		seen := map[string][]string{}
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
			fs := cl.PollFetches(ctx)
			cancel()
			if fs.Empty() {
				return seen
			}
			fs.EachRecord(func(r *kgo.Record) {
				v := string(r.Value)
				i := strings.Index(v, `"transaction_id":`)
				j := strings.IndexByte(v[i:], ',')
				id := v[i+17 : i+j]
				seen[id] = append(seen[id], fmt.Sprintf("p%d@%d", r.Partition, r.Offset))
			})
		}
	}
	got, want := count(topic), count(ref)
	n := 0
	for id, w := range want {
		if g := got[id]; len(g) != len(w) && n < 200 {
			t.Logf("transaction %s: validated %d times %v, %v in the reference", id, len(g), g, w)
			n++
		}
	}
	t.Logf("%d transactions validated, %d in the reference", len(got), len(want))
}

// TestQuietPartitionsAreCheckpointed stops the input long before a
// partition has enough results for a checkpoint: the interval still
// checkpoints every partition, marking the end of its results, so a
// restore replays nothing.
func TestQuietPartitionsAreCheckpointed(t *testing.T) {
	kafkatest.EachConcurrent(t, func(t *testing.T, b kafkatest.Broker) {
		brokers := b.Addrs
		topics, st := stSmallTopic(t, b, "quiet", dataset.Options{Customers: 40, Cards: 80, Transactions: 2000, Seed: 5})
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		_, err := stream.Consume(ctx, stream.ConsumeConfig{
			Brokers: brokers, Topics: topics, Group: topics.Input, Instance: "q1", ResultsDir: t.TempDir(),
			CheckpointEvery: 1 << 30, CheckpointInterval: 700 * time.Millisecond, UntilIdle: 4 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		// The last checkpoint marker of each partition names the end of its
		// results.
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topics.State, topics.Validated),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		marker := map[int32]string{}
		lastResult := map[int32]int64{}
		results := 0
		for {
			pctx, pcancel := context.WithTimeout(ctx, 1500*time.Millisecond)
			fs := cl.PollFetches(pctx)
			pcancel()
			if fs.Empty() {
				break
			}
			fs.EachRecord(func(r *kgo.Record) {
				switch {
				case r.Topic == topics.Validated:
					lastResult[r.Partition] = r.Offset
					results++
				case string(r.Key) == stream.LedgerName+"/m":
					marker[r.Partition] = string(r.Value)
				}
			})
		}
		if int64(results) != st.Records || len(lastResult) == 0 {
			t.Fatalf("%d results on %d partitions, want %d", results, len(lastResult), st.Records)
		}
		for p, off := range lastResult {
			if want := fmt.Sprintf(`{"validated_next":%d}`, off+1); marker[p] != want {
				t.Errorf("partition %d: last checkpoint %q, want %s", p, marker[p], want)
			}
		}
		states, err := stream.CardStates(ctx, brokers, topics)
		if err != nil {
			t.Fatal(err)
		}
		if len(states) == 0 {
			t.Fatal("no card state restored")
		}
	})
}

// TestRestoreRefusesDeletedResults deletes results a restore needs (as a
// too short retention would): the consumer stops with an error rather
// than judge from a wrong balance.
func TestRestoreRefusesDeletedResults(t *testing.T) {
	kafkatest.EachConcurrent(t, func(t *testing.T, b kafkatest.Broker) {
		brokers := b.Addrs
		topics, _ := stSmallTopic(t, b, "short", dataset.Options{Customers: 20, Cards: 30, Transactions: 300, Seed: 9})
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cfg := stream.ConsumeConfig{
			Brokers: brokers, Topics: topics, Group: topics.Input, Instance: "s1", ResultsDir: t.TempDir(),
			CheckpointEvery: 1 << 30, CheckpointInterval: time.Hour, UntilIdle: 2 * time.Second,
		}
		if _, err := stream.Consume(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		del := kadm.Offsets{}
		del.Add(kadm.Offset{Topic: topics.Validated, Partition: 0, At: 3})
		if _, err := kadm.NewClient(cl).DeleteRecords(ctx, del); err != nil {
			t.Fatal(err)
		}
		// A new member of the group must restore partition 0 from its start.
		cfg.Instance = "s2"
		_, err = stream.Consume(ctx, cfg)
		if err == nil || !strings.Contains(err.Error(), "records deleted") {
			t.Fatalf("consume after the results were deleted: %v, want a records-deleted error", err)
		}
	})
}

// brokenStore is a database whose stored offsets cannot be read.
type brokenStore struct{}

func (brokenStore) WriteViews(context.Context, string, *txpipe.ViewBatch) error {
	return errors.New("broken")
}

func (brokenStore) Offsets(context.Context, string, string) (map[int32]txpipe.Offset, error) {
	return nil, errors.New("migration 00002_batch.sql failed")
}

func (brokenStore) ResetPartition(context.Context, string, string, int32, bool) error {
	return errors.New("broken")
}

// TestNotIdleWhileTheSinkCannotStart: a sink whose partitions cannot be set
// up (its database fails) has written nothing, so --until-idle must not
// stop the consumer, however long it waits.
func TestNotIdleWhileTheSinkCannotStart(t *testing.T) {
	kafkatest.Each(t, func(t *testing.T, b kafkatest.Broker) {
		defer stream.SetNoAssignmentWait(stream.SetNoAssignmentWait(300 * time.Millisecond))
		brokers := b.Addrs
		topics, st := stSmallTopic(t, b, "nosink", dataset.Options{Customers: 10, Cards: 20, Transactions: 100, Seed: 2})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a bound on a hang
		defer cancel()
		// The test ends the run (Done) once the validator has judged
		// everything and 2 s more have passed, four times the idle time:
		// a run that ends before has stopped as idle.
		var judgedAt time.Time
		got, err := stream.Consume(ctx, stream.ConsumeConfig{
			Brokers: brokers, Topics: topics, Group: topics.Input, Instance: "n1", ResultsDir: t.TempDir(),
			Store: brokenStore{}, Transient: func(error) bool { return false }, UntilIdle: 500 * time.Millisecond,
			Log: slog.New(slog.DiscardHandler),
			Done: func(s stream.ConsumeStats) bool {
				if s.Judged+s.Rejected < st.Records {
					return false
				}
				if judgedAt.IsZero() {
					judgedAt = time.Now()
				}
				return time.Since(judgedAt) >= 2*time.Second
			},
		})
		if judgedAt.IsZero() {
			t.Fatalf("the validator did not judge the %d transactions in 2 minutes: %+v, %v", st.Records, got, err)
		}
		if d := time.Since(judgedAt); d < 2*time.Second || got.Written != 0 {
			t.Fatalf("consume stopped %v after the last transaction was judged with %d written (err %v): idle while its sink could not start", d.Round(time.Millisecond), got.Written, err)
		}
	})
}

// stSmallTopic publishes a small generated dataset to a topic of its own.
func stSmallTopic(t *testing.T, b kafkatest.Broker, topic string, opts dataset.Options) (stream.Topics, stream.ProduceStats) {
	t.Helper()
	data := t.TempDir()
	if _, err := dataset.Generate(context.Background(), data, opts); err != nil {
		t.Fatal(err)
	}
	topics := b.Topics(t, topic)
	return topics, loadAndProduce(t, b.Addrs, topics, data)
}

// memStore is a database view in memory that can go down: rows and
// offsets per consumer, written together or not at all.
type memStore struct {
	mu       sync.Mutex
	down     bool
	upFor    int           // writes before it goes down by itself (0: never)
	rows     map[int64]int // transaction id → times written
	rejected int
	offsets  map[string]map[int32]txpipe.Offset // topic → partition → offset
}

var errDown = errors.New("connection refused")

func newMemStore() *memStore {
	return &memStore{rows: map[int64]int{}, offsets: map[string]map[int32]txpipe.Offset{}}
}

func (s *memStore) setDown(down bool) { s.mu.Lock(); s.down = down; s.mu.Unlock() }

func (s *memStore) WriteViews(_ context.Context, _ string, b *txpipe.ViewBatch) error {
	results, rejected, offsets := b.Results, b.Rejected, b.Next
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errDown
	}
	for _, r := range results {
		s.rows[r.ID]++
	}
	s.rejected += len(rejected)
	for _, o := range offsets {
		if s.offsets[o.Topic] == nil {
			s.offsets[o.Topic] = map[int32]txpipe.Offset{}
		}
		s.offsets[o.Topic][o.Partition] = o
	}
	if s.upFor > 0 {
		if s.upFor--; s.upFor == 0 {
			s.down = true
		}
	}
	return nil
}

func (s *memStore) Offsets(_ context.Context, _, topic string) (map[int32]txpipe.Offset, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return nil, errDown
	}
	return maps.Clone(s.offsets[topic]), nil
}

func (s *memStore) ResetPartition(context.Context, string, string, int32, bool) error { return nil }

func (s *memStore) written() (rows, twice int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.rows {
		rows++
		if n > 1 {
			twice++
		}
	}
	return rows, twice
}

// TestStopWhileDatabaseDown: a stop (Ctrl-C, SIGTERM) while the database
// is down ends within the stop timeout, losing nothing: the rows the
// database did not take are written on the next start.
func TestStopWhileDatabaseDown(t *testing.T) {
	b := kafkatest.StartEmbedded(t)
	brokers := b.Addrs
	topics, st := stSmallTopic(t, b, "dbdown", dataset.Options{Customers: 30, Cards: 50, Transactions: 3000, Seed: 8})
	store := newMemStore()
	store.upFor = 1 // down once the first rows are in
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := stream.ConsumeConfig{
		Brokers: brokers, Topics: topics, Group: topics.Input, Instance: "d1", ResultsDir: t.TempDir(),
		Store: store, Transient: func(err error) bool { return errors.Is(err, errDown) },
		MaxBatch: 100, StopTimeout: time.Second, Log: slog.New(slog.DiscardHandler),
	}
	judgedAll := make(chan struct{})
	var once sync.Once
	cfg.Done = func(s stream.ConsumeStats) bool {
		if s.Judged+s.Rejected >= st.Records+st.Rejected {
			once.Do(func() { close(judgedAll) })
		}
		return false
	}
	done := make(chan error, 1)
	go func() { _, err := stream.Consume(ctx, cfg); done <- err }()
	select {
	case <-judgedAll:
	case <-time.After(2 * time.Minute):
		t.Fatal("the validator did not judge everything while the database was down")
	}
	time.Sleep(200 * time.Millisecond) // the sink is retrying its write
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("a stop while the database is down: %v", err)
		}
	case <-time.After(60 * time.Second): // the stop timeout is 1 s: a minute is only a bound on a hang
		t.Fatal("consume did not stop while the database was down")
	}
	before, _ := store.written()
	if before >= int(st.Records) {
		t.Fatalf("the database took %d of %d rows while it was down: the test proves nothing", before, st.Records)
	}
	// The next start writes what the database did not take, once.
	store.setDown(false)
	cfg.Done, cfg.UntilIdle = nil, time.Second
	if _, err := stream.Consume(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	rows, twice := store.written()
	if rows != int(st.Records) || twice != 0 {
		t.Fatalf("after the restart the database holds %d of %d rows (%d twice)", rows, st.Records, twice)
	}
}

func stAdmin(t *testing.T, brokers []string) (*kadm.Client, *kgo.Client) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	return kadm.NewClient(cl), cl
}
