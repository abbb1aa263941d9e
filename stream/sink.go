package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/internal/metrics"
	"github.com/txpipe/txpipe/serving/csvfile"
)

// Output is a view of the stream that a Sink writes: the CSV files, the
// MySQL tables, and later outputs (an alerts table, a webhook). Each
// stores the offsets it consumed with the rows it writes, so a replay
// writes nothing twice, and each resumes from its own offsets.
type Output interface {
	// Name names the output in logs and errors.
	Name() string
	// Open prepares partitions of a topic (topicID names its incarnation:
	// a topic created anew is written again from its start) and returns
	// the next offset to write of each.
	Open(ctx context.Context, topic, topicID string, partitions []int32) (map[int32]int64, error)
	// Write writes the rows of b and, per partition b.Next names, the
	// offset after them: all of it or nothing.
	Write(ctx context.Context, b *txpipe.ViewBatch) error
	// Close releases partitions that left this process.
	Close(topic string, partitions []int32)
}

// The CSV view implements Output.
var _ Output = (*csvfile.Segments)(nil)

// DefaultStopTimeout is how long a stop waits for the writes in flight
// (a database that does not answer, say) before it gives them up: what
// was not written is written on the next start.
const DefaultStopTimeout = 10 * time.Second

// SinkConfig configures a Sink.
type SinkConfig struct {
	Brokers  []string
	Topics   Topics
	Group    string // the sink's own consumer group
	Instance string
	Outputs  []Output
	// Alerts also reads the alerts topic; Staging writes every payment and
	// alert to the event staging view as well.
	Alerts, Staging bool
	MaxBatch        int
	// StopTimeout bounds how long a stop waits for writes in flight
	// (DefaultStopTimeout when zero).
	StopTimeout time.Duration
	Log         *slog.Logger
	ClientOpts  []kgo.Opt
}

// Sink reads the validated and dead-letter topics (read_committed) and
// writes them exactly once to its outputs.
type Sink struct {
	cfg    SinkConfig
	log    *slog.Logger
	cl     *kgo.Client
	topics []string // read

	mu   sync.Mutex
	next []map[txpipe.Offset]int64 // per output: the next offset of each partition (key without Next)
	ids  map[string]string         // topic → topic id, as of the last assignment
	seen map[txpipe.Offset]int64   // past the last record written or skipped, transaction markers included

	written    atomic.Int64
	joinFailed atomic.Bool // the last assignment could not be set up (database down, say)
	lastRecord atomic.Int64
	started    time.Time
}

// NewSink creates a sink; Run consumes.
func NewSink(cfg SinkConfig) (*Sink, error) {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 20000
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = DefaultStopTimeout
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Sink{cfg: cfg, log: cfg.Log.With("component", "sink"), seen: map[txpipe.Offset]int64{}, started: time.Now()}
	for range cfg.Outputs {
		s.next = append(s.next, map[txpipe.Offset]int64{})
	}
	opts := append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOpts...)
	topics := []string{cfg.Topics.Validated, cfg.Topics.DLQ}
	if cfg.Alerts {
		topics = append(topics, cfg.Topics.Alerts)
	}
	s.topics = topics
	opts = append(opts,
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(topics...),
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
	var err error
	s.cl, err = kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return s, nil
}

// adjust starts each newly assigned partition where its outputs left off:
// the smallest of their positions; records an output already holds are
// skipped for that output.
func (s *Sink) adjust(ctx context.Context, assigned map[string]map[int32]kgo.Offset) (_ map[string]map[int32]kgo.Offset, err error) {
	defer func() { s.joinFailed.Store(err != nil) }()
	ids := s.topicIDs(ctx)
	nexts := make([]map[txpipe.Offset]int64, len(s.cfg.Outputs))
	start := map[txpipe.Offset]int64{}
	for topic, parts := range assigned {
		ps := slices.Sorted(maps.Keys(parts))
		for i, out := range s.cfg.Outputs {
			next, err := out.Open(ctx, topic, ids[topic], ps)
			if err != nil {
				return nil, fmt.Errorf("open the %s view of %s: %w", out.Name(), topic, err)
			}
			if nexts[i] == nil {
				nexts[i] = map[txpipe.Offset]int64{}
			}
			for _, p := range ps {
				key, n := tp(topic, p), next[p]
				nexts[i][key] = n
				if cur, ok := start[key]; !ok || n < cur {
					start[key] = n
				}
			}
		}
		for _, p := range ps {
			parts[p] = kgo.NewOffset().At(start[tp(topic, p)])
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, next := range nexts {
		maps.Copy(s.next[i], next)
	}
	maps.Copy(s.seen, start)
	s.ids = ids
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
	td, err := kadm.NewClient(cl).ListTopics(ctx, s.topics...)
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
		for _, out := range s.cfg.Outputs {
			out.Close(topic, parts)
		}
		for _, p := range parts {
			for _, next := range s.next {
				delete(next, tp(topic, p))
			}
			delete(s.seen, tp(topic, p))
		}
	}
}

// Written is the number of records the sink has written.
func (s *Sink) Written() int64 { return s.written.Load() }

// Positions returns, per partition the sink reads, how far it has read.
func (s *Sink) Positions() map[txpipe.Offset]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.seen)
}

// CaughtUp reports whether the sink has written everything committed on
// its partitions so far: its position in each is at the partition's end.
// A sink with no partitions yet is caught up only after noAssignmentWait
// (a group with more members than partitions leaves some with none), and
// never while setting up its partitions fails.
func (s *Sink) CaughtUp(ctx context.Context) (bool, error) {
	seen := s.Positions()
	if len(seen) == 0 {
		return !s.joinFailed.Load() && time.Since(s.started) > noAssignmentWait, nil
	}
	b, err := listBounds(ctx, kadm.NewClient(s.cl), s.topics...)
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

// Lag is how many records (transaction markers included) of its
// partitions the sink has not read yet.
func (s *Sink) Lag(ctx context.Context) (int64, error) {
	seen := s.Positions()
	b, err := listBounds(ctx, kadm.NewClient(s.cl), s.topics...)
	if err != nil {
		return 0, err
	}
	var lag int64
	for key, at := range seen {
		lag += max(b[key].end-at, 0)
	}
	return lag, nil
}

// LastRecord is when the sink last wrote a record.
func (s *Sink) LastRecord() time.Time { return time.Unix(0, s.lastRecord.Load()) }

// Run consumes until ctx ends; what it polled is written before it
// returns, within the stop timeout.
func (s *Sink) Run(ctx context.Context) error {
	// Writes go on for a while after a stop, so that a batch polled is
	// written; a write that cannot finish by then (a database down) is
	// given up, and written again on the next start.
	wctx, cancelWrites := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWrites()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(s.cfg.StopTimeout, cancelWrites)
		context.AfterFunc(wctx, func() { t.Stop() })
	})
	defer stop()
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
			if err := s.write(wctx, fs); err != nil {
				s.cl.AllowRebalance()
				if ctx.Err() != nil && wctx.Err() != nil {
					s.log.Warn("stopped before the writes in flight finished; they are written on the next start", "stop_timeout", s.cfg.StopTimeout, "err", err)
					return nil
				}
				return err
			}
		}
		s.cl.AllowRebalance()
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if n := len(p.Records); n > 0 {
				metrics.SetLag(s.cfg.Group, p.Topic, p.Partition, max(p.HighWatermark-(p.Records[n-1].Offset+1), 0))
			}
		})
		if ctx.Err() != nil {
			return nil
		}
	}
}

// partRows are a partition's rows of a poll.
type partRows struct {
	txpipe.ViewBatch
	first, next int64 // offsets of the first record and past the last
}

// since returns the rows at or after offset next.
func (b *partRows) since(next int64) *txpipe.ViewBatch {
	if next <= b.first {
		return &b.ViewBatch
	}
	return &txpipe.ViewBatch{
		Results:  after(b.Results, next, func(r *txpipe.Result) int64 { return r.Pos.Offset }),
		Rejected: after(b.Rejected, next, func(r *txpipe.Rejected) int64 { return r.Pos.Offset }),
		Alerts:   after(b.Alerts, next, func(r *txpipe.Alert) int64 { return r.Pos.Offset }),
		Events:   after(b.Events, next, func(r *txpipe.Event) int64 { return r.Pos.Offset }),
	}
}

func after[T any](rows []T, next int64, offset func(*T) int64) []T {
	var out []T
	for i := range rows {
		if offset(&rows[i]) >= next {
			out = append(out, rows[i])
		}
	}
	return out
}

func (s *Sink) write(ctx context.Context, fs kgo.Fetches) error {
	batches := map[txpipe.Offset]*partRows{}
	var order []txpipe.Offset
	var n int64
	read := map[txpipe.Offset]int64{} // past the last record, markers included
	now := time.Now().UTC()           // when the sink took them: event_dw_regdate
	fs.EachRecord(func(r *kgo.Record) {
		key := tp(r.Topic, r.Partition)
		read[key] = r.Offset + 1
		if r.Attrs.IsControl() {
			return
		}
		b := batches[key]
		if b == nil {
			b = &partRows{first: r.Offset}
			batches[key] = b
			order = append(order, key)
		}
		b.next = r.Offset + 1
		n++
		pos := txpipe.Position{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
		bad := func(what string, err error) {
			b.Rejected = append(b.Rejected, txpipe.Rejected{Raw: txpipe.RawTransaction{Merchant: truncate(string(r.Value), 200)}, Reason: txpipe.RejectBadJSON,
				Detail: what + " record: " + err.Error(), Source: csvfile.PositionSource(pos), Seq: r.Offset, Pos: pos})
		}
		switch r.Topic {
		case s.cfg.Topics.Validated:
			res, err := DecodeResult(r.Value)
			if err != nil {
				bad("validated", err)
				return
			}
			res.Pos = pos
			b.Results = append(b.Results, res)
			metrics.ObserveEventLatency(txpipe.EventPayment, now.Sub(res.EventTime()))
			if s.cfg.Staging {
				b.Events = append(b.Events, txpipe.Event{Type: txpipe.EventPayment, CardID: res.CardID, Origin: res.EventTime(), Registered: now, JSON: string(r.Value), Pos: pos})
			}
		case s.cfg.Topics.Alerts:
			a, err := DecodeAlert(r.Value)
			if err != nil {
				bad("alert", err)
				return
			}
			a.Pos = pos
			b.Alerts = append(b.Alerts, a)
			metrics.ObserveEventLatency(a.Type, now.Sub(a.Origin))
			if s.cfg.Staging {
				b.Events = append(b.Events, txpipe.Event{Type: a.Type, CardID: a.CardID, Origin: a.Origin, Registered: now, JSON: a.JSON, Pos: pos})
			}
		default:
			rej, err := DecodeRejected(r.Value)
			if err != nil {
				bad("dead-letter", err)
				return
			}
			if rej.Source == "" {
				rej.Source = csvfile.PositionSource(pos)
			}
			rej.Pos = pos
			b.Rejected = append(b.Rejected, rej)
		}
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	// The outputs are independent views: write them at the same time,
	// each what it does not hold yet.
	errs := make([]error, len(s.cfg.Outputs))
	var wg sync.WaitGroup
	for i, out := range s.cfg.Outputs {
		vb := &txpipe.ViewBatch{}
		for _, key := range order {
			b := batches[key]
			next, ok := s.next[i][key]
			if !ok || b.next <= next {
				continue
			}
			rows := b.since(next)
			vb.Results, vb.Rejected = append(vb.Results, rows.Results...), append(vb.Rejected, rows.Rejected...)
			vb.Alerts, vb.Events = append(vb.Alerts, rows.Alerts...), append(vb.Events, rows.Events...)
			vb.Next = append(vb.Next, txpipe.Offset{Topic: key.Topic, Partition: key.Partition, Next: b.next, TopicID: s.ids[key.Topic]})
		}
		if len(vb.Next) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := out.Write(ctx, vb); err != nil {
				errs[i] = fmt.Errorf("write the %s view: %w", out.Name(), err)
				return
			}
			metrics.ObserveSinkRows(out.Name(), metrics.TableStream, len(vb.Results))
			metrics.ObserveSinkRows(out.Name(), metrics.TableRejected, len(vb.Rejected))
			metrics.ObserveSinkRows(out.Name(), metrics.TableAlerts, len(vb.Alerts))
			metrics.ObserveSinkRows(out.Name(), metrics.TableStaging, len(vb.Events))
			for _, o := range vb.Next {
				s.next[i][tp(o.Topic, o.Partition)] = o.Next
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
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

// Close leaves the group and closes the client: no output is opened
// after it returns, so the outputs' owner may close them then.
func (s *Sink) Close() {
	s.cl.Close()
}
