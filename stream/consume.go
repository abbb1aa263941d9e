package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe/internal/retry"
	"github.com/txpipe/txpipe/serving/csvfile"
)

// ConsumeConfig configures Consume: a validator and a sink in one process.
type ConsumeConfig struct {
	Brokers    []string
	Topics     Topics
	Group      string // the validators' group; the sinks use Group + ".sink"
	Instance   string
	ResultsDir string
	Store      Store // nil: CSV only
	Transient  func(error) bool
	// UntilIdle stops after this long without a record (0: until ctx ends).
	UntilIdle time.Duration
	// BrokerBound is how long --until-idle waits for a broker that went
	// away before it gives up with an error (default 1 minute).
	BrokerBound time.Duration
	// Done, when set, is polled and stops the run once it reports true.
	Done     func(ConsumeStats) bool
	MaxBatch int
	// CheckpointEvery and CheckpointInterval are the validator's.
	CheckpointEvery    int
	CheckpointInterval time.Duration
	DedupHorizon       time.Duration
	// Operators run after the card ledger (see ValidatorConfig).
	Operators []Operator
	// Alerts runs the stolen-card alert operator (NewAlerts) and writes
	// its alerts to the views; AlertsConfig tunes it (its Topic and Clock
	// are filled in).
	Alerts       bool
	AlertsConfig AlertsConfig
	// Staging writes every payment and alert to the event staging view.
	Staging bool
	// StopTimeout bounds how long a stop waits for writes in flight
	// (DefaultStopTimeout when zero).
	StopTimeout time.Duration
	// StatusEvery is how often a status line is logged (default 10 s;
	// negative: never); one is logged at the end too.
	StatusEvery time.Duration
	Clock       Clock
	Log         *slog.Logger
	ClientOpts  []kgo.Opt

	afterCommit func(records int) // for tests: see EngineConfig
}

// ConsumeStats counts what a Consume run did.
type ConsumeStats struct {
	Judged, Rejected, Written int64
	Elapsed                   time.Duration
	// MasterApplied is how far the validator applied the master data
	// (see Stats.MasterApplied and MasterEnd).
	MasterApplied int64
}

// Consume runs the validator and the sink until ctx ends, the stream has
// been idle for UntilIdle, or Done says so; it then lets both commit what
// is in flight (the sink within StopTimeout), leaves the groups and merges
// the CSV segments into the results files.
func Consume(ctx context.Context, cfg ConsumeConfig) (ConsumeStats, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.StatusEvery == 0 {
		cfg.StatusEvery = 10 * time.Second
	}
	if cfg.BrokerBound <= 0 {
		cfg.BrokerBound = time.Minute
	}
	start := time.Now()
	ops := cfg.Operators
	if cfg.Alerts {
		ac := cfg.AlertsConfig
		ac.Topic, ac.Clock = cfg.Topics.Alerts, cfg.Clock
		ops = append(append([]Operator{}, ops...), NewAlerts(ac))
	}
	vcfg := ValidatorConfig{
		Brokers: cfg.Brokers, Topics: cfg.Topics, Group: cfg.Group, Instance: cfg.Instance,
		MaxBatch: cfg.MaxBatch, CheckpointEvery: cfg.CheckpointEvery, CheckpointInterval: cfg.CheckpointInterval,
		DedupHorizon: cfg.DedupHorizon, Clock: cfg.Clock, Log: cfg.Log, ClientOpts: cfg.ClientOpts,
		Operators: ops, afterCommit: cfg.afterCommit,
	}
	first, err := NewValidator(ctx, vcfg)
	if err != nil {
		if ctx.Err() != nil {
			// Stopped while starting: nothing was judged or committed.
			return ConsumeStats{Elapsed: time.Since(start)}, nil
		}
		return ConsumeStats{}, err
	}
	segs, err := csvfile.NewSegments(cfg.ResultsDir)
	if err != nil {
		first.Close()
		return ConsumeStats{}, err
	}
	defer segs.CloseAll()
	outputs := []Output{segs}
	if cfg.Store != nil {
		outputs = append(outputs, StoreOutput(cfg.Store, cfg.Group+".sink", cfg.Topics, cfg.Transient, cfg.Log))
	}
	s, err := NewSink(SinkConfig{
		Brokers: cfg.Brokers, Topics: cfg.Topics, Group: cfg.Group + ".sink", Instance: cfg.Instance,
		Outputs: outputs, Alerts: cfg.Alerts, Staging: cfg.Staging, StopTimeout: cfg.StopTimeout, Log: cfg.Log, ClientOpts: cfg.ClientOpts,
	})
	if err != nil {
		first.Close()
		return ConsumeStats{}, err
	}
	vctx, stopV := context.WithCancel(ctx)
	sctx, stopS := context.WithCancel(ctx)
	defer stopV()
	defer stopS()
	sup := &supervisor{cfg: vcfg, log: cfg.Log}
	sup.cur.Store(first)
	verr, serr := make(chan error, 1), make(chan error, 1)
	go func() { verr <- sup.run(vctx) }()
	go func() { serr <- s.Run(sctx) }()

	stats := func() ConsumeStats {
		vs := sup.stats()
		return ConsumeStats{Judged: vs.Processed, Rejected: vs.Rejected, Written: s.Written(), Elapsed: time.Since(start), MasterApplied: vs.MasterApplied}
	}
	merge := func() error {
		return csvfile.Merge(cfg.ResultsDir, cfg.Topics.Validated, cfg.Topics.DLQ, cfg.Topics.Alerts)
	}
	status := &statusLine{cfg: cfg, sink: s, start: start}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var runErr error
	vDone, sDone := false, false
	merged := int64(0)       // rows written when the CSV files were last merged
	var brokerDown time.Time // since when --until-idle could not reach the broker
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-verr:
			vDone, runErr = true, err
			break loop
		case err := <-serr:
			sDone, runErr = true, err
			break loop
		case <-tick.C:
			st := stats()
			status.maybeLog(ctx, st, false)
			if cfg.Done != nil && cfg.Done(st) {
				break loop
			}
			last := max(start.UnixNano(), sup.stats().LastRecord.UnixNano(), s.LastRecord().UnixNano())
			idle := time.Since(time.Unix(0, last))
			// A stream at rest gets its CSV files rewritten in event order,
			// so readers (and the batch) see everything written so far.
			if w := s.Written(); w != merged && idle >= time.Second {
				if err := merge(); err != nil {
					cfg.Log.Warn("merge CSV results", "err", err)
				}
				merged = w
			}
			// Idle means no record for UntilIdle, nothing left for the
			// validators' group to judge, and the sink at the end of every
			// partition it reads (not still joining its group or waiting
			// for its first fetch). A broker that cannot be asked for that
			// longer than BrokerBound ends the run with an error.
			if cfg.UntilIdle > 0 && idle >= cfg.UntilIdle {
				done, err := idleNow(ctx, cfg, s)
				if err != nil {
					if brokerDown.IsZero() {
						brokerDown = time.Now()
					}
					if time.Since(brokerDown) > cfg.BrokerBound {
						runErr = fmt.Errorf("--until-idle: the broker %v did not answer for %s: %w", cfg.Brokers, cfg.BrokerBound, err)
						break loop
					}
					cfg.Log.Debug("idle check", "err", err)
					continue
				}
				brokerDown = time.Time{}
				if done {
					cfg.Log.Info("idle, stopping", "idle_for", cfg.UntilIdle)
					break loop
				}
			}
		}
	}
	// Stop the validator first so the sink can still drain what it
	// committed when we stop on Done.
	stopV()
	if !vDone {
		if err := <-verr; err != nil && runErr == nil {
			runErr = err
		}
	}
	stopS()
	if !sDone {
		if err := <-serr; err != nil && runErr == nil {
			runErr = err
		}
	}
	final := stats()
	status.maybeLog(context.Background(), final, true)
	sup.cur.Load().Close()
	s.Close()
	// Static members do not leave on close (so a restart gets its
	// partitions back at once); a deliberate stop hands them over now.
	leaveGroups(cfg, cfg.Group, cfg.Group+".sink")
	if err := merge(); err != nil && runErr == nil {
		runErr = fmt.Errorf("merge CSV results: %w", err)
	}
	if errors.Is(runErr, context.Canceled) && !errors.Is(runErr, errFatal) {
		runErr = nil
	}
	return final, runErr
}

// idleNow reports whether nothing is left to do: the validators' group has
// no lag and the sink is at the end of every partition it reads.
func idleNow(ctx context.Context, cfg ConsumeConfig, s *Sink) (bool, error) {
	lag, err := groupLag(ctx, cfg, cfg.Group, cfg.Topics.Input, cfg.Topics.Repartition)
	if err != nil || lag > 0 {
		return false, err
	}
	return s.CaughtUp(ctx)
}

// statusLine logs, every StatusEvery and at the end, what the consumer has
// done: judged, rejected, rate, the validators' lag and the sink's.
type statusLine struct {
	cfg   ConsumeConfig
	sink  *Sink
	start time.Time
	last  time.Time
	prev  ConsumeStats
}

func (l *statusLine) maybeLog(ctx context.Context, st ConsumeStats, final bool) {
	from := l.start
	if l.last.After(from) {
		from = l.last
	}
	if l.cfg.StatusEvery < 0 || (!final && time.Since(from) < l.cfg.StatusEvery) {
		return
	}
	since := time.Since(from).Seconds()
	rate := float64(st.Judged+st.Rejected-l.prev.Judged-l.prev.Rejected) / max(since, 1e-9)
	attrs := []any{"judged", st.Judged, "rejected", st.Rejected, "written", st.Written, "rate_per_s", int64(rate)}
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if lag, err := groupLag(qctx, l.cfg, l.cfg.Group, l.cfg.Topics.Input, l.cfg.Topics.Repartition); err == nil {
		attrs = append(attrs, "input_lag", lag)
	}
	if lag, err := l.sink.Lag(qctx); err == nil {
		attrs = append(attrs, "sink_lag", lag)
	}
	msg := "status"
	if final {
		msg = "status at the end"
	}
	l.cfg.Log.Info(msg, attrs...)
	l.last, l.prev = time.Now(), st
}

// leaveGroups makes this instance leave the groups, so the others take its
// partitions without waiting for the session timeout.
func leaveGroups(cfg ConsumeConfig, groups ...string) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOpts...)...)
	if err != nil {
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	for _, g := range groups {
		if _, err := adm.LeaveGroup(ctx, kadm.LeaveGroup(g).InstanceIDs(cfg.Instance).Reason("txpipe consume stopped")); err != nil {
			cfg.Log.Warn("leave group", "group", g, "instance", cfg.Instance, "err", err)
		}
	}
}

// supervisor keeps a validator running: a validator whose Kafka session
// failed (a broker that went away while a transaction ended, say) is
// closed and replaced, with backoff. The new one fences the old session
// and restores its cards from their checkpoints and results, so nothing is
// lost or counted twice.
type supervisor struct {
	cfg  ValidatorConfig
	log  *slog.Logger
	cur  atomic.Pointer[Validator]
	done atomic.Pointer[Stats] // counters of the validators replaced so far
}

func (s *supervisor) stats() Stats {
	st := s.cur.Load().Stats()
	if d := s.done.Load(); d != nil { // MasterApplied is the current validator's
		st.Processed += d.Processed
		st.Rejected += d.Rejected
		st.Aborts += d.Aborts
		if d.LastRecord.After(st.LastRecord) {
			st.LastRecord = d.LastRecord
		}
	}
	return st
}

func (s *supervisor) run(ctx context.Context) error {
	for {
		v := s.cur.Load()
		err := v.Run(ctx)
		if err == nil || ctx.Err() != nil || errors.Is(err, errFatal) {
			return err
		}
		s.log.Error("validator failed; restarting it", "err", err)
		st := s.stats()
		s.done.Store(&st)
		v.Close()
		var nv *Validator
		err = retry.Do(ctx, retry.Policy{What: "restart the validator", Log: s.log}, func(ctx context.Context) error {
			var err error
			nv, err = NewValidator(ctx, s.cfg)
			return err
		})
		if err != nil {
			return nil // ctx ended; cur is the closed one: closing it again is harmless
		}
		s.cur.Store(nv)
	}
}

// groupLag is how many records of topics the group has not yet committed.
func groupLag(ctx context.Context, cfg ConsumeConfig, group string, topics ...string) (int64, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOpts...)...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return 0, err
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		committed, err = kadm.OffsetResponses{}, nil
	}
	if err != nil {
		return 0, err
	}
	var lag int64
	var ferr error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			ferr = o.Err
			return
		}
		done := int64(0)
		if c, ok := committed.Lookup(o.Topic, o.Partition); ok && c.At > 0 {
			done = c.At
		}
		lag += max(o.Offset-done, 0)
	})
	return lag, ferr
}
