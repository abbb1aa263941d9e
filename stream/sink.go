package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe"
)

// Store is a database view of the stream: rows and the offsets they came
// from are written in one transaction, so a replay writes nothing twice.
type Store interface {
	WriteStream(ctx context.Context, consumer string, results []txpipe.Result, rejected []txpipe.Rejected, offsets []txpipe.Offset) error
	Offsets(ctx context.Context, consumer, topic string) (map[int32]txpipe.Offset, error)
}

// SinkConfig configures a Sink.
type SinkConfig struct {
	Brokers    []string
	Topics     Topics
	Group      string // the sink's own consumer group
	Instance   string
	ResultsDir string
	Store      Store // nil: CSV only
	Consumer   string
	MaxBatch   int
	Log        *slog.Logger
	ClientOpts []kgo.Opt
	// Transient tells which store errors are retried (with backoff) rather
	// than fatal; nil retries every error.
	Transient func(error) bool
}

// Sink reads the validated and dead-letter topics (read_committed) and
// writes them exactly once to the CSV segments and, when configured, the
// database: each stores the offsets with the rows it writes, and the sink
// resumes from them.
type Sink struct {
	cfg SinkConfig
	log *slog.Logger
	cl  *kgo.Client
	csv *CSVSink

	mu      sync.Mutex
	csvNext map[txpipe.Offset]int64 // key without Next
	ids     map[string]string       // topic → topic id, as of the last assignment
	dbNext  map[txpipe.Offset]int64
	seen    map[txpipe.Offset]int64 // past the last record written or skipped, transaction markers included

	written    atomic.Int64
	joinFailed atomic.Bool // the last assignment could not be set up (database down, say)
	lastRecord atomic.Int64
	started    time.Time
	dbDown     bool
}

// NewSink creates a sink; Run consumes.
func NewSink(cfg SinkConfig) (*Sink, error) {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 20000
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Consumer == "" {
		cfg.Consumer = cfg.Group
	}
	csvSink, err := NewCSVSink(cfg.ResultsDir)
	if err != nil {
		return nil, err
	}
	s := &Sink{cfg: cfg, log: cfg.Log.With("component", "sink"), csv: csvSink, csvNext: map[txpipe.Offset]int64{}, dbNext: map[txpipe.Offset]int64{}, seen: map[txpipe.Offset]int64{}, started: time.Now()}
	opts := append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOpts...)
	opts = append(opts,
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics.Validated, cfg.Topics.DLQ),
		kgo.InstanceID(cfg.Instance),
		kgo.SessionTimeout(6*time.Second),
		kgo.HeartbeatInterval(time.Second),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers tell the sink how far it has read, so
		// CaughtUp can compare with the partitions' ends.
		kgo.KeepControlRecords(),
		kgo.FetchMaxBytes(fetchMaxBytes),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AdjustFetchOffsetsFn(s.adjust),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.revoked),
	)
	s.cl, err = kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return s, nil
}

func tp(topic string, p int32) txpipe.Offset { return txpipe.Offset{Topic: topic, Partition: p} }

// adjust starts each newly assigned partition where its sinks left off:
// the smaller of the CSV and database positions; records a sink already
// holds are skipped for that sink.
func (s *Sink) adjust(ctx context.Context, assigned map[string]map[int32]kgo.Offset) (_ map[string]map[int32]kgo.Offset, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() { s.joinFailed.Store(err != nil) }()
	ids := s.topicIDs(ctx)
	s.ids = ids
	for topic, parts := range assigned {
		var dbOffsets map[int32]txpipe.Offset
		if s.cfg.Store != nil {
			err := s.retry(ctx, "read stored offsets", func(ctx context.Context) error {
				var err error
				dbOffsets, err = s.cfg.Store.Offsets(ctx, s.cfg.Consumer, topic)
				return err
			})
			if err != nil {
				return nil, err
			}
		}
		for p := range parts {
			next, err := s.csv.Open(topic, p, ids[topic])
			if err != nil {
				return nil, err
			}
			s.csvNext[tp(topic, p)] = next
			start := next
			if s.cfg.Store != nil {
				db := dbOffsets[p]
				if db.TopicID != "" && ids[topic] != "" && db.TopicID != ids[topic] {
					s.log.Warn("the topic was created anew since the database was written: writing it again from its start", "topic", topic, "partition", p)
					db.Next = 0
				}
				s.dbNext[tp(topic, p)] = db.Next
				start = min(start, db.Next)
			}
			parts[p] = kgo.NewOffset().At(start)
			s.seen[tp(topic, p)] = start
		}
	}
	return assigned, nil
}

// pollWait bounds a sink poll, so the sink notices a stop in time.
const pollWait = 500 * time.Millisecond

// noAssignmentWait is how long a sink may wait for its first partitions
// before it counts as caught up anyway (a group with more members than
// partitions leaves some with none): over two session timeouts.
var noAssignmentWait = 15 * time.Second

// topicIDs names the incarnation of each topic the sink reads; empty when
// the broker does not say.
func (s *Sink) topicIDs(ctx context.Context) map[string]string {
	ids := map[string]string{}
	// A client of its own, and a deadline: this runs inside the group's
	// assignment, where the sink's own client must not wait on itself.
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(s.cfg.Brokers...)}, s.cfg.ClientOpts...)...)
	if err != nil {
		s.log.Warn("list topics", "err", err)
		return ids
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	td, err := kadm.NewClient(cl).ListTopics(ctx, s.cfg.Topics.Validated, s.cfg.Topics.DLQ)
	if err != nil {
		s.log.Warn("list topics", "err", err)
		return ids
	}
	for name, d := range td {
		if d.Err == nil && d.ID != (kadm.TopicID{}) {
			ids[name] = d.ID.String()
		}
	}
	return ids
}

func (s *Sink) revoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, parts := range revoked {
		for _, p := range parts {
			s.csv.Close(topic, p)
			delete(s.csvNext, tp(topic, p))
			delete(s.dbNext, tp(topic, p))
			delete(s.seen, tp(topic, p))
		}
	}
}

// retry runs fn until it succeeds, backing off from 100 ms to 5 s and
// logging once per change of state.
func (s *Sink) retry(ctx context.Context, what string, fn func(context.Context) error) error {
	backoff := 100 * time.Millisecond
	for {
		err := fn(ctx)
		if err == nil {
			if s.dbDown {
				s.dbDown = false
				s.log.Info("database reachable again", "op", what)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if s.cfg.Transient != nil && !s.cfg.Transient(err) {
			return fmt.Errorf("%s: %w", what, err)
		}
		if !s.dbDown {
			s.dbDown = true
			s.log.Warn("database unavailable, retrying with backoff", "op", what, "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// Written is the number of records the sink has written.
func (s *Sink) Written() int64 { return s.written.Load() }

// CaughtUp reports whether the sink has written everything committed on
// its partitions so far: its position in each is at the partition's end.
// A sink with no partitions yet is caught up only after noAssignmentWait
// (a group with more members than partitions leaves some with none), and
// never while setting up its partitions fails.
func (s *Sink) CaughtUp(ctx context.Context) (bool, error) {
	s.mu.Lock()
	seen := maps.Clone(s.seen)
	s.mu.Unlock()
	if len(seen) == 0 {
		return !s.joinFailed.Load() && time.Since(s.started) > noAssignmentWait, nil
	}
	b, err := listBounds(ctx, kadm.NewClient(s.cl), s.cfg.Topics.Validated, s.cfg.Topics.DLQ)
	if err != nil {
		return false, err
	}
	for key, at := range seen {
		pb, ok := b[key]
		if !ok {
			return false, fmt.Errorf("no offsets for %s/%d", key.Topic, key.Partition)
		}
		if at < pb.end && pb.start < pb.end {
			return false, nil
		}
	}
	return true, nil
}

// LastRecord is when the sink last wrote a record.
func (s *Sink) LastRecord() time.Time { return time.Unix(0, s.lastRecord.Load()) }

type partBatch struct {
	results     []txpipe.Result
	rejected    []txpipe.Rejected
	resOffsets  []int64 // offset of each result
	rejOffsets  []int64 // offset of each rejected row
	first, next int64   // offsets of the first record and past the last
}

func (b *partBatch) addResult(r txpipe.Result, off int64) {
	b.results, b.resOffsets = append(b.results, r), append(b.resOffsets, off)
}

func (b *partBatch) addRejected(r txpipe.Rejected, off int64) {
	b.rejected, b.rejOffsets = append(b.rejected, r), append(b.rejOffsets, off)
}

// since returns the rows at or after offset next.
func (b *partBatch) since(next int64) ([]txpipe.Result, []txpipe.Rejected) {
	if next <= b.first {
		return b.results, b.rejected
	}
	var res []txpipe.Result
	for i, r := range b.results {
		if b.resOffsets[i] >= next {
			res = append(res, r)
		}
	}
	var rej []txpipe.Rejected
	for i, r := range b.rejected {
		if b.rejOffsets[i] >= next {
			rej = append(rej, r)
		}
	}
	return res, rej
}

// Run consumes until ctx ends; what it polled is written before it returns.
func (s *Sink) Run(ctx context.Context) error {
	defer s.closeSegments()
	for {
		pctx, cancel := context.WithTimeout(ctx, pollWait)
		fs := s.cl.PollRecords(pctx, s.cfg.MaxBatch)
		cancel()
		if fs.IsClientClosed() {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				s.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
			}
		})
		if !fs.Empty() {
			// Writing what was polled must finish even during shutdown.
			if err := s.write(context.WithoutCancel(ctx), fs); err != nil {
				s.cl.AllowRebalance()
				return err
			}
		}
		s.cl.AllowRebalance()
		if ctx.Err() != nil {
			return nil
		}
	}
}

func (s *Sink) write(ctx context.Context, fs kgo.Fetches) error {
	batches := map[txpipe.Offset]*partBatch{}
	var order []txpipe.Offset
	var n int64
	read := map[txpipe.Offset]int64{} // past the last record, markers included
	fs.EachRecord(func(r *kgo.Record) {
		key := tp(r.Topic, r.Partition)
		read[key] = r.Offset + 1
		if r.Attrs.IsControl() {
			return
		}
		b := batches[key]
		if b == nil {
			b = &partBatch{first: r.Offset}
			batches[key] = b
			order = append(order, key)
		}
		b.next = r.Offset + 1
		n++
		source := func() string { return fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset) }
		if r.Topic == s.cfg.Topics.Validated {
			res, err := DecodeResult(r.Value)
			if err == nil {
				b.addResult(res, r.Offset)
				return
			}
			rej := txpipe.Rejected{Raw: txpipe.RawTransaction{Merchant: truncate(string(r.Value), 200)}, Reason: txpipe.RejectBadJSON, Detail: "validated record: " + err.Error(), Source: source(), Seq: r.Offset}
			b.addRejected(rej, r.Offset)
			return
		}
		rej, err := DecodeRejected(r.Value)
		if err != nil {
			rej = txpipe.Rejected{Raw: txpipe.RawTransaction{Merchant: truncate(string(r.Value), 200)}, Reason: txpipe.RejectBadJSON, Detail: "dead-letter record: " + err.Error(), Source: source(), Seq: r.Offset}
		}
		if rej.Source == "" {
			rej.Source = source()
		}
		b.addRejected(rej, r.Offset)
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	// The CSV segments and the database are independent views: write
	// them at the same time.
	csvDone := make(chan error, 1)
	go func() {
		for _, key := range order {
			b := batches[key]
			next, ok := s.csvNext[key]
			if !ok || b.next <= next {
				continue
			}
			res, rej := b.since(next)
			if err := s.csv.Append(key.Topic, key.Partition, res, rej, b.next); err != nil {
				csvDone <- err
				return
			}
			s.csvNext[key] = b.next
		}
		csvDone <- nil
	}()
	var dbErr error
	if s.cfg.Store != nil {
		var res []txpipe.Result
		var rej []txpipe.Rejected
		var offs []txpipe.Offset
		for _, key := range order {
			b := batches[key]
			next, ok := s.dbNext[key]
			if !ok || b.next <= next {
				continue
			}
			r1, r2 := b.since(next)
			res, rej = append(res, r1...), append(rej, r2...)
			offs = append(offs, txpipe.Offset{Topic: key.Topic, Partition: key.Partition, Next: b.next, TopicID: s.ids[key.Topic]})
		}
		if len(offs) > 0 {
			dbErr = s.retry(ctx, "write stream rows", func(ctx context.Context) error {
				return s.cfg.Store.WriteStream(ctx, s.cfg.Consumer, res, rej, offs)
			})
			if dbErr == nil {
				for _, o := range offs {
					s.dbNext[tp(o.Topic, o.Partition)] = o.Next
				}
			}
		}
	}
	if err := <-csvDone; err != nil {
		return err
	}
	if dbErr != nil {
		return dbErr
	}
	for key, next := range read {
		if at, ok := s.seen[key]; ok {
			s.seen[key] = max(at, next)
		}
	}
	if n > 0 {
		s.written.Add(n)
		s.lastRecord.Store(time.Now().UnixNano())
	}
	return nil
}

// Close leaves the group and closes the client, then the CSV segments an
// assignment may have opened after Run returned.
func (s *Sink) Close() {
	s.cl.Close()
	s.closeSegments()
}

// closeSegments closes the CSV segments under the lock with which an
// assignment (adjust, on the client's goroutine) opens them.
func (s *Sink) closeSegments() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.csv.CloseAll()
}
