package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/internal/retry"
)

// The simulator publishes an endless stream of payments, as a card
// network would, for load, soak and event-time tests. Each payment is a
// transaction record of the input topic exactly as the producer writes one
// (keyed by card id, headers event_type, seq and source), plus
// "event_type":"PAYMENT_EVENT" and "event_date_origin": when the payment
// happened, RFC 3339 with milliseconds, set here. Its timestamp is that
// time to the second. A share of the payments is late: they happened
// LateBy before they are sent; Jitter delays every payment by up to that
// much.
//
// Transaction ids are unique across runs, without a coordinator: an id is
//
//	milliseconds since 2025-01-01 UTC (41 bits) | run slot (10 bits) | counter (12 bits)
//
// taken when the payment is sent. Within a run the time never goes back
// (the monotonic clock) and the counter tells apart the payments of one
// millisecond, so ids strictly increase. Runs one after the other have
// different milliseconds. Runs at the same time have different slots: the
// broker numbers the runs — each registers on the topic
// txpipe.simulator-runs and its slot is its record's offset modulo 1024 —
// so up to 1024 runs started one after another while one still runs get
// distinct slots. From 2026 on the ids are above 10^17, far from any
// dataset's.

// SimulatorRunsTopic numbers the simulator's runs.
const SimulatorRunsTopic = "txpipe.simulator-runs"

// simEpoch is the origin of the time part of the simulator's ids.
var simEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// SimCard is a card the simulator pays with.
type SimCard struct {
	ID  int64
	ZIP string // the holder's ZIP: most payments are made near it
	// Limit is the card's credit limit when known (0: assume the
	// smallest of the card types, 1,000.00).
	Limit txpipe.Money
}

// SimulateConfig configures Simulate.
type SimulateConfig struct {
	Brokers []string
	Topics  Topics
	Cards   []SimCard
	Rate    float64       // payments per second (> 0)
	Count   int64         // stop after this many (0: until ctx ends)
	Late    float64       // share of late payments, 0 to 1
	LateBy  time.Duration // how late they are
	Jitter  time.Duration // each payment happened up to this long before it is sent
	Seed    int64         // 0: a new seed each run
	// StopTimeout bounds how long a stop waits for the broker to
	// acknowledge what was sent (default 10 s).
	StopTimeout time.Duration
	// Progress, when set, gets a progress line (rewritten in place) every
	// ProgressEvery (default 1 s).
	Progress      io.Writer
	ProgressEvery time.Duration
	// StatusEvery logs a status line this often (0: never).
	StatusEvery time.Duration
	Log         *slog.Logger
	ClientOpts  []kgo.Opt
}

// SimulateStats counts what a Simulate run published.
type SimulateStats struct {
	Sent    int64 // handed to the Kafka client
	Acked   int64 // acknowledged by the broker: in the topic
	Failed  int64 // not acknowledged (an error, or the stop bound ran out); the broker may or may not have kept them
	Late    int64 // acknowledged late payments
	Slot    int   // the run's slot in the ids
	FirstID int64 // the first and last transaction ids sent
	LastID  int64
	Elapsed time.Duration
}

func (s SimulateStats) String() string {
	rate := float64(s.Acked) / max(s.Elapsed.Seconds(), 1e-9)
	out := fmt.Sprintf("%d payments acknowledged by the broker (%d late) in %.1f s, %.0f/s", s.Acked, s.Late, s.Elapsed.Seconds(), rate)
	if s.Failed > 0 {
		out += fmt.Sprintf("; %d sent but not acknowledged (the broker may or may not have them)", s.Failed)
	}
	if s.Sent > 0 {
		out += fmt.Sprintf("; transaction ids %d to %d", s.FirstID, s.LastID)
	}
	return out
}

// Simulate publishes payments for randomly chosen cards at cfg.Rate per
// second until ctx ends or cfg.Count were sent, then waits (within
// StopTimeout) for the broker to acknowledge them and reports exactly
// what it acknowledged.
func Simulate(ctx context.Context, cfg SimulateConfig) (SimulateStats, error) {
	if err := cfg.check(); err != nil {
		return SimulateStats{}, err
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = time.Second
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	opts := append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOpts...)
	opts = append(opts, kgo.ProducerLinger(5*time.Millisecond), kgo.ProducerBatchMaxBytes(1<<20),
		kgo.MaxBufferedRecords(simMaxBuffered))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return SimulateStats{}, fmt.Errorf("kafka client: %w", err)
	}
	closed := false
	defer func() {
		if !closed {
			cl.Close()
		}
	}()
	if _, err := EnsureTopics(ctx, cl, cfg.Topics, 0); err != nil {
		return SimulateStats{}, err
	}
	slot, err := registerRun(ctx, cl, cfg)
	if err != nil {
		return SimulateStats{}, err
	}

	s := &simulator{cfg: cfg, rng: rand.New(rand.NewPCG(uint64(seed), uint64(seed)>>32^0x9e3779b97f4a7c15)), slot: int64(slot)}
	s.init()
	st := SimulateStats{Slot: slot}
	start := time.Now()
	s.idClock = start
	stop := make(chan struct{})
	var progressDone sync.WaitGroup
	if cfg.Progress != nil || cfg.StatusEvery > 0 {
		progressDone.Add(1)
		go func() {
			defer progressDone.Done()
			s.report(stop, start)
		}()
	}
	runErr := s.run(ctx, cl, start)

	// Wait (bounded) for the broker to acknowledge what was sent; what it
	// has not acknowledged when the bound runs out is failed by Close.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.StopTimeout)
	ferr := cl.Flush(fctx)
	cancel()
	cl.Close()
	closed = true
	// Close failed what was still buffered; its promises run on the
	// client's goroutine: wait for them, within a bound.
	for deadline := time.Now().Add(5 * time.Second); s.inflight.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	progressDone.Wait()

	st.Sent, st.Acked, st.Failed, st.Late = s.sent, s.acked.Load(), s.failed.Load(), s.late.Load()
	st.FirstID, st.LastID = s.firstID, s.lastID
	st.Elapsed = time.Since(start)
	if ferr != nil && runErr == nil && ctx.Err() == nil {
		runErr = fmt.Errorf("the broker did not acknowledge %d payments within %s: %w", st.Failed, cfg.StopTimeout, ferr)
	}
	if err := s.firstErr.Load(); err != nil && runErr == nil {
		runErr = *err
	}
	if errors.Is(runErr, context.Canceled) && ctx.Err() != nil {
		runErr = nil // a stop
	}
	if runErr != nil {
		return st, fmt.Errorf("simulate to %s: %w", cfg.Topics.Input, runErr)
	}
	return st, nil
}

func (cfg *SimulateConfig) check() error {
	switch {
	case len(cfg.Cards) == 0:
		return errors.New("simulate: no cards to pay with")
	case !(cfg.Rate > 0) || cfg.Rate > 1e6:
		return fmt.Errorf("simulate: rate %v is not between 0 and 1,000,000 payments a second", cfg.Rate)
	case cfg.Count < 0:
		return fmt.Errorf("simulate: count %d is negative", cfg.Count)
	case !(cfg.Late >= 0 && cfg.Late <= 1):
		return fmt.Errorf("simulate: late share %v is not between 0 and 1", cfg.Late)
	case cfg.LateBy < 0 || cfg.Jitter < 0:
		return errors.New("simulate: --late-by and --jitter must not be negative")
	}
	for _, c := range cfg.Cards {
		if c.ID <= 0 {
			return fmt.Errorf("simulate: card id %d is not positive", c.ID)
		}
	}
	return nil
}

// registerRun numbers this run on the runs topic: its slot is the
// offset of its record modulo 1024.
func registerRun(ctx context.Context, cl *kgo.Client, cfg SimulateConfig) (int, error) {
	if err := createTopic(ctx, kadm.NewClient(cl), SimulatorRunsTopic, 1, map[string]*string{"retention.ms": kadm.StringPtr(strconv.FormatInt((7 * 24 * time.Hour).Milliseconds(), 10))}); err != nil {
		return 0, err
	}
	v := append([]byte(`{"input":`), strconv.Quote(cfg.Topics.Input)...)
	v = append(v, `,"started":"`...)
	v = time.Now().UTC().AppendFormat(v, time.RFC3339Nano)
	v = append(v, `"}`...)
	r, err := cl.ProduceSync(ctx, &kgo.Record{Topic: SimulatorRunsTopic, Value: v}).First()
	if err != nil {
		return 0, fmt.Errorf("register the run on %s: %w", SimulatorRunsTopic, err)
	}
	return int(r.Offset % 1024), nil
}

// simulator is one run's state. Its fields are the run goroutine's, but
// the counters that promises and the progress line touch.
type simulator struct {
	cfg  SimulateConfig
	rng  *rand.Rand
	slot int64

	// per card: the pending balance this run estimates it added, and its
	// last purchases (to refund)
	est    []txpipe.Money
	recent [][4]purchase

	idClock  time.Time // the run's start: ids take milliseconds from it on the monotonic clock
	lastMs   int64
	counter  int64
	sent     int64
	firstID  int64
	lastID   int64
	slab     []byte
	acked    atomic.Int64
	failed   atomic.Int64
	late     atomic.Int64
	sentNow  atomic.Int64
	inflight atomic.Int64 // produced, promise not yet called
	firstErr atomic.Pointer[error]
}

// simMaxBuffered bounds the records the client buffers; the simulator
// waits rather than blocking in Produce, so a stop is never stuck there.
const simMaxBuffered = 20000

type purchase struct {
	id     int64
	amount txpipe.Money
}

func (s *simulator) init() {
	s.est = make([]txpipe.Money, len(s.cfg.Cards))
	s.recent = make([][4]purchase, len(s.cfg.Cards))
}

// run sends payments on schedule until ctx ends or Count were sent. It
// does not fall behind by more than a second: after a stall (a slow
// broker) it resumes at the rate instead of bursting.
func (s *simulator) run(ctx context.Context, cl *kgo.Client, start time.Time) error {
	cfg := s.cfg
	epoch := start // the schedule's origin: n payments are due by epoch + n/rate
	var due int64  // payments sent since epoch
	for cfg.Count == 0 || s.sent < cfg.Count {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.firstErr.Load(); err != nil {
			return *err
		}
		now := time.Now()
		should := int64(now.Sub(epoch).Seconds() * cfg.Rate)
		if should-due > int64(cfg.Rate)+1 { // more than a second behind: start the schedule again
			epoch, due, should = now, 0, 1
		}
		for due < should && (cfg.Count == 0 || s.sent < cfg.Count) {
			// A full buffer (a slow broker) is waited out here, where a
			// stop is seen, not inside Produce.
			for cl.BufferedProduceRecords() >= simMaxBuffered-1 {
				if err := retry.Sleep(ctx, time.Millisecond); err != nil {
					return err
				}
			}
			s.send(ctx, cl, time.Now())
			due++
		}
		next := epoch.Add(time.Duration(float64(due+1) / cfg.Rate * float64(time.Second)))
		if d := time.Until(next); d > 0 {
			t := time.NewTimer(max(d, time.Millisecond)) // at high rates, payments go out in small bursts
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
	}
	return nil
}

// nextID returns the run's next transaction id (see the package comment).
func (s *simulator) nextID(now time.Time) int64 {
	ms := s.idClock.Sub(simEpoch).Milliseconds() + now.Sub(s.idClock).Milliseconds()
	if ms <= s.lastMs {
		if s.counter++; s.counter >= 4096 { // over 4M a second: borrow the next millisecond
			s.lastMs++
			s.counter = 0
		}
	} else {
		s.lastMs, s.counter = ms, 0
	}
	return s.lastMs<<22 | s.slot<<12 | s.counter
}

// send builds and produces one payment sent at now.
func (s *simulator) send(ctx context.Context, cl *kgo.Client, now time.Time) {
	cfg := s.cfg
	r := s.rng
	ci := r.IntN(len(cfg.Cards))
	card := cfg.Cards[ci]
	id := s.nextID(now)
	if s.sent == 0 {
		s.firstID = id
	}
	s.lastID = id
	s.sent++
	n := s.sent

	at := now
	if cfg.Jitter > 0 {
		at = at.Add(-time.Duration(r.Int64N(int64(cfg.Jitter))))
	}
	late := cfg.Late > 0 && r.Float64() < cfg.Late
	if late {
		at = at.Add(-cfg.LateBy)
	}
	at = at.UTC().Truncate(time.Millisecond)

	// Amounts keep the card well inside its limit: the run's purchases
	// on it are refunded before they reach a quarter of the limit (at
	// most 300.00), so a decision is rarely over the limit.
	budget := txpipe.Money(30000)
	if card.Limit > 0 {
		budget = min(budget, card.Limit/4)
	}
	raw := txpipe.RawTransaction{TransactionID: strconv.FormatInt(id, 10), CardID: strconv.FormatInt(card.ID, 10), Merchant: simMerchants[r.IntN(len(simMerchants))]}
	rec := &s.recent[ci]
	var amount txpipe.Money
	if last := rec[0]; last.id != 0 && (s.est[ci] > budget*3/5 || r.IntN(100) < 5) {
		amount = -last.amount
		raw.Type, raw.RelatedID = "refund", strconv.FormatInt(last.id, 10)
		copy(rec[:], rec[1:])
		rec[3] = purchase{}
	} else {
		switch p := r.IntN(100); {
		case p < 70:
			raw.Type = "purchase"
		case p < 80:
			raw.Type = "bill_payment"
		case p < 88:
			raw.Type = "p2p_transfer"
		case p < 95:
			raw.Type = "wire_transfer"
		default:
			raw.Type = "atm_withdrawal"
		}
		amount = txpipe.Money(100 + r.IntN(7900)) // 1.00 to 79.99
		if raw.Type == "atm_withdrawal" {
			amount = txpipe.Money(1+r.IntN(4)) * 2000
		}
		copy(rec[1:], rec[:3])
		rec[0] = purchase{id: id, amount: amount}
	}
	s.est[ci] += amount
	raw.Amount = amount.String()
	raw.Timestamp = at.Format(txpipe.TimestampLayout)
	raw.Location = s.location(card.ZIP)

	if cap(s.slab)-len(s.slab) < 1024 {
		s.slab = make([]byte, 0, 256<<10)
	}
	b0 := len(s.slab)
	s.slab = EncodeTransaction(s.slab, raw)
	s.slab = append(s.slab[:len(s.slab)-1], `,"event_type":"`+EventPayment+`","event_date_origin":"`...)
	s.slab = at.AppendFormat(s.slab, "2006-01-02T15:04:05.000Z07:00")
	s.slab = append(s.slab, `"}`...)
	value := s.slab[b0:len(s.slab):len(s.slab)]
	b1 := len(s.slab)
	s.slab = strconv.AppendInt(s.slab, n, 10)
	seq := s.slab[b1:len(s.slab):len(s.slab)]
	b2 := len(s.slab)
	s.slab = append(append(s.slab, "simulate:"...), seq...)
	source := s.slab[b2:len(s.slab):len(s.slab)]

	record := &kgo.Record{
		Topic: cfg.Topics.Input,
		Key:   []byte(raw.CardID),
		Value: value,
		Headers: []kgo.RecordHeader{
			{Key: HeaderEventType, Value: []byte(EventPayment)},
			{Key: HeaderSeq, Value: seq},
			{Key: HeaderSource, Value: source},
		},
	}
	s.inflight.Add(1)
	s.sentNow.Store(s.sent)
	// Not cancelled by a stop: what was sent is flushed, within StopTimeout.
	cl.Produce(context.WithoutCancel(ctx), record, func(r *kgo.Record, err error) {
		defer s.inflight.Add(-1)
		if err != nil {
			s.failed.Add(1)
			if !errors.Is(err, context.Canceled) && !errors.Is(err, kgo.ErrClientClosed) {
				err = fmt.Errorf("produce to %s/%d: %w", r.Topic, r.Partition, err)
				s.firstErr.CompareAndSwap(nil, &err)
			}
			return
		}
		s.acked.Add(1)
		if late {
			s.late.Add(1)
		}
	})
}

// location is where a payment is made: in 97 % of them near home (the
// holder's ZIP, or another with its first digit), else far away.
func (s *simulator) location(zip string) string {
	r := s.rng
	street := simStreets[r.IntN(len(simStreets))]
	num := 1 + r.IntN(9999)
	first := byte('1')
	if len(zip) > 0 && zip[0] >= '0' && zip[0] <= '9' {
		first = zip[0]
	}
	switch p := r.IntN(100); {
	case p < 70 && len(zip) >= 5:
	case p < 97:
		zip = string(first) + fmt.Sprintf("%04d", r.IntN(10000))
	default:
		far := byte('0' + (int(first-'0')+1+r.IntN(9))%10)
		first, zip = far, string(far)+fmt.Sprintf("%04d", r.IntN(10000))
	}
	if len(zip) > 0 && zip[0] >= '0' && zip[0] <= '9' {
		first = zip[0]
	}
	st := simStates[first-'0']
	return fmt.Sprintf("%d %s, %s, %s %s", num, street, st.city, st.state, zip)
}

// report writes the progress line and logs the status lines until stop.
func (s *simulator) report(stop <-chan struct{}, start time.Time) {
	cfg := s.cfg
	every := cfg.ProgressEvery
	if cfg.Progress == nil {
		every = cfg.StatusEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	lastStatus, lastAcked, lastAt := start, int64(0), start
	line := func(final bool) {
		now := time.Now()
		acked := s.acked.Load()
		rate := float64(acked-lastAcked) / max(now.Sub(lastAt).Seconds(), 1e-9)
		lastAcked, lastAt = acked, now
		if cfg.Progress != nil {
			end := ""
			if final {
				end = "\n"
			}
			fmt.Fprintf(cfg.Progress, "\rsimulate: %d sent, %d acknowledged, %d late, %d failed, %.0f/s   %s", s.sentNow.Load(), acked, s.late.Load(), s.failed.Load(), rate, end)
		}
		if cfg.StatusEvery > 0 && (final || now.Sub(lastStatus) >= cfg.StatusEvery) {
			cfg.Log.Info("simulate status", "sent", s.sentNow.Load(), "acknowledged", acked, "late", s.late.Load(), "failed", s.failed.Load(), "rate_per_s", int64(rate))
			lastStatus = now
		}
	}
	for {
		select {
		case <-stop:
			line(true)
			return
		case <-t.C:
			line(false)
		}
	}
}

var simMerchants = []string{
	"Barrett LLC", "Davidson-Moreno", "Nelson, Bell and Huynh", "Pineda and Sons", "Walsh Group", "Cherry-Gaines",
	"Schwartz Inc", "Duffy Ltd", "Byrd PLC", "Russo-Dean", "Singleton LLC", "Orozco, Wade and Sparks", "Rodgers Inc",
	"Malone-Greene", "Holland Group", "Wilkerson LLC", "Gross and Sons", "Vaughn-Miranda", "Pugh Ltd", "Maldonado PLC",
	"Weber Inc", "Carson-Lamb", "Ramsey LLC", "Hogan, Rosario and Winters", "Curtis Group", "Stephenson Ltd",
	"Bird-Blanchard", "Buckley Inc", "Johnston LLC", "Esparza and Sons", "Bender PLC", "Flowers-Christensen",
	"Nixon Group", "Mack Inc", "Shields LLC", "Allison-Valenzuela",
}

var simStreets = []string{
	"John Ridge", "Reyes Landing", "Brenda Lake", "Miller Crest", "Garcia Mills", "Pine Terrace", "Kelly Meadows",
	"Hill Street", "Park Avenue", "Lake Road", "Main Street", "Oak Lane", "River Drive", "Cedar Court", "Elm Way",
}

// simStates names a state and city for a ZIP's first digit.
var simStates = [10]struct{ state, city string }{
	{"MA", "Boston"}, {"NY", "Brooklyn"}, {"VA", "Richmond"}, {"FL", "Tampa"}, {"OH", "Columbus"},
	{"MN", "Minneapolis"}, {"IL", "Chicago"}, {"TX", "Dallas"}, {"CO", "Denver"}, {"CA", "San Diego"},
}
