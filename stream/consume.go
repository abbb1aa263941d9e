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
	// Done, when set, is polled and stops the run once it reports true.
	Done     func(ConsumeStats) bool
	MaxBatch int
	// CheckpointEvery and CheckpointInterval are the validator's.
	CheckpointEvery    int
	CheckpointInterval time.Duration
	Log                *slog.Logger
	ClientOpts         []kgo.Opt
}

// ConsumeStats counts what a Consume run did.
type ConsumeStats struct {
	Judged, Rejected, Written int64
	Elapsed                   time.Duration
}

// Consume runs the validator and the sink until ctx ends, the stream has
// been idle for UntilIdle, or Done says so; it then lets both commit what
// is in flight, leaves the groups and merges the CSV segments into the
// results files.
func Consume(ctx context.Context, cfg ConsumeConfig) (ConsumeStats, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	start := time.Now()
	vcfg := ValidatorConfig{
		Brokers: cfg.Brokers, Topics: cfg.Topics, Group: cfg.Group, Instance: cfg.Instance,
		MaxBatch: cfg.MaxBatch, CheckpointEvery: cfg.CheckpointEvery, CheckpointInterval: cfg.CheckpointInterval, Log: cfg.Log, ClientOpts: cfg.ClientOpts,
	}
	first, err := NewValidator(ctx, vcfg)
	if err != nil {
		if ctx.Err() != nil {
			// Stopped while starting: nothing was judged or committed.
			return ConsumeStats{Elapsed: time.Since(start)}, nil
		}
		return ConsumeStats{}, err
	}
	s, err := NewSink(SinkConfig{
		Brokers: cfg.Brokers, Topics: cfg.Topics, Group: cfg.Group + ".sink", Instance: cfg.Instance,
		ResultsDir: cfg.ResultsDir, Store: cfg.Store, Consumer: cfg.Group + ".sink", Transient: cfg.Transient,
		Log: cfg.Log, ClientOpts: cfg.ClientOpts,
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
		return ConsumeStats{Judged: vs.Processed, Rejected: vs.Rejected, Written: s.Written(), Elapsed: time.Since(start)}
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var runErr error
	vDone, sDone := false, false
	merged := int64(0) // rows written when the CSV files were last merged
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
			if cfg.Done != nil && cfg.Done(st) {
				break loop
			}
			last := max(start.UnixNano(), sup.stats().LastRecord.UnixNano(), s.LastRecord().UnixNano())
			idle := time.Since(time.Unix(0, last))
			// A stream at rest gets its CSV files rewritten in event order,
			// so readers (and the batch) see everything written so far.
			if w := s.Written(); w != merged && idle >= time.Second {
				if err := MergeCSV(cfg.ResultsDir, cfg.Topics); err != nil {
					cfg.Log.Warn("merge CSV results", "err", err)
				}
				merged = w
			}
			// Idle means no record for UntilIdle, nothing left for the
			// validators' group to judge, and the sink at the end of every
			// partition it reads (not still joining its group or waiting
			// for its first fetch).
			if cfg.UntilIdle > 0 && idle >= cfg.UntilIdle {
				lag, err := groupLag(ctx, cfg, cfg.Group, cfg.Topics.Input)
				if err != nil {
					cfg.Log.Debug("group lag", "err", err)
					continue
				}
				if lag > 0 {
					continue
				}
				caughtUp, err := s.CaughtUp(ctx)
				if err != nil {
					cfg.Log.Debug("sink position", "err", err)
				} else if caughtUp {
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
	sup.cur.Load().Close()
	s.Close()
	// Static members do not leave on close (so a restart gets its
	// partitions back at once); a deliberate stop hands them over now.
	leaveGroups(cfg, cfg.Group, cfg.Group+".sink")
	if err := MergeCSV(cfg.ResultsDir, cfg.Topics); err != nil && runErr == nil {
		runErr = fmt.Errorf("merge CSV results: %w", err)
	}
	if errors.Is(runErr, context.Canceled) && !errors.Is(runErr, errFatal) {
		runErr = nil
	}
	return stats(), runErr
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
	if d := s.done.Load(); d != nil {
		st.Processed += d.Processed
		st.Rejected += d.Rejected
		if d.LastRecord.After(st.LastRecord) {
			st.LastRecord = d.LastRecord
		}
	}
	return st
}

func (s *supervisor) run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		v := s.cur.Load()
		err := v.Run(ctx)
		if err == nil || ctx.Err() != nil || errors.Is(err, errFatal) {
			return err
		}
		s.log.Error("validator failed; restarting it", "err", err, "in", backoff)
		st := s.stats()
		s.done.Store(&st)
		v.Close()
		for {
			select {
			case <-ctx.Done():
				return nil // cur is the closed one: closing it again is harmless
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			nv, err := NewValidator(ctx, s.cfg)
			if err == nil {
				s.cur.Store(nv)
				break
			}
			s.log.Warn("validator restart failed, retrying", "err", err, "in", backoff)
		}
		backoff = 100 * time.Millisecond
	}
}

// groupLag is how many records of topic the group has not yet committed.
func groupLag(ctx context.Context, cfg ConsumeConfig, group, topic string) (int64, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOpts...)...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topic)
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
		if c, ok := committed.Lookup(topic, o.Partition); ok && c.At > 0 {
			done = c.At
		}
		lag += max(o.Offset-done, 0)
	})
	return lag, ferr
}
