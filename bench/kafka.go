package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/stream"
)

// eosBatch is the records per transaction of the raw exactly-once copy:
// the validator's default.
const eosBatch = stream.DefaultMaxBatch

// encoded are the transactions as stream.Produce publishes them: key,
// value (stream.EncodeTransaction) and headers, in event order.
type encoded struct {
	keys, values [][]byte
	headers      [][]kgo.RecordHeader
}

// encode reads the transactions file in event order and encodes every
// row, as stream.Produce does.
func (b *bencher) encode() error {
	src, err := stream.CSVRows(filepath.Join(b.data, csvfile.TransactionsFile))
	if err != nil {
		return err
	}
	eventType := []byte(stream.EventPayment)
	err = src.Rows("", func(r stream.Row) error {
		if !r.FieldsOK {
			return fmt.Errorf("%s: a generated row has the wrong number of fields", r.Source)
		}
		b.enc.keys = append(b.enc.keys, []byte(r.Raw.CardID))
		b.enc.values = append(b.enc.values, stream.EncodeTransaction(nil, r.Raw))
		b.enc.headers = append(b.enc.headers, []kgo.RecordHeader{
			{Key: stream.HeaderEventType, Value: eventType},
			{Key: stream.HeaderSeq, Value: strconv.AppendInt(nil, r.Seq, 10)},
			{Key: stream.HeaderSource, Value: []byte(r.Source)},
		})
		return nil
	})
	if err != nil {
		return err
	}
	b.rows = int64(len(b.enc.values))
	if b.rows != int64(b.o.Transactions) {
		return fmt.Errorf("the generated file has %d transactions, want %d", b.rows, b.o.Transactions)
	}
	return nil
}

// records builds fresh records of the encoded transactions for topic.
func (b *bencher) records(topic string) []kgo.Record { return b.enc.records(topic) }

func (e *encoded) records(topic string) []kgo.Record {
	recs := make([]kgo.Record, len(e.values))
	for i := range recs {
		recs[i] = kgo.Record{Topic: topic, Key: e.keys[i], Value: e.values[i], Headers: e.headers[i]}
	}
	return recs
}

func (b *bencher) client(opts ...kgo.Opt) (*kgo.Client, error) {
	cl, err := kgo.NewClient(append(append([]kgo.Opt{kgo.SeedBrokers(b.brokers...)}, b.opts...), opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return cl, nil
}

// topic names a topic of this run.
func (b *bencher) topic(name string) string { return "bench-" + b.id + "-" + name }

// ensureInput creates an input topic and the topics derived from it, as
// txpipe does (8 partitions).
func (b *bencher) ensureInput(ctx context.Context, name string) (stream.Topics, error) {
	t := stream.TopicsFor(name)
	b.topics = append(b.topics, t.Input, t.Validated, t.DLQ, t.State)
	cl, err := b.client()
	if err != nil {
		return t, err
	}
	defer cl.Close()
	_, err = stream.EnsureTopics(ctx, cl, t, 0)
	return t, err
}

// ensureTopic creates a plain topic of DefaultPartitions partitions.
func (b *bencher) ensureTopic(ctx context.Context, name string) error {
	b.topics = append(b.topics, name)
	cl, err := b.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, stream.DefaultPartitions, -1, nil, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", name, err)
	}
	return nil
}

// deleteTopics deletes the given topics, or every topic of the run.
func (b *bencher) deleteTopics(ctx context.Context, names ...string) {
	if len(names) == 0 {
		names = b.topics
	}
	if len(names) == 0 {
		return
	}
	cl, err := b.client()
	if err != nil {
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).DeleteTopics(ctx, names...); err != nil {
		b.log.Warn("bench: delete topics", "topics", names, "err", err)
	}
}

// produceRaw publishes the encoded transactions to topic with a plain
// franz-go client (its defaults: idempotent, 10 ms linger, snappy) and
// returns how long it took, from the first Produce to the end of Flush.
func (b *bencher) produceRaw(ctx context.Context, topic string) (time.Duration, error) {
	return b.produceEncoded(ctx, topic, &b.enc)
}

// produceEncoded produces records of enc to topic.
func (b *bencher) produceEncoded(ctx context.Context, topic string, enc *encoded) (time.Duration, error) {
	recs := enc.records(topic)
	cl, err := b.client()
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	var failed atomic.Pointer[error]
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.CompareAndSwap(nil, &err)
		}
	}
	start := time.Now()
	for i := range recs {
		cl.Produce(ctx, &recs[i], promise)
	}
	if err := cl.Flush(ctx); err != nil {
		return 0, err
	}
	took := time.Since(start)
	if err := failed.Load(); err != nil {
		return 0, fmt.Errorf("produce to %s: %w", topic, *err)
	}
	return took, nil
}

// copyInput creates a fresh input topic holding the transactions.
func (b *bencher) copyInput(ctx context.Context, name string) (stream.Topics, error) {
	t, err := b.ensureInput(ctx, b.topic(name))
	if err != nil {
		return t, err
	}
	_, err = b.produceRaw(ctx, t.Input)
	return t, err
}

func (b *bencher) produceStage(ctx context.Context, rep *Report) error {
	rawTopic := b.topic("produce-raw")
	if err := b.ensureTopic(ctx, rawTopic); err != nil {
		return err
	}
	topics, err := b.ensureInput(ctx, b.topic("produce"))
	if err != nil {
		return err
	}
	b.log.Info("bench: produce, raw franz-go", "topic", rawTopic)
	raw, err := b.produceRaw(ctx, rawTopic)
	if err != nil {
		return err
	}
	b.log.Info("bench: produce, stream.Produce", "topic", topics.Input)
	stopProfile, err := b.startProfile("produce", rep)
	if err != nil {
		return err
	}
	begin := time.Now()
	st, err := func() (stream.ProduceStats, error) {
		src, err := stream.CSVRows(filepath.Join(b.data, csvfile.TransactionsFile))
		if err != nil {
			return stream.ProduceStats{}, err
		}
		return stream.Produce(ctx, stream.ProducerConfig{Brokers: b.brokers, Topics: topics, Log: b.log, ClientOpts: b.opts}, src)
	}()
	took := time.Since(begin)
	stopProfile()
	if err != nil {
		return err
	}
	if st.Records != b.rows {
		return fmt.Errorf("stream.Produce published %d records, want %d", st.Records, b.rows)
	}
	rep.Produce.finish(b.rows, raw, st.Records, took)
	b.logStage(rep.Produce)
	// The raw topic feeds the raw exactly-once copy; this one is done.
	b.deleteTopics(ctx, topics.Input, topics.Validated, topics.DLQ, topics.State)
	return nil
}

// validated is what the validate stage leaves for the sink stage.
type validated struct {
	topics              stream.Topics
	processed, rejected int64
}

func (b *bencher) validateStage(ctx context.Context, rep *Report) error {
	input := b.topic("produce-raw") // the raw producer's copy
	topics, err := b.copyInput(ctx, "validate")
	if err != nil {
		return err
	}
	if err := stream.PublishMaster(ctx, b.brokers, topics, b.master.Cards, b.master.Customers, b.opts...); err != nil {
		return err
	}
	out := b.topic("eos-out")
	if err := b.ensureTopic(ctx, out); err != nil {
		return err
	}
	b.log.Info("bench: validate, raw exactly-once copy", "from", input, "to", out)
	raw, err := b.rawEOS(ctx, input, out)
	if err != nil {
		return fmt.Errorf("raw exactly-once copy: %w", err)
	}
	b.deleteTopics(ctx, input, out)

	b.log.Info("bench: validate, stream validator", "topic", topics.Input)
	v, err := stream.NewValidator(ctx, stream.ValidatorConfig{
		Brokers: b.brokers, Topics: topics, Group: b.topic("validator"), Instance: "bench",
		MaxBatch: eosBatch, Log: b.log, ClientOpts: b.opts,
	})
	if err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopProfile, err := b.startProfile("validate", rep)
	if err != nil {
		v.Close()
		return err
	}
	begin := time.Now()
	run := start(func() error { return v.Run(rctx) })
	err = waitFor(ctx, run, func() bool { s := v.Stats(); return s.Processed+s.Rejected >= b.rows })
	took := time.Since(begin)
	stopProfile()
	cancel()
	if rerr := run.wait(); err == nil && rerr != nil {
		err = rerr
	}
	st := v.Stats()
	v.Close()
	if err != nil {
		return fmt.Errorf("validator: %w", err)
	}
	if st.Processed+st.Rejected != b.rows {
		return fmt.Errorf("the validator decided %d records, want %d", st.Processed+st.Rejected, b.rows)
	}
	rep.Validate.finish(b.rows, raw, st.Processed+st.Rejected, took)
	b.logStage(rep.Validate)
	b.logOffsets(ctx, "bench: validate, what the validator wrote", topics.Validated, topics.State)
	b.val = validated{topics: topics, processed: st.Processed, rejected: st.Rejected}
	return nil
}

// rawEOS copies every record of in to out unchanged, exactly once: a
// GroupTransactSession configured as the validator's, one transaction per
// polled batch of eosBatch records. It returns the time from the first
// poll to the commit of the last record.
func (b *bencher) rawEOS(ctx context.Context, in, out string) (time.Duration, error) {
	sess, err := kgo.NewGroupTransactSession(append([]kgo.Opt{
		kgo.SeedBrokers(b.brokers...),
		kgo.ConsumerGroup(b.topic("eos")),
		kgo.ConsumeTopics(in),
		kgo.InstanceID("bench"),
		kgo.TransactionalID("txpipe-bench-" + b.id + "-eos"),
		kgo.TransactionTimeout(10 * time.Second),
		kgo.SessionTimeout(6 * time.Second),
		kgo.HeartbeatInterval(time.Second),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	}, b.opts...)...)
	if err != nil {
		return 0, err
	}
	defer sess.Close()
	begin := time.Now()
	var copied int64
	for copied < b.rows {
		fs := sess.PollRecords(ctx, eosBatch)
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if fs.IsClientClosed() {
			return 0, errors.New("client closed")
		}
		fs.EachError(func(t string, p int32, err error) {
			b.log.Warn("bench: fetch error", "topic", t, "partition", p, "err", err)
		})
		if fs.Empty() {
			continue
		}
		if err := sess.Begin(); err != nil {
			return 0, err
		}
		var failed atomic.Pointer[error]
		promise := func(_ *kgo.Record, err error) {
			if err != nil {
				failed.CompareAndSwap(nil, &err)
			}
		}
		var n int64
		fs.EachRecord(func(r *kgo.Record) {
			n++
			sess.Produce(ctx, &kgo.Record{Topic: out, Partition: r.Partition, Key: r.Key, Value: r.Value, Headers: r.Headers}, promise)
		})
		commit := kgo.TryCommit
		if failed.Load() != nil {
			commit = kgo.TryAbort
		}
		committed, err := sess.End(ctx, commit)
		if err != nil {
			return 0, err
		}
		if committed {
			copied += n
		}
	}
	return time.Since(begin), nil
}

// startProfile starts a CPU profile of a stage when Options.Profile is
// set; the returned function stops it.
func (b *bencher) startProfile(stage string, rep *Report) (func(), error) {
	if b.o.Profile == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(b.o.Profile, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(b.o.Profile, stage+".pprof")
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("CPU profile: %w", err)
	}
	rep.Profiles = append(rep.Profiles, path)
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.log.Warn("bench: CPU profile", "file", path, "err", err)
		}
	}, nil
}

// logOffsets logs the sum of the end offsets of topics (records and
// transaction markers).
func (b *bencher) logOffsets(ctx context.Context, msg string, topics ...string) {
	cl, err := b.client()
	if err != nil {
		return
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topics...)
	if err != nil {
		return
	}
	var args []any
	for _, t := range topics {
		var sum int64
		ends.Each(func(o kadm.ListedOffset) {
			if o.Topic == t && o.Err == nil {
				sum += o.Offset
			}
		})
		args = append(args, t, sum)
	}
	b.log.Info(msg+" (end offsets: records and transaction markers)", args...)
}
