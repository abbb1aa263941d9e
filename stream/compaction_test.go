package stream_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe/dataset"
	"github.com/txpipe/txpipe/internal/kafkatest"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/stream"
)

// TestRestoreAfterCompaction judges the first part of a stream in several
// runs with frequent checkpoints, lets Kafka's log cleaner compact the card-state
// topic (tiny segments, any dirty ratio), then judges the rest with a new
// member that restores every card from the compacted checkpoints. The card
// states and every result equal those of the same stream on topics that
// were never compacted. On the embedded broker the card-state topic is not
// compacted (kfake may compact past an open transaction), so there the
// test proves the restore alone.
func TestRestoreAfterCompaction(t *testing.T) {
	kafkatest.EachConcurrent(t, func(t *testing.T, b kafkatest.Broker) {
		data := t.TempDir()
		if _, err := dataset.Generate(context.Background(), data, dataset.Options{Customers: 120, Cards: 200, Transactions: 12000, Seed: 21, BadRows: 8}); err != nil {
			t.Fatal(err)
		}
		plain, compacted := b.Topics(t, "plain"), b.Topics(t, "compacted")
		if b.Real() {
			createCompactingStateTopic(t, b, compacted.State)
		}
		m, err := csvfile.ReadMaster(data)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		// The first part in four runs: each run's checkpoints land in
		// segments of their own (a segment rolls after 100 ms), and
		// rewrite cards the earlier ones wrote.
		const chunk, chunks = 1500, 4
		results := map[string]string{}
		for _, topics := range []stream.Topics{plain, compacted} {
			if err := stream.PublishMaster(ctx, b.Addrs, topics, m.Cards, m.Customers); err != nil {
				t.Fatal(err)
			}
			results[topics.Input] = t.TempDir()
			for i := range int64(chunks) {
				st := produceLines(t, b.Addrs, topics, data, i*chunk, (i+1)*chunk)
				consumeAll(ctx, t, b.Addrs, topics, "first", results[topics.Input], st.Records+st.Rejected)
			}
		}

		if b.Real() {
			waitCompacted(ctx, t, b, compacted.State)
		}
		// What a restore gives now, compacted or not, is the same.
		if d := failDiffStates(stStates(t, b.Addrs, compacted), stStates(t, b.Addrs, plain)); d != "" {
			t.Fatalf("card states restored from the compacted checkpoints differ:\n%s", d)
		}

		// A new member restores every partition and judges the rest.
		for _, topics := range []stream.Topics{plain, compacted} {
			st := produceLines(t, b.Addrs, topics, data, chunks*chunk, 1<<62)
			consumeAll(ctx, t, b.Addrs, topics, "second", results[topics.Input], st.Records+st.Rejected)
		}
		stSameFiles(t, results[compacted.Input], results[plain.Input], csvfile.StreamFile)
		if n := failCSVRows(t, filepath.Join(results[plain.Input], csvfile.StreamFile), "status"); n < 11000 {
			t.Fatalf("only %d results in all", n)
		}
		got, want := stStates(t, b.Addrs, compacted), stStates(t, b.Addrs, plain)
		if d := failDiffStates(got, want); d != "" || len(want) == 0 {
			t.Fatalf("card states after the second part differ (%d vs %d cards):\n%s", len(got), len(want), d)
		}
		t.Logf("%d cards: the same results and states with and without compaction", len(got))
	})
}

// produceLines publishes the transactions of data whose line number is in
// [from, to).
func produceLines(t *testing.T, brokers []string, topics stream.Topics, data string, from, to int64) stream.ProduceStats {
	t.Helper()
	src, err := stream.CSVRows(filepath.Join(data, csvfile.TransactionsFile))
	if err != nil {
		t.Fatal(err)
	}
	part := stream.RowsOf(src.Name, func(yield func(stream.Row) error) error {
		return src.Rows("", func(r stream.Row) error {
			if r.Seq < from || r.Seq >= to {
				return nil
			}
			return yield(r)
		})
	})
	st, err := stream.Produce(context.Background(), stream.ProducerConfig{Brokers: brokers, Topics: topics}, part)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// consumeAll runs one consume (a member named instance) until its sink
// has written want records, checkpointing often.
func consumeAll(ctx context.Context, t *testing.T, brokers []string, topics stream.Topics, instance, results string, want int64) {
	t.Helper()
	st, err := stream.Consume(ctx, stream.ConsumeConfig{
		Brokers: brokers, Topics: topics, Group: "g-" + topics.Input, Instance: instance, ResultsDir: results,
		MaxBatch: 200, CheckpointEvery: 20, CheckpointInterval: 500 * time.Millisecond,
		Done: func(s stream.ConsumeStats) bool { return s.Written >= want },
	})
	if err != nil {
		t.Fatalf("consume %s (%s): %v", topics.Input, instance, err)
	}
	if st.Written != want {
		t.Fatalf("consume %s (%s): %d records written, want %d", topics.Input, instance, st.Written, want)
	}
}

// createCompactingStateTopic creates a card-state topic that Kafka's log
// cleaner compacts within seconds: a segment per 100 ms, any share of dirty
// records, tombstones and transaction markers removed at once.
func createCompactingStateTopic(t *testing.T, b kafkatest.Broker, topic string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := map[string]*string{
		"cleanup.policy":            kadm.StringPtr("compact"),
		"segment.ms":                kadm.StringPtr("100"),
		"min.cleanable.dirty.ratio": kadm.StringPtr("0.001"),
		"min.compaction.lag.ms":     kadm.StringPtr("0"),
		"max.compaction.lag.ms":     kadm.StringPtr("100"),
		"delete.retention.ms":       kadm.StringPtr("0"),
	}
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, stream.DefaultPartitions, -1, cfg, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		t.Fatalf("create %s: %v", topic, err)
	}
}

// waitCompacted waits until the log cleaner has removed records from
// every partition of topic that has any: the partition holds fewer
// records than its offsets span.
func waitCompacted(ctx context.Context, t *testing.T, b kafkatest.Broker, topic string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		held, spans := countRecords(ctx, t, b, topic)
		done, summary := true, ""
		for p, span := range spans {
			summary += fmt.Sprintf(" p%d %d/%d", p, held[p], span)
			if span > 0 && held[p] >= span {
				done = false
			}
		}
		if done && len(spans) > 0 {
			t.Logf("%s compacted: records held/offsets spanned per partition:%s", topic, summary)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not compacted within 2 minutes: records held/offsets spanned per partition:%s", topic, summary)
		}
		time.Sleep(time.Second)
	}
}

// countRecords reads every partition of topic whole (read_uncommitted,
// transaction markers included) and returns how many records each holds
// and how many offsets it spans.
func countRecords(ctx context.Context, t *testing.T, b kafkatest.Broker, topic string) (held, spans map[int32]int64) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs...), kgo.ConsumeTopics(topic), kgo.KeepControlRecords(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	held, spans = map[int32]int64{}, map[int32]int64{}
	remaining := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		s, _ := starts.Lookup(o.Topic, o.Partition)
		spans[o.Partition] = o.Offset - s.Offset
		if o.Offset > s.Offset {
			remaining[o.Partition] = o.Offset
		}
	})
	for len(remaining) > 0 {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if pctx.Err() != nil && fs.Empty() {
			t.Fatalf("reading %s: no records for 10 s, %d partitions not read to their end", topic, len(remaining))
		}
		fs.EachError(func(_ string, p int32, err error) { t.Fatalf("read %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			held[r.Partition]++
			if end, ok := remaining[r.Partition]; ok && r.Offset >= end-1 {
				delete(remaining, r.Partition)
			}
		})
	}
	return held, spans
}
