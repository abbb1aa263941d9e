package stream_test

import (
	"context"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/dataset"
	"github.com/txpipe/txpipe/internal/kafkatest"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/stream"
)

// inputRecords reads the committed records of the input topic: seq → times.
func inputRecords(t *testing.T, brokers []string, topic string) map[string]int {
	t.Helper()
	seen := map[string]int{}
	readAll(t, brokers, topic, func(r *kgo.Record) {
		for _, h := range r.Headers {
			if h.Key == stream.HeaderSource {
				seen[string(h.Value)]++
			}
		}
	})
	return seen
}

// TestProduceTwicePublishesOnce: a second produce of the same file
// publishes nothing and says where it continued; the results equal a
// single produce's.
func TestProduceTwicePublishesOnce(t *testing.T) {
	kafkatest.EachConcurrent(t, func(t *testing.T, k kafkatest.Broker) {
		brokers := k.Addrs
		data := t.TempDir()
		if _, err := dataset.Generate(context.Background(), data, dataset.Options{Customers: 30, Cards: 50, Transactions: 2000, Seed: 9, BadRows: 5}); err != nil {
			t.Fatal(err)
		}
		onceT, twiceT := k.Topics(t, "once"), k.Topics(t, "twice")
		once := loadAndProduce(t, brokers, onceT, data)
		first := loadAndProduce(t, brokers, twiceT, data)
		second := loadAndProduce(t, brokers, twiceT, data)
		if first != (stream.ProduceStats{Records: once.Records, Rejected: once.Rejected, Elapsed: first.Elapsed}) {
			t.Fatalf("first produce %+v, want %+v", first, once)
		}
		if second.Records+second.Rejected != 0 || second.From != strconv.FormatInt(once.Records+once.Rejected, 10) {
			t.Fatalf("second produce of the same file: %+v, want nothing published after position %d", second, once.Records+once.Rejected)
		}
		if !strings.Contains(second.String(), "continued after position") {
			t.Errorf("the summary does not say it continued: %s", second)
		}
		for source, n := range inputRecords(t, brokers, twiceT.Input) {
			if n != 1 {
				t.Errorf("%s is on the input topic %d times", source, n)
			}
		}
		a, b := t.TempDir(), t.TempDir()
		done := make(chan stRun, 2)
		stConsume(context.Background(), t, brokers, onceT, "o1", a, 2*time.Second, nil, done)
		stConsume(context.Background(), t, brokers, twiceT, "t1", b, 2*time.Second, nil, done)
		for range 2 {
			if r := <-done; r.err != nil {
				t.Fatal(r.err)
			}
		}
		stSameFiles(t, b, a, csvfile.StreamFile, csvfile.RejectedFile)

		// --from-start publishes it again, on purpose: the validator rejects
		// every transaction as a duplicate; the results stay.
		src, err := stream.CSVRows(filepath.Join(data, csvfile.TransactionsFile))
		if err != nil {
			t.Fatal(err)
		}
		again, err := stream.Produce(context.Background(), stream.ProducerConfig{Brokers: brokers, Topics: twiceT, FromStart: true}, src)
		if err != nil || again.Records != once.Records {
			t.Fatalf("--from-start: %+v, %v", again, err)
		}
		stConsume(context.Background(), t, brokers, twiceT, "t1", b, 2*time.Second, nil, done)
		if r := <-done; r.err != nil {
			t.Fatal(r.err)
		}
		reasons := map[string]int{}
		if err := csvfile.ReadColumns(filepath.Join(b, csvfile.RejectedFile), []string{"reason"}, func(f []string) { reasons[f[0]]++ }); err != nil {
			t.Fatal(err)
		}
		judged := 0
		if err := csvfile.ReadColumns(filepath.Join(a, csvfile.StreamFile), []string{"status"}, func([]string) { judged++ }); err != nil {
			t.Fatal(err)
		}
		if reasons[string(txpipe.RejectDuplicate)] != judged {
			t.Errorf("after --from-start: %v rejected rows, want every judged transaction (%d) as a duplicate", reasons, judged)
		}
		reftest := filepath.Join(a, csvfile.StreamFile)
		stSameFileOnly(t, filepath.Join(b, csvfile.StreamFile), reftest)
	})
}

func stSameFileOnly(t *testing.T, got, want string) {
	t.Helper()
	stSameFiles(t, filepath.Dir(got), filepath.Dir(want), filepath.Base(got))
}

// TestProducerStopsExactly stops a producer at random moments and runs it
// again until it is done: the input topic holds every row once, and the
// runs' reports add up to the rows.
func TestProducerStopsExactly(t *testing.T) {
	kafkatest.EachConcurrent(t, func(t *testing.T, k kafkatest.Broker) {
		brokers := k.Addrs
		data := t.TempDir()
		if _, err := dataset.Generate(context.Background(), data, dataset.Options{Customers: 30, Cards: 50, Transactions: 5000, Seed: 10, BadRows: 7}); err != nil {
			t.Fatal(err)
		}
		topics := k.Topics(t, "stops")
		path := filepath.Join(data, csvfile.TransactionsFile)
		rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 1))
		var total int64
		runs := 0
		for ; runs < 50; runs++ {
			src, err := stream.CSVRows(path)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			stopAt := 1 + rng.IntN(1500)
			n := 0
			rows := src.Rows
			src.Rows = func(after string, yield func(stream.Row) error) error {
				return rows(after, func(r stream.Row) error {
					if n++; n == stopAt {
						cancel() // a stop in the middle of a transaction
					}
					return yield(r)
				})
			}
			st, err := stream.Produce(ctx, stream.ProducerConfig{Brokers: brokers, Topics: topics, TxnRows: 100 + rng.IntN(400), Log: slog.New(slog.DiscardHandler)}, src)
			cancel()
			if err != nil {
				t.Fatalf("run %d: %v", runs, err)
			}
			total += st.Records + st.Rejected
			if st.Records+st.Rejected == 0 && n < stopAt {
				break // nothing left
			}
		}
		seen := inputRecords(t, brokers, topics.Input)
		dlq := inputRecords(t, brokers, topics.DLQ)
		for source, n := range dlq {
			seen[source] += n
		}
		if int64(len(seen)) != 5007 || total != 5007 {
			t.Errorf("after %d runs: %d rows on the topics, the runs reported %d; want 5007", runs, len(seen), total)
		}
		for source, n := range seen {
			if n != 1 {
				t.Errorf("%s published %d times", source, n)
			}
		}
		if runs < 3 {
			t.Errorf("only %d runs: the stops did not happen", runs)
		}
	})
}

// TestDuplicateFarLaterCaught: a transaction sent again 10,000
// transactions later on the same card is rejected as a duplicate, also
// after a restart (the dedup state restored from its checkpoint and the
// results after it) and after a rebalance hands the card's partition to
// another member.
func TestDuplicateFarLaterCaught(t *testing.T) {
	kafkatest.EachConcurrent(t, func(t *testing.T, k kafkatest.Broker) {
		brokers := k.Addrs
		topics := k.Topics(t, "far")
		ctx := context.Background()
		card := txpipe.Card{ID: 1, CustomerID: 1, CardTypeID: 1, CreditLimit: 1_000_000_00}
		if err := stream.PublishMaster(ctx, brokers, topics, []txpipe.Card{card}, []txpipe.Customer{{ID: 1, Address: "1 Main St, Troy, NY 12180"}}); err != nil {
			t.Fatal(err)
		}
		base := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
		row := func(id int, seq int64) stream.Row {
			amount := "1.00"
			if id%2 == 0 {
				amount = "-1.00"
			}
			return stream.Row{Raw: txpipe.RawTransaction{TransactionID: strconv.Itoa(id), CardID: "1", Merchant: "M",
				Timestamp: base.Add(time.Duration(id) * time.Second).Format(txpipe.TimestampLayout), Amount: amount,
				Location: "2 Shop Rd, Troy, NY 12180", Type: "purchase"}, Seq: seq, Source: "far:" + strconv.FormatInt(seq, 10), FieldsOK: true}
		}
		produce := func(rows ...stream.Row) {
			t.Helper()
			if _, err := stream.Produce(ctx, stream.ProducerConfig{Brokers: brokers, Topics: topics}, stream.RowsOf("test", func(yield func(stream.Row) error) error {
				for _, r := range rows {
					if err := yield(r); err != nil {
						return err
					}
				}
				return nil
			})); err != nil {
				t.Fatal(err)
			}
		}
		var rows []stream.Row
		for id := 1; id <= 10001; id++ {
			rows = append(rows, row(id, int64(id)))
		}
		produce(rows...)
		results := t.TempDir()
		run := func(instance string, extra ...func(*stream.ConsumeConfig)) stream.ConsumeStats {
			t.Helper()
			cfg := stream.ConsumeConfig{Brokers: brokers, Topics: topics, Group: topics.Input, Instance: instance, ResultsDir: results,
				UntilIdle: 2 * time.Second, MaxBatch: 500, CheckpointEvery: 700, Log: slog.New(slog.DiscardHandler)}
			for _, e := range extra {
				e(&cfg)
			}
			st, err := stream.Consume(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			return st
		}
		run("f1")
		// A restart: the first id again, 10,000 transactions later.
		produce(row(1, 20001))
		if st := run("f1"); st.Rejected != 1 || st.Judged != 0 {
			t.Fatalf("the repeat of transaction 1 after a restart: %+v, want 1 rejected", st)
		}
		// Another member takes the partition: transaction 2 again.
		produce(row(2, 20002))
		if st := run("f2"); st.Rejected != 1 || st.Judged != 0 {
			t.Fatalf("the repeat of transaction 2 on another member: %+v, want 1 rejected", st)
		}
		b, err := os.ReadFile(filepath.Join(results, csvfile.RejectedFile))
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(b), string(txpipe.RejectDuplicate)); n != 2 {
			t.Fatalf("%d duplicate rows, want 2:\n%s", n, b)
		}
		states, err := stream.CardStates(ctx, brokers, topics)
		if err != nil {
			t.Fatal(err)
		}
		if s := states[1]; s.Pending != 100 || len(s.Seen) != 10001 {
			t.Fatalf("card 1: pending %s with %d ids remembered, want 1.00 and 10001", s.Pending, len(s.Seen))
		}
	})
}

// TestForeignProducerKeys: records whose key is not their card id, or that
// have no key, land on other partitions than their card's; they move to
// their card's partition before judging, so a card's balance is the same
// as when every record is keyed by card, through a restart too.
func TestForeignProducerKeys(t *testing.T) {
	kafkatest.EachConcurrent(t, func(t *testing.T, k kafkatest.Broker) {
		brokers := k.Addrs
		data := t.TempDir()
		if _, err := dataset.Generate(context.Background(), data, dataset.Options{Customers: 10, Cards: 12, Transactions: 3000, Seed: 12}); err != nil {
			t.Fatal(err)
		}
		keyed := k.Topics(t, "keyed")
		ref := loadAndProduce(t, brokers, keyed, data)
		topics := k.Topics(t, "foreign")
		m, err := csvfile.ReadMaster(data)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if err := stream.PublishMaster(ctx, brokers, topics, m.Cards, m.Customers); err != nil {
			t.Fatal(err)
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if _, err := stream.EnsureTopics(ctx, cl, topics, 0); err != nil {
			t.Fatal(err)
		}
		src, err := stream.CSVRows(filepath.Join(data, csvfile.TransactionsFile))
		if err != nil {
			t.Fatal(err)
		}
		var recs []*kgo.Record
		i := 0
		if err := src.Rows("", func(r stream.Row) error {
			rec := &kgo.Record{Topic: topics.Input, Partition: int32(i % stream.DefaultPartitions), Value: stream.EncodeTransaction(nil, r.Raw),
				Headers: []kgo.RecordHeader{{Key: stream.HeaderSeq, Value: []byte(strconv.FormatInt(r.Seq, 10))}, {Key: stream.HeaderSource, Value: []byte(r.Source)}}}
			switch i % 3 {
			case 0:
				rec.Key = []byte("wrong-" + strconv.Itoa(i)) // a rotating wrong key
			case 1: // no key, as the reference's producer
			case 2:
				rec.Key = []byte(r.Raw.CardID) // the right key on a wrong partition
			}
			recs = append(recs, rec)
			i++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		half := len(recs) / 2
		if err := cl.ProduceSync(ctx, recs[:half]...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		want, got := t.TempDir(), t.TempDir()
		done := make(chan stRun, 1)
		stConsume(ctx, t, brokers, keyed, "k1", want, 2*time.Second, nil, done)
		if r := <-done; r.err != nil {
			t.Fatal(r.err)
		}
		stConsume(ctx, t, brokers, topics, "f1", got, 2*time.Second, nil, done)
		if r := <-done; r.err != nil {
			t.Fatal(r.err)
		}
		// A restart, and the other half.
		if err := cl.ProduceSync(ctx, recs[half:]...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		stConsume(ctx, t, brokers, topics, "f1", got, 2*time.Second, nil, done)
		if r := <-done; r.err != nil {
			t.Fatal(r.err)
		}
		// Every transaction is judged once, in its card's partition; a card's
		// state is that of its last result there (none judged elsewhere, none
		// restored from a stale partition); the ids it remembers are those of
		// its results. (Kafka keeps no order across partitions: the order in
		// which a foreign producer's scattered records reach the card's
		// partition is theirs, not event order.)
		var n int64
		last := map[int64]txpipe.Result{}
		ids := map[int64]map[int64]bool{}
		seen := map[int64]bool{}
		if err := csvfile.ReadResults(filepath.Join(got, csvfile.StreamFile), func(r txpipe.Result, _ int) error {
			n++
			want := kgo.StickyKeyPartitioner(nil).ForTopic(topics.Input).Partition(&kgo.Record{Key: []byte(strconv.FormatInt(r.CardID, 10))}, stream.DefaultPartitions)
			if int(r.Pos.Partition) != want {
				return fmt.Errorf("transaction %d of card %d judged in partition %d, its card's is %d", r.ID, r.CardID, r.Pos.Partition, want)
			}
			if seen[r.ID] {
				return fmt.Errorf("transaction %d judged twice", r.ID)
			}
			seen[r.ID] = true
			if l, ok := last[r.CardID]; !ok || r.Pos.Offset > l.Pos.Offset {
				last[r.CardID] = r
			}
			if ids[r.CardID] == nil {
				ids[r.CardID] = map[int64]bool{}
			}
			ids[r.CardID][r.ID] = true
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if n != ref.Records {
			t.Fatalf("%d results, want %d", n, ref.Records)
		}
		states, err := stream.CardStates(ctx, brokers, topics)
		if err != nil {
			t.Fatal(err)
		}
		for card, r := range last {
			s := states[card]
			if s.Pending != r.PendingBalance || len(s.Seen) != len(ids[card]) {
				t.Errorf("card %d: restored pending %s with %d ids, its last result says %s after %d transactions", card, s.Pending, len(s.Seen), r.PendingBalance, len(ids[card]))
			}
			for _, sid := range s.Seen {
				if !ids[card][sid.ID] {
					t.Errorf("card %d remembers transaction %d, which it never judged", card, sid.ID)
				}
			}
		}
	})
}

// TestOversizedRowNeverSent: a row far larger than a transaction can be
// (a 10 MB merchant) goes to the dead-letter topic, cut short, before
// anything is sent; the rows around it go on.
func TestOversizedRowNeverSent(t *testing.T) {
	kafkatest.EachConcurrent(t, func(t *testing.T, k kafkatest.Broker) {
		brokers := k.Addrs
		topics := k.Topics(t, "big")
		row := func(id int, merchant string) stream.Row {
			return stream.Row{Raw: txpipe.RawTransaction{TransactionID: strconv.Itoa(id), CardID: "1", Merchant: merchant,
				Timestamp: "2025-04-01 10:00:00", Amount: "1.00", Location: "Troy, NY 12180", Type: "purchase"}, Seq: int64(id), Source: "big:" + strconv.Itoa(id), FieldsOK: true}
		}
		rows := []stream.Row{row(1, "A"), row(2, strings.Repeat("x", 10<<20)), row(3, "C")}
		st, err := stream.Produce(context.Background(), stream.ProducerConfig{Brokers: brokers, Topics: topics}, stream.RowsOf("test", func(yield func(stream.Row) error) error {
			for _, r := range rows {
				if err := yield(r); err != nil {
					return err
				}
			}
			return nil
		}))
		if err != nil || st.Records != 2 || st.Rejected != 1 {
			t.Fatalf("produce: %+v, %v; want 2 records and 1 dead letter", st, err)
		}
		var rej txpipe.Rejected
		readAll(t, brokers, topics.DLQ, func(r *kgo.Record) {
			var err error
			if rej, err = stream.DecodeRejected(r.Value); err != nil {
				t.Fatal(err)
			}
			if len(r.Value) > 16<<10 {
				t.Errorf("the dead letter is %d bytes", len(r.Value))
			}
		})
		if rej.Reason != txpipe.RejectText || rej.Source != "big:2" || !strings.Contains(rej.Detail, "bytes") {
			t.Fatalf("dead letter %+v", rej)
		}
	})
}

func readAll(t *testing.T, brokers []string, topic string, fn func(*kgo.Record)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := stream.ReadTopic(ctx, brokers, topic, fn); err != nil {
		t.Fatalf("read %s: %v", topic, err)
	}
}

// TestProduceAfterTopicRecreated: a position recorded for an input topic
// that was deleted and created again since is void: the source is
// published again from its start, not skipped as published.
func TestProduceAfterTopicRecreated(t *testing.T) {
	kafkatest.EachConcurrent(t, func(t *testing.T, k kafkatest.Broker) {
		data := t.TempDir()
		if _, err := dataset.Generate(context.Background(), data, dataset.Options{Customers: 10, Cards: 20, Transactions: 500, Seed: 13}); err != nil {
			t.Fatal(err)
		}
		topics := k.Topics(t, "recreated")
		first := loadAndProduce(t, k.Addrs, topics, data)
		if again := loadAndProduce(t, k.Addrs, topics, data); again.Records != 0 {
			t.Fatalf("a second produce on the same topic published %d records", again.Records)
		}
		k.DeleteTopics(t, topics.Input)
		st := loadAndProduce(t, k.Addrs, topics, data)
		if st.Records != first.Records || st.From != "" {
			t.Fatalf("after the input topic was created again: %+v, want all %d records from the start", st, first.Records)
		}
		if n := len(inputRecords(t, k.Addrs, topics.Input)); n != int(first.Records) {
			t.Fatalf("the new input topic holds %d transactions, want %d", n, first.Records)
		}
	})
}
