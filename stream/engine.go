package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe/internal/metrics"
	"github.com/txpipe/txpipe/internal/retry"
)

// EngineConfig configures an Engine.
type EngineConfig struct {
	Brokers  []string
	Group    string
	Instance string // stable per process: static group membership and transactional id
	// Sources are the topics the engine consumes, co-partitioned: their
	// partition p goes to the tasks of partition p.
	Sources []string
	// StateTopic holds the tasks' checkpoints, partition p for partition p.
	StateTopic string
	Operators  []Operator
	// MaxBatch is the most records judged per Kafka transaction.
	MaxBatch int
	// CheckpointInterval is the longest a partition goes without a
	// checkpoint (tasks are told when it is due).
	CheckpointInterval time.Duration
	// PollWait bounds a poll, so that timers fire on quiet partitions
	// (default 1 s; a timer due sooner shortens it).
	PollWait time.Duration
	// FenceBound bounds how long fencing the previous owner of the
	// partitions may take before the engine gives up (default 1 minute).
	FenceBound time.Duration
	Clock      Clock
	Log        *slog.Logger
	ClientOpts []kgo.Opt

	// afterCommit, for tests, is called after each committed transaction
	// with the number of records it consumed.
	afterCommit func(records int)
}

// Engine runs operators over the source topics exactly once: for each
// polled batch it runs the tasks of every partition in the batch (the
// partitions in parallel, each by one goroutine), fires the timers that
// are due, writes the checkpoints, and commits all they produced with the
// consumed offsets in one Kafka transaction.
type Engine struct {
	cfg        EngineConfig
	log        *slog.Logger
	clock      Clock
	sess       *kgo.GroupTransactSession
	base       []kgo.Opt
	downstream map[string][]int // forward name → indexes of the operators that take it

	mu    sync.Mutex
	owned map[int32]*partition // the partitions this process runs

	fatal      atomic.Pointer[error]
	lastRecord atomic.Int64 // unix nanos of the last batch with records
	aborts     atomic.Int64
	lastAbort  struct { // of the Run goroutine: aborts logged, for logAbort
		reason string
		at     time.Time
		quiet  int
	}
	closeOnce sync.Once
	workers   int

	// sink, for benchmarks, takes the records produced instead of Kafka.
	sink func(*kgo.Record)

	// produce bookkeeping of the transaction in flight
	produceErr atomic.Pointer[error]
	offMu      sync.Mutex
	produced   map[int32]map[string]int64 // partition → topic → offset after the last record
}

// partition is an owned partition: its tasks, one per operator.
type partition struct {
	id        int32
	tasks     []Task
	lastCkpt  time.Time // when its last checkpoint committed (or it came)
	ckptDirty bool      // a checkpoint in the transaction in flight wrote records
}

// errFatal marks errors after which no engine may go on.
var errFatal = errors.New("fatal")

// NewEngine connects. The source and state topics must exist.
func NewEngine(cfg EngineConfig) (*Engine, error) {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.CheckpointInterval <= 0 {
		cfg.CheckpointInterval = DefaultCheckpointInterval
	}
	if cfg.PollWait <= 0 {
		cfg.PollWait = time.Second
	}
	if cfg.FenceBound <= 0 {
		cfg.FenceBound = time.Minute
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	e := &Engine{
		cfg: cfg, log: cfg.Log, clock: cfg.Clock,
		owned:      map[int32]*partition{},
		downstream: map[string][]int{},
		workers:    runtime.GOMAXPROCS(0),
		produced:   map[int32]map[string]int64{},
	}
	for i, op := range cfg.Operators {
		for _, in := range op.Inputs() {
			if !slices.Contains(cfg.Sources, in) {
				e.downstream[in] = append(e.downstream[in], i)
			}
		}
	}
	e.base = append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOpts...)
	opts := append(append([]kgo.Opt{}, e.base...),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Sources...),
		// Range keeps partition p of every source on one member: a card's
		// records from the input and the repartition topic meet there.
		kgo.Balancers(kgo.RangeBalancer()),
		kgo.InstanceID(cfg.Instance),
		kgo.TransactionalID("txpipe-validator-"+cfg.Group+"-"+cfg.Instance),
		kgo.TransactionTimeout(10*time.Second),
		kgo.SessionTimeout(6*time.Second),
		kgo.HeartbeatInterval(time.Second),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers (a transactional producer's) come through
		// polls, so the committed offsets move past them: a group at the
		// end of its partitions has no lag.
		kgo.KeepControlRecords(),
		kgo.FetchMaxBytes(fetchMaxBytes),
		kgo.RequireStableFetchOffsets(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.OnPartitionsAssigned(e.assigned),
		kgo.OnPartitionsRevoked(e.revoked),
		kgo.OnPartitionsLost(e.revoked),
	)
	var err error
	e.sess, err = kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka transact session: %w", err)
	}
	return e, nil
}

// setFatal records an error that ends Run.
func (e *Engine) setFatal(err error) { e.fatal.CompareAndSwap(nil, &err) }

// assigned builds the tasks of newly assigned partitions from the state
// topic before any of their records is processed. It first fences any
// previous owner of this transactional id, so its open transaction is
// aborted and the topics' ends are final; a process that cannot fence
// must not judge.
func (e *Engine) assigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	var parts []int32
	for _, ps := range assigned {
		for _, p := range ps {
			if !slices.Contains(parts, p) {
				parts = append(parts, p)
			}
		}
	}
	e.mu.Lock()
	// The balancer is eager: assigned holds every partition of this
	// member's new generation. A partition it does not hold left us even
	// when no revoke said so (the transact session passes on only the first
	// revoke between two ends of a transaction: a second rebalance before
	// the next transaction would leave its partitions here, their timers
	// committing output for partitions another member owns).
	var gone []int32
	for id := range e.owned {
		if !slices.Contains(parts, id) {
			delete(e.owned, id)
			gone = append(gone, id)
		}
	}
	parts = slices.DeleteFunc(parts, func(p int32) bool { return e.owned[p] != nil })
	e.mu.Unlock()
	if len(gone) > 0 {
		slices.Sort(gone)
		e.log.Info("partitions revoked", "partitions", gone, "by", "the new assignment")
	}
	if len(parts) == 0 {
		return
	}
	slices.Sort(parts)
	start := time.Now()
	err := retry.Do(ctx, retry.Policy{
		What:  fmt.Sprintf("fence the previous owner of partitions %v (InitProducerID on %v)", parts, e.cfg.Brokers),
		Bound: e.cfg.FenceBound, Log: e.log,
		Transient: func(err error) bool { return !errors.Is(err, kerr.TransactionalIDAuthorizationFailed) },
	}, func(ctx context.Context) error {
		_, _, err := cl.ProducerID(ctx)
		return err
	})
	if err != nil {
		if ctx.Err() == nil {
			e.setFatal(fmt.Errorf("%w: %w", errFatal, err))
		}
		return
	}
	restored, err := e.restore(ctx, parts)
	if err != nil {
		// Without its state a partition must not be judged: end this
		// engine; a new one retries on its next assignment (or, for
		// records deleted by retention, nobody can).
		err = fmt.Errorf("restore the state of partitions %v: %w", parts, err)
		if errors.Is(err, errRecordsDeleted) {
			err = fmt.Errorf("%w: %w", errFatal, err)
		}
		e.setFatal(err)
		return
	}
	e.mu.Lock()
	now := e.clock.Now()
	counts := map[string]int{}
	for _, p := range restored {
		p.lastCkpt = now
		e.owned[p.id] = p
		for _, t := range p.tasks {
			if r, ok := t.(restoreReporter); ok {
				for k, n := range r.RestoreCounts() {
					counts[k] += n
				}
			}
		}
	}
	e.mu.Unlock()
	attrs := []any{"partitions", parts}
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		attrs = append(attrs, k, counts[k])
	}
	e.log.Info("partitions assigned", append(attrs, "took", time.Since(start).Round(time.Millisecond))...)
}

// restoreReporter is a task that says what its restore found, for the log.
type restoreReporter interface {
	RestoreCounts() map[string]int
}

// revoked drops the tasks of partitions that left this process.
func (e *Engine) revoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var gone []int32
	for _, ps := range revoked {
		for _, p := range ps {
			if e.owned[p] != nil {
				delete(e.owned, p)
				gone = append(gone, p)
			}
		}
	}
	if len(gone) > 0 {
		slices.Sort(gone)
		e.log.Info("partitions revoked", "partitions", gone)
	}
}

// LastRecord is when the engine last committed records.
func (e *Engine) LastRecord() time.Time { return time.Unix(0, e.lastRecord.Load()) }

// Run processes records until ctx ends, then finishes the transaction in
// flight and returns. A returned error is fatal for this engine; its
// uncommitted work is aborted and redone by whoever takes its partitions.
func (e *Engine) Run(ctx context.Context) error {
	var workers []*batchWorker // reused from batch to batch
	for {
		wait := e.cfg.PollWait
		if next := e.nextTimer(); !next.IsZero() {
			wait = min(wait, max(next.Sub(e.clock.Now()), time.Millisecond))
		}
		pctx, cancelPoll := context.WithTimeout(ctx, wait)
		fs := e.sess.PollRecords(pctx, e.cfg.MaxBatch)
		cancelPoll()
		if err := e.fatal.Load(); err != nil {
			return *err
		}
		if fs.IsClientClosed() || (ctx.Err() != nil && fs.Empty()) {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				e.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
			}
		})
		// The partitions with records, each with its records in order (a
		// poll may hold several chunks of one partition, and records of
		// every source).
		var parts [][]*kgo.Record
		index := map[int32]int{}
		markers := false
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			recs := p.Records
			for i, r := range recs {
				if r.Attrs.IsControl() { // rare: copy the data records
					markers = true
					recs = slices.DeleteFunc(slices.Clone(recs[i:]), func(r *kgo.Record) bool { return r.Attrs.IsControl() })
					recs = append(slices.Clone(p.Records[:i]), recs...)
					break
				}
			}
			if len(recs) == 0 {
				return
			}
			if i, ok := index[p.Partition]; ok {
				parts[i] = append(slices.Clip(parts[i]), recs...)
				return
			}
			index[p.Partition] = len(parts)
			parts = append(parts, recs)
		})
		now := e.clock.Now()
		e.mu.Lock()
		var work []*partWork
		for _, recs := range parts {
			p := e.owned[recs[0].Partition]
			if p == nil {
				continue // revoked since the fetch: its records are not ours
			}
			work = append(work, &partWork{p: p, recs: recs})
		}
		for id, p := range e.owned {
			if _, ok := index[id]; !ok && (e.timerDue(p, now) || e.checkpointDue(p, now)) {
				work = append(work, &partWork{p: p})
			}
		}
		e.mu.Unlock()
		if len(work) == 0 && markers {
			// Only transaction markers were polled: commit the offsets past
			// them in a transaction of their own.
			work = append(work, &partWork{p: &partition{}})
		}
		if len(work) == 0 {
			continue
		}
		if err := e.transact(ctx, work, now, &workers); err != nil {
			return err
		}
	}
}

// partWork is a partition's share of a transaction.
type partWork struct {
	p    *partition
	recs []*kgo.Record
}

// timerDue reports whether one of p's tasks has a timer due.
func (e *Engine) timerDue(p *partition, now time.Time) bool {
	for _, t := range p.tasks {
		if at := t.NextTimer(); !at.IsZero() && !at.After(now) {
			return true
		}
	}
	return false
}

// checkpointDue reports whether a quiet partition needs a transaction of
// its own for a checkpoint: a task has state its last checkpoint lacks,
// and the interval has passed.
func (e *Engine) checkpointDue(p *partition, now time.Time) bool {
	return now.Sub(p.lastCkpt) >= e.cfg.CheckpointInterval && e.dirty(p)
}

func (e *Engine) dirty(p *partition) bool {
	for _, t := range p.tasks {
		if t.Dirty() {
			return true
		}
	}
	return false
}

// nextTimer is the earliest timer or checkpoint due of the owned
// partitions (zero: none).
func (e *Engine) nextTimer() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	var next time.Time
	earlier := func(at time.Time) {
		if !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	for _, p := range e.owned {
		for _, t := range p.tasks {
			earlier(t.NextTimer())
		}
		if e.dirty(p) {
			earlier(p.lastCkpt.Add(e.cfg.CheckpointInterval))
		}
	}
	return next
}

// transact runs one Kafka transaction over work.
func (e *Engine) transact(ctx context.Context, work []*partWork, now time.Time, workers *[]*batchWorker) error {
	if err := e.sess.Begin(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	e.produceErr.Store(nil)
	e.offMu.Lock()
	clear(e.produced)
	e.offMu.Unlock()
	for _, w := range work {
		for _, t := range w.p.tasks {
			t.Begin()
		}
	}
	// Partitions hold disjoint state: run them in parallel, each by one
	// goroutine. Records are produced whatever happens to ctx: a stop
	// finishes the transaction in flight.
	pctx := context.WithoutCancel(ctx)
	nw := min(e.workers, len(work))
	for len(*workers) < nw {
		*workers = append(*workers, &batchWorker{})
	}
	var wg sync.WaitGroup
	records := 0
	for i := 0; i < nw; i++ {
		w := (*workers)[i]
		w.work = w.work[:0]
		for j := i; j < len(work); j += nw {
			w.work = append(w.work, work[j])
			records += len(work[j].recs)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.runWorker(pctx, w, now)
		}()
	}
	wg.Wait()

	// End with a context of its own: a stop must still finish the
	// transaction in flight. Every record is acknowledged before the
	// checkpoints (they name offsets of this transaction's records) and
	// again before the decision to commit: a transaction that lost one of
	// its records would commit the offsets without the result.
	endCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t0 := time.Now()
	if err := e.sess.Client().Flush(endCtx); err != nil {
		e.failProduce(fmt.Errorf("flush transaction: %w", err))
	}
	if e.produceErr.Load() == nil {
		e.checkpoint(endCtx, work, now)
		if err := e.sess.Client().Flush(endCtx); err != nil {
			e.failProduce(fmt.Errorf("flush checkpoint: %w", err))
		}
	}
	commit := kgo.TryCommit
	reason := ""
	if perr := e.produceErr.Load(); perr != nil {
		reason = "a record could not be produced: " + (*perr).Error()
		e.log.Warn("produce failed, aborting the transaction", "err", *perr)
		commit = kgo.TryAbort
	}
	committed, err := e.sess.End(endCtx, commit)
	metrics.ObserveTransactionEnd(time.Since(t0), committed)
	if perr := e.produceErr.Load(); committed && perr != nil {
		return fmt.Errorf("%w: transaction committed despite a produce error: %w", errFatal, *perr)
	}
	for _, w := range work {
		for _, t := range w.p.tasks {
			if committed {
				t.Commit(e.producedOf(w.p.id))
			} else {
				t.Rollback()
			}
		}
		if committed && w.p.ckptDirty {
			w.p.lastCkpt = now
		}
		w.p.ckptDirty = false
	}
	if err != nil {
		return fmt.Errorf("end transaction: %w", err)
	}
	if committed {
		if records > 0 {
			e.lastRecord.Store(time.Now().UnixNano())
			if e.cfg.afterCommit != nil {
				e.cfg.afterCommit(records)
			}
		}
		return nil
	}
	e.aborts.Add(1)
	if reason == "" {
		// End aborts by itself when the group revoked or lost partitions
		// during the transaction, or the producer was fenced.
		reason = "the group rebalanced or this member was fenced during the transaction"
	}
	e.logAbort(records, len(work), reason)
	return nil
}

// logAbort logs an aborted transaction; the same reason again within
// abortLogEvery is counted and told with the next line instead.
func (e *Engine) logAbort(records, partitions int, reason string) {
	now := time.Now()
	if reason == e.lastAbort.reason && now.Sub(e.lastAbort.at) < abortLogEvery {
		e.lastAbort.quiet++
		return
	}
	attrs := []any{"records", records, "partitions", partitions, "reason", reason}
	if e.lastAbort.quiet > 0 {
		attrs = append(attrs, "aborted_unlogged", e.lastAbort.quiet)
	}
	e.log.Info("transaction aborted; its records will be processed again", attrs...)
	e.lastAbort.reason, e.lastAbort.at, e.lastAbort.quiet = reason, now, 0
}

const abortLogEvery = 10 * time.Second

func (e *Engine) failProduce(err error) { e.produceErr.CompareAndSwap(nil, &err) }

// produce sends a record in the transaction in flight.
func (e *Engine) produce(ctx context.Context, r *kgo.Record) {
	if e.sink != nil {
		e.sink(r)
		return
	}
	e.sess.Produce(ctx, r, e.promise)
}

func (e *Engine) promise(r *kgo.Record, err error) {
	if err != nil {
		e.failProduce(fmt.Errorf("produce to %s/%d: %w", r.Topic, r.Partition, err))
		return
	}
	e.offMu.Lock()
	m := e.produced[r.Partition]
	if m == nil {
		m = map[string]int64{}
		e.produced[r.Partition] = m
	}
	m[r.Topic] = max(m[r.Topic], r.Offset+1)
	e.offMu.Unlock()
}

// producedOf returns, per topic, the offset after the last record the
// transaction produced to partition p.
func (e *Engine) producedOf(p int32) map[string]int64 {
	e.offMu.Lock()
	defer e.offMu.Unlock()
	return e.produced[p]
}

// checkpoint lets every task of the transaction's partitions write its
// checkpoint: due when the partition's interval has passed.
func (e *Engine) checkpoint(ctx context.Context, work []*partWork, now time.Time) {
	for _, w := range work {
		due := now.Sub(w.p.lastCkpt) >= e.cfg.CheckpointInterval
		produced := e.producedOf(w.p.id)
		for i, t := range w.p.tasks {
			sw := &StateWriter{e: e, ctx: ctx, partition: w.p.id, prefix: e.cfg.Operators[i].Name() + "/"}
			t.Checkpoint(sw, due, produced)
			if sw.n > 0 {
				w.p.ckptDirty = true
			}
		}
	}
}

// batchWorker runs some partitions of a transaction.
type batchWorker struct {
	work  []*partWork
	tasks []Task       // of the partition being run
	buf   []byte       // the byte slab in use
	recs  []kgo.Record // the record slab in use
}

// buffer returns the free end of a byte slab per transaction and worker
// (at least bound bytes): a record's bytes are never reused while the
// client may still send them.
func (w *batchWorker) buffer(bound int) []byte {
	if cap(w.buf)-len(w.buf) < bound {
		w.buf = make([]byte, 0, max(bound, 1<<20))
	}
	return w.buf[len(w.buf):len(w.buf)]
}

// keep takes b, appended to what buffer returned, into the slab.
func (w *batchWorker) keep(b []byte) []byte {
	n := len(w.buf)
	if len(b) == 0 || len(b) > cap(w.buf)-n || &w.buf[:n+1][n] != &b[0] {
		return b[:len(b):len(b)] // written elsewhere (over its bound): its own memory
	}
	w.buf = w.buf[:n+len(b)]
	return b[:len(b):len(b)]
}

// record returns a zero record from the worker's record slab.
func (w *batchWorker) record() *kgo.Record {
	if len(w.recs) == 0 {
		w.recs = make([]kgo.Record, 1024)
	}
	r := &w.recs[0]
	w.recs = w.recs[1:]
	return r
}

// runWorker runs a worker's partitions: their records through the tasks
// of the operators that take each record's topic, then their due timers.
func (e *Engine) runWorker(ctx context.Context, w *batchWorker, now time.Time) {
	w.buf, w.recs = nil, nil // new slabs: the previous transaction's records may still be referenced
	for _, pw := range w.work {
		w.tasks = pw.p.tasks
		out := &Emitter{e: e, w: w, partition: pw.p.id, ctx: ctx}
		for _, r := range pw.recs {
			for i, op := range e.cfg.Operators {
				if slices.Contains(op.Inputs(), r.Topic) {
					out.op = i
					pw.p.tasks[i].Process(r, out)
				}
			}
		}
		for i, t := range pw.p.tasks {
			if at := t.NextTimer(); !at.IsZero() && !at.After(now) {
				out.op = i
				t.OnTime(now, out)
			}
		}
	}
}

// Close leaves the group and closes the client. Call it after Run returns.
func (e *Engine) Close() {
	e.closeOnce.Do(func() { e.sess.Close() })
}
