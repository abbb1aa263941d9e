package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe"
)

// Header keys the producer sets on input records.
const (
	HeaderEventType = "event_type"
	HeaderSeq       = "seq"    // input order (line of the file or row of the table)
	HeaderSource    = "source" // where the row came from, e.g. transactions.csv:12
)

// EventPayment is the event type of a transaction record.
const EventPayment = "PAYMENT_EVENT"

// DefaultMaxBatch is how many records the validator judges per Kafka
// transaction at most. Larger transactions cost fewer commits; at 10,000 a
// transaction stays well under a tenth of a second.
const DefaultMaxBatch = 10000

// DefaultCheckpointEvery is how many results of a partition the validator
// judges between two checkpoints of the partition's card states. A restore
// replays at most about this many validated records per partition.
const DefaultCheckpointEvery = 50000

// DefaultCheckpointInterval is the longest a partition with changed cards
// goes without a checkpoint, so a quiet partition's replay never reaches
// back further than this (and than the validated topic's retention).
const DefaultCheckpointInterval = 5 * time.Minute

// ValidatorConfig configures a Validator.
type ValidatorConfig struct {
	Brokers  []string
	Topics   Topics
	Group    string
	Instance string // stable per process: static group membership and transactional id
	MaxBatch int    // records per Kafka transaction (default DefaultMaxBatch)
	// CheckpointEvery and CheckpointInterval say when a partition's card
	// states are checkpointed (defaults DefaultCheckpointEvery and
	// DefaultCheckpointInterval).
	CheckpointEvery    int
	CheckpointInterval time.Duration
	Log                *slog.Logger
	// ClientOpts are added to every Kafka client (tests, TLS, SASL).
	ClientOpts []kgo.Opt
}

// Validator judges the input topic exactly once: for each polled batch it
// produces the results (each with its card's new pending balance), now and
// then a checkpoint of a partition's card states, and the consumed offsets
// in one Kafka transaction.
type Validator struct {
	cfg  ValidatorConfig
	log  *slog.Logger
	sess *kgo.GroupTransactSession
	base []kgo.Opt

	mu       sync.Mutex
	ledger   *txpipe.Ledger
	cardPart map[int64]int32     // which input partition a card's state belongs to
	owned    map[int32]*partCkpt // the partitions this process judges

	processed, rejected atomic.Int64
	lastRecord          atomic.Int64 // unix nanos of the last batch
	master              *masterFollower
	fatal               atomic.Pointer[error]
	closeOnce           sync.Once
	workers             int // partitions judged in parallel
}

// Stats are a validator's counters.
type Stats struct {
	Processed, Rejected int64
	LastRecord          time.Time
}

// NewValidator connects, creates missing topics and reads the master data
// to its end. Run starts judging.
func NewValidator(ctx context.Context, cfg ValidatorConfig) (*Validator, error) {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.CheckpointEvery <= 0 {
		cfg.CheckpointEvery = DefaultCheckpointEvery
	}
	if cfg.CheckpointInterval <= 0 {
		cfg.CheckpointInterval = DefaultCheckpointInterval
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	v := &Validator{
		cfg:      cfg,
		log:      cfg.Log.With("component", "validator"),
		ledger:   txpipe.NewLedger(nil),
		cardPart: map[int64]int32{},
		owned:    map[int32]*partCkpt{},
		workers:  runtime.GOMAXPROCS(0),
	}
	v.base = append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOpts...)
	admin, err := kgo.NewClient(v.base...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	_, err = EnsureTopics(ctx, admin, cfg.Topics, 0)
	admin.Close()
	if err != nil {
		return nil, err
	}
	v.master, err = followMaster(ctx, v.base, cfg.Topics, v.applyMaster, v.log)
	if err != nil {
		return nil, err
	}
	opts := append(append([]kgo.Opt{}, v.base...),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics.Input),
		kgo.InstanceID(cfg.Instance),
		kgo.TransactionalID("txpipe-validator-"+cfg.Group+"-"+cfg.Instance),
		kgo.TransactionTimeout(10*time.Second),
		kgo.SessionTimeout(6*time.Second),
		kgo.HeartbeatInterval(time.Second),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxBytes(fetchMaxBytes),
		kgo.RequireStableFetchOffsets(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.OnPartitionsAssigned(v.assigned),
		kgo.OnPartitionsRevoked(v.revoked),
		kgo.OnPartitionsLost(v.revoked),
	)
	v.sess, err = kgo.NewGroupTransactSession(opts...)
	if err != nil {
		v.master.close()
		return nil, fmt.Errorf("kafka transact session: %w", err)
	}
	return v, nil
}

func (v *Validator) applyMaster(r *kgo.Record) {
	if r.Value == nil {
		return
	}
	switch r.Topic {
	case v.cfg.Topics.Cards:
		c, err := DecodeCard(r.Value)
		if err != nil {
			v.log.Warn("skip bad card record", "partition", r.Partition, "offset", r.Offset, "err", err)
			return
		}
		v.mu.Lock()
		v.ledger.SetCard(c)
		v.mu.Unlock()
	case v.cfg.Topics.Customers:
		c, err := DecodeCustomer(r.Value)
		if err != nil {
			v.log.Warn("skip bad customer record", "partition", r.Partition, "offset", r.Offset, "err", err)
			return
		}
		v.mu.Lock()
		v.ledger.SetCustomer(c)
		v.mu.Unlock()
	}
}

// partCkpt is what an owned partition has changed since its last
// committed checkpoint.
type partCkpt struct {
	changed map[int64]struct{} // cards
	since   int                // results
	last    time.Time          // when the last checkpoint committed, or the partition came
	next    int64              // validated offset after the last committed result
}

// assigned restores the cards of newly assigned partitions (their last
// checkpoint, then the validated records after it) before any of their
// records is processed. It first fences any previous owner of this
// transactional id, so its open transaction is aborted and the topics'
// ends are final.
func (v *Validator) assigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	parts := assigned[v.cfg.Topics.Input]
	if len(parts) == 0 {
		return
	}
	if _, _, err := cl.ProducerID(ctx); err != nil {
		v.log.Error("init producer id before restore", "err", err)
	}
	start := time.Now()
	r, err := restoreCards(ctx, v.base, v.cfg.Topics, parts)
	if err != nil {
		// Without its state a partition must not be judged: leave the
		// group's session to fail and retry on the next assignment.
		err = fmt.Errorf("restore card state of partitions %v: %w", parts, err)
		if errors.Is(err, errRecordsDeleted) {
			err = fmt.Errorf("%w: %w", errFatal, err) // no retry brings them back
		}
		v.fatal.CompareAndSwap(nil, &err)
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	replayed := 0
	for _, p := range parts {
		v.owned[p] = &partCkpt{changed: r.changed[p], since: r.since[p], last: time.Now(), next: r.next[p]}
		replayed += r.since[p]
	}
	for id, p := range v.cardPart {
		if containsPart(parts, p) {
			v.ledger.Forget(id)
			delete(v.cardPart, id)
		}
	}
	for id, s := range r.states {
		v.ledger.Restore(id, *s)
		v.cardPart[id] = r.part[id]
	}
	v.log.Info("partitions assigned", "partitions", parts, "cards_restored", len(r.states), "results_replayed", replayed, "took", time.Since(start).Round(time.Millisecond))
}

func containsPart(ps []int32, p int32) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// revoked drops the state of partitions that left this process.
func (v *Validator) revoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	parts := revoked[v.cfg.Topics.Input]
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, p := range parts {
		delete(v.owned, p)
	}
	for id, p := range v.cardPart {
		if containsPart(parts, p) {
			v.ledger.Forget(id)
			delete(v.cardPart, id)
		}
	}
	if len(parts) > 0 {
		v.log.Info("partitions revoked", "partitions", parts)
	}
}

// Stats returns the validator's counters.
func (v *Validator) Stats() Stats {
	return Stats{Processed: v.processed.Load(), Rejected: v.rejected.Load(), LastRecord: time.Unix(0, v.lastRecord.Load())}
}

// Run judges records until ctx ends, then finishes the transaction in
// flight and returns. A returned error is fatal for this process; its
// uncommitted work is aborted and redone by whoever takes its partitions.
func (v *Validator) Run(ctx context.Context) error {
	undo := map[int64]txpipe.Snapshot{}
	var workers []*batchWorker // reused from batch to batch
	for {
		// A poll waits at most a checkpoint interval: a quiet partition
		// still gets its checkpoint in time.
		pctx, cancelPoll := context.WithTimeout(ctx, v.cfg.CheckpointInterval)
		fs := v.sess.PollRecords(pctx, v.cfg.MaxBatch)
		cancelPoll()
		if err := v.fatal.Load(); err != nil {
			return *err
		}
		if fs.IsClientClosed() || (ctx.Err() != nil && fs.Empty()) {
			return nil
		}
		if fs.Empty() && pctx.Err() != nil {
			if err := v.idleCheckpoint(); err != nil {
				return err
			}
			continue
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				ferr = fmt.Errorf("fetch %s/%d: %w", t, p, err)
			}
		})
		if ferr != nil {
			v.log.Warn("fetch error", "err", ferr)
		}
		if fs.Empty() {
			continue
		}
		if err := v.sess.Begin(); err != nil {
			return fmt.Errorf("begin transaction: %w", err)
		}
		var produceErr atomic.Pointer[error]
		var nextMu sync.Mutex
		validatedNext := map[int32]int64{} // after this batch's results, per partition
		promise := func(r *kgo.Record, err error) {
			if err != nil {
				produceErr.CompareAndSwap(nil, &err)
				return
			}
			if r.Topic == v.cfg.Topics.Validated {
				nextMu.Lock()
				validatedNext[r.Partition] = max(validatedNext[r.Partition], r.Offset+1)
				nextMu.Unlock()
			}
		}
		clear(undo)
		// Partitions hold disjoint cards: judge them in parallel, each
		// partition in order by one worker. A poll may hold several
		// chunks of one partition: they stay together, in order.
		var parts [][]*kgo.Record
		index := map[int32]int{}
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			if i, ok := index[p.Partition]; ok {
				parts[i] = append(slices.Clip(parts[i]), p.Records...)
				return
			}
			index[p.Partition] = len(parts)
			parts = append(parts, p.Records)
		})
		nw := min(v.workers, len(parts))
		for len(workers) < nw {
			workers = append(workers, newBatchWorker())
		}
		var wg sync.WaitGroup
		v.mu.Lock()
		for i := 0; i < nw; i++ {
			w := workers[i]
			w.reset()
			for j := i; j < len(parts); j += nw {
				w.parts = append(w.parts, parts[j])
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Records are produced whatever happens to ctx: a
				// shutdown finishes the batch in flight.
				v.runWorker(context.WithoutCancel(ctx), w, promise)
			}()
		}
		wg.Wait()
		var nProcessed, nRejected, nRecords int64
		for _, w := range workers[:nw] {
			nProcessed += w.processed
			nRejected += w.rejected
			for id, p := range w.cardPart {
				v.cardPart[id] = p
				if c := v.owned[p]; c != nil {
					c.changed[id] = struct{}{}
				}
			}
			for p, n := range w.results {
				if c := v.owned[p]; c != nil {
					c.since += n
				}
			}
			for id, u := range w.undo {
				undo[id] = u
			}
		}
		nRecords = nProcessed + nRejected
		v.mu.Unlock()

		// End with a context of its own: a shutdown must still finish the
		// transaction in flight. Every record must be acknowledged before
		// the decision to commit: a transaction that lost one of its
		// records would commit the offsets without the result.
		endCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		commit := kgo.TryCommit
		if err := v.sess.Client().Flush(endCtx); err != nil {
			err = fmt.Errorf("flush transaction: %w", err)
			produceErr.CompareAndSwap(nil, &err)
		}
		var checkpointed []int32
		if produceErr.Load() == nil {
			checkpointed = v.checkpoint(endCtx, validatedNext, promise)
		}
		if perr := produceErr.Load(); perr != nil {
			v.log.Warn("produce failed, aborting the batch", "err", *perr)
			commit = kgo.TryAbort
		}
		committed, err := v.sess.End(endCtx, commit)
		cancel()
		if perr := produceErr.Load(); committed && perr != nil {
			return fmt.Errorf("%w: transaction committed despite a produce error: %w", errFatal, *perr)
		}
		if !committed {
			v.mu.Lock()
			for id, u := range undo {
				if p, ok := v.cardPart[id]; !ok || v.owned[p] == nil {
					v.ledger.Forget(id)
					delete(v.cardPart, id)
				} else {
					v.ledger.Rollback(id, u)
					if !u.HasState() {
						delete(v.cardPart, id)
					}
				}
			}
			v.mu.Unlock()
		}
		if err != nil {
			return fmt.Errorf("end transaction: %w", err)
		}
		if committed {
			v.committed(checkpointed, validatedNext)
			v.processed.Add(nProcessed)
			v.rejected.Add(nRejected)
			v.lastRecord.Store(time.Now().UnixNano())
		} else {
			v.log.Info("transaction aborted; the batch will be processed again", "records", nRecords)
		}
	}
}

// errFatal marks errors after which no validator may go on.
var errFatal = errors.New("fatal")

// batchWorker judges some partitions of a polled batch.
type batchWorker struct {
	parts               [][]*kgo.Record
	undo                map[int64]txpipe.Snapshot // the cards judged, as they were before the batch
	cardPart            map[int64]int32           // cards judged, and their partition
	results             map[int32]int             // results per partition
	slab                []byte
	processed, rejected int64
}

func newBatchWorker() *batchWorker {
	return &batchWorker{undo: map[int64]txpipe.Snapshot{}, cardPart: map[int64]int32{}, results: map[int32]int{}}
}

func (w *batchWorker) reset() {
	w.parts = w.parts[:0]
	clear(w.undo)
	clear(w.cardPart)
	clear(w.results)
	w.processed, w.rejected = 0, 0
}

// runWorker judges a worker's partitions and produces the results, then
// the touched cards' states. Record values are cut from one slab per
// batch: the records own their bytes until the transaction ends, and the
// next batch takes a new slab.
func (v *Validator) runWorker(ctx context.Context, w *batchWorker, promise func(*kgo.Record, error)) {
	n := 0
	for _, p := range w.parts {
		n += len(p)
	}
	slab := make([]byte, 0, 400*n+1024)
	out := make([]kgo.Record, n) // one allocation for the batch's records
	for _, part := range w.parts {
		for _, r := range part {
			res, rej := v.judge(r, w)
			rec := &out[0]
			out = out[1:]
			*rec = kgo.Record{Key: r.Key, Partition: r.Partition, Headers: paymentHeaders}
			start := len(slab)
			if rej != nil {
				w.rejected++
				rec.Headers = append(originHeaders(r), paymentHeaders...)
				slab = EncodeRejected(slab, *rej)
				rec.Topic = v.cfg.Topics.DLQ
			} else {
				w.processed++
				w.results[r.Partition]++
				slab = EncodeResult(slab, res)
				rec.Topic = v.cfg.Topics.Validated
			}
			rec.Value = slab[start:len(slab):len(slab)]
			v.sess.Produce(ctx, rec, promise)
		}
	}
}

// idleCheckpoint checkpoints, in a transaction of their own, the partitions
// due for one while no record comes.
func (v *Validator) idleCheckpoint() error {
	next := map[int32]int64{}
	v.mu.Lock()
	for p, c := range v.owned {
		if v.due(c) {
			next[p] = c.next
		}
	}
	v.mu.Unlock()
	if len(next) == 0 {
		return nil
	}
	if err := v.sess.Begin(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	var produceErr atomic.Pointer[error]
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			produceErr.CompareAndSwap(nil, &err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := v.checkpoint(ctx, next, promise)
	commit := kgo.TryCommit
	if produceErr.Load() != nil {
		commit = kgo.TryAbort
	}
	committed, err := v.sess.End(ctx, commit)
	if err != nil {
		return fmt.Errorf("end checkpoint transaction: %w", err)
	}
	if committed {
		v.committed(done, nil)
		v.log.Debug("checkpointed quiet partitions", "partitions", done)
	}
	return nil
}

// committed records a committed transaction: the validated offset after
// its results, per partition, and the partitions it checkpointed, whose
// counts start afresh.
func (v *Validator) committed(checkpointed []int32, validatedNext map[int32]int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for p, next := range validatedNext {
		if c := v.owned[p]; c != nil {
			c.next = next
		}
	}
	for _, p := range checkpointed {
		if c := v.owned[p]; c != nil {
			clear(c.changed)
			c.since, c.last = 0, time.Now()
		}
	}
}

// due reports whether an owned partition needs a checkpoint: it has
// changed cards and enough results, or the interval has passed.
func (v *Validator) due(c *partCkpt) bool {
	return c != nil && len(c.changed) > 0 && (c.since >= v.cfg.CheckpointEvery || time.Since(c.last) >= v.cfg.CheckpointInterval)
}

// checkpoint writes, for each partition of this batch that is due, the
// state of every card changed since its last checkpoint and then the
// marker, in the batch's transaction, and waits for them. It returns the
// partitions checkpointed; they count as such once the transaction
// commits.
func (v *Validator) checkpoint(ctx context.Context, validatedNext map[int32]int64, promise func(*kgo.Record, error)) []int32 {
	v.mu.Lock()
	var due []int32
	var slab []byte
	var recs []*kgo.Record
	var s txpipe.CardState
	for p, next := range validatedNext {
		c := v.owned[p]
		if !v.due(c) {
			continue
		}
		due = append(due, p)
		for id := range c.changed {
			v.ledger.StateInto(id, &s)
			start := len(slab)
			slab = strconv.AppendInt(slab, id, 10)
			mid := len(slab)
			slab = EncodeState(slab, s)
			recs = append(recs, &kgo.Record{Topic: v.cfg.Topics.State, Partition: p, Key: slab[start:mid:mid], Value: slab[mid:len(slab):len(slab)]})
		}
		start := len(slab)
		slab = encodeCheckpoint(slab, next)
		recs = append(recs, &kgo.Record{Topic: v.cfg.Topics.State, Partition: p, Key: []byte(checkpointKey), Value: slab[start:len(slab):len(slab)]})
	}
	v.mu.Unlock()
	if len(recs) == 0 {
		return nil
	}
	for _, r := range recs {
		v.sess.Produce(ctx, r, promise)
	}
	if err := v.sess.Client().Flush(ctx); err != nil {
		err = fmt.Errorf("flush checkpoint: %w", err)
		promise(nil, err)
	}
	return due
}

// judge decides one input record, remembering the card's state before the
// batch touched it so an abort can roll it back.
func (v *Validator) judge(r *kgo.Record, w *batchWorker) (txpipe.Result, *txpipe.Rejected) {
	raw, err := decodeTransaction(r.Value, true)
	if err != nil {
		return txpipe.Result{}, &txpipe.Rejected{Raw: txpipe.RawTransaction{Merchant: truncate(string(r.Value), 200)}, Reason: txpipe.RejectBadJSON, Detail: err.Error(), Source: sourceOf(r), Seq: seqOf(r)}
	}
	tx, reason, detail := txpipe.ParseTransaction(raw)
	if reason == "" {
		tx.Seq = seqOf(r)
		if _, seen := w.undo[tx.CardID]; !seen {
			if s, ok := v.ledger.Snapshot(tx.CardID); ok {
				w.undo[tx.CardID] = s
			}
		}
		var res txpipe.Result
		res, reason, detail = v.ledger.JudgeParsed(tx)
		if reason == "" {
			w.cardPart[tx.CardID] = r.Partition
			return res, nil
		}
	}
	return txpipe.Result{}, &txpipe.Rejected{Raw: raw, Reason: reason, Detail: detail, Source: sourceOf(r), Seq: seqOf(r)}
}

// sourceOf names where a record's row came from: the producer's source
// (file:line, as a load of the file names it), else the record's
// topic/partition/offset.
func sourceOf(r *kgo.Record) string {
	if s := header(r, HeaderSource); s != "" {
		return s
	}
	return fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// seqOf is the record's input order: the producer's seq header, else its
// offset.
func seqOf(r *kgo.Record) int64 {
	for _, h := range r.Headers {
		if h.Key == HeaderSeq {
			if n, ok := parseSeq(h.Value); ok {
				return n
			}
			break
		}
	}
	return r.Offset
}

// parseSeq reads a non-negative decimal without allocating.
func parseSeq(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// paymentHeaders are the headers of every output record; shared, never
// modified.
var paymentHeaders = []kgo.RecordHeader{{Key: HeaderEventType, Value: []byte(EventPayment)}}

// originHeaders say where a dead letter came from.
func originHeaders(r *kgo.Record) []kgo.RecordHeader {
	return []kgo.RecordHeader{
		{Key: "origin_topic", Value: []byte(r.Topic)},
		{Key: "origin_partition", Value: strconv.AppendInt(nil, int64(r.Partition), 10)},
		{Key: "origin_offset", Value: strconv.AppendInt(nil, r.Offset, 10)},
	}
}

// Close leaves the group and closes the clients. Call it after Run returns.
func (v *Validator) Close() {
	v.closeOnce.Do(func() {
		v.sess.Close()
		v.master.close()
	})
}

// Admin returns an admin client on the validator's session (for tests).
func (v *Validator) Admin() *kadm.Client { return kadm.NewClient(v.sess.Client()) }
