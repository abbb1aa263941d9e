package stream_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe/dataset"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/stream"
)

// BenchmarkValidatorVsRawEOS measures the validator against a raw
// exactly-once copy of the same records (GroupTransactSession, same batch
// size) on the same broker, alternating, and reports the ratio.
// TXPIPE_BENCH_N sets the number of transactions (default 100k).
func BenchmarkValidatorVsRawEOS(b *testing.B) {
	n := 100000
	if s := os.Getenv("TXPIPE_BENCH_N"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	brokers := startBroker(b)
	data := b.TempDir()
	if _, err := dataset.Generate(context.Background(), data, dataset.Options{Customers: benchCards() * 5 / 8, Cards: benchCards(), Transactions: n, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	var rawRate, valRate float64
	for i := 0; i < b.N; i++ {
		topic := fmt.Sprintf("bench-%d", i)
		topics := stream.TopicsFor(topic)
		m, err := csvfile.ReadMaster(data)
		if err != nil {
			b.Fatal(err)
		}
		if err := stream.PublishMaster(context.Background(), brokers, topics, m.Cards, m.Customers); err != nil {
			b.Fatal(err)
		}
		src, _ := stream.CSVRows(filepath.Join(data, csvfile.TransactionsFile))
		if _, err := stream.Produce(context.Background(), stream.ProducerConfig{Brokers: brokers, Topics: topics}, src); err != nil {
			b.Fatal(err)
		}
		// raw
		start := time.Now()
		rawCopy(b, brokers, topic, topic+".rawcopy", int64(n))
		rawRate = float64(n) / time.Since(start).Seconds()
		// validator
		v, err := stream.NewValidator(context.Background(), stream.ValidatorConfig{Brokers: brokers, Topics: topics, Group: "v" + topic, Instance: "v", MaxBatch: benchBatch()})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		start = time.Now()
		go func() { done <- v.Run(ctx) }()
		for s := v.Stats(); s.Processed+s.Rejected < int64(n); s = v.Stats() {
			time.Sleep(time.Millisecond)
		}
		valRate = float64(n) / time.Since(start).Seconds()
		cancel()
		<-done
		v.Close()
	}
	b.ReportMetric(rawRate, "raw_rows/s")
	b.ReportMetric(valRate, "validator_rows/s")
	b.ReportMetric(valRate/rawRate, "ratio")
}

func rawCopy(b *testing.B, brokers []string, in, out string, n int64) {
	admin, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := stream.EnsureTopics(context.Background(), admin, stream.TopicsFor(out), 0); err != nil {
		b.Fatal(err)
	}
	admin.Close()
	sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup("raw"+in), kgo.ConsumeTopics(in),
		kgo.InstanceID("raw"), kgo.TransactionalID("raw-"+in), kgo.TransactionTimeout(10*time.Second),
		kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(time.Second), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		b.Fatal(err)
	}
	defer sess.Close()
	var copied int64
	ctx := context.Background()
	for copied < n {
		fs := sess.PollRecords(ctx, benchBatch())
		if fs.Empty() {
			continue
		}
		if err := sess.Begin(); err != nil {
			b.Fatal(err)
		}
		var c atomic.Int64
		fs.EachRecord(func(r *kgo.Record) {
			c.Add(1)
			sess.Produce(ctx, &kgo.Record{Topic: out, Partition: r.Partition, Key: r.Key, Value: r.Value, Headers: r.Headers}, nil)
		})
		ok, err := sess.End(ctx, kgo.TryCommit)
		if err != nil {
			b.Fatal(err)
		}
		if ok {
			copied += c.Load()
		}
	}
}

func benchBatch() int {
	if n, err := strconv.Atoi(os.Getenv("TXPIPE_BENCH_BATCH")); err == nil {
		return n
	}
	return 2000
}

func benchCards() int {
	if n, err := strconv.Atoi(os.Getenv("TXPIPE_BENCH_CARDS")); err == nil {
		return n
	}
	return 5000
}
