package stream

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
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
const EventPayment = txpipe.EventPayment

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
	// DedupHorizon is how long in event time a card remembers the ids it
	// judged (default txpipe.DefaultDedupHorizon).
	DedupHorizon time.Duration
	// Clock is the processing-time clock (nil: the real one).
	Clock Clock
	// Operators run after the card ledger in the same transactions; they
	// take what the ledger forwards (ForwardResults) or the source topics.
	// Their output topics (OutputTopics, when they have the method) are
	// created with the input's partitions.
	Operators []Operator
	Log       *slog.Logger
	// ClientOpts are added to every Kafka client (tests, TLS, SASL).
	ClientOpts []kgo.Opt

	afterCommit func(records int) // for tests: see EngineConfig
}

// Validator is the stream layer's engine with the card ledger: it judges
// the input topic exactly once, producing for each polled batch the
// results (each with its card's new pending balance), the dead letters,
// records moved to their card's partition, now and then a checkpoint of a
// partition's card states, and the consumed offsets in one Kafka
// transaction.
type Validator struct {
	*Engine
	ledger *ledgerOp
	master *masterFollower
}

// Stats are a validator's counters.
type Stats struct {
	Processed, Rejected int64
	LastRecord          time.Time
	Aborts              int64
	// MasterApplied is how far the master data is applied: the sum, over
	// the partitions of the master-data topics, of the offset after the
	// last record applied (compare with MasterEnd).
	MasterApplied int64
}

// NewValidator connects, creates missing topics and reads the master data
// to its end. Run starts judging.
func NewValidator(ctx context.Context, cfg ValidatorConfig) (*Validator, error) {
	if cfg.CheckpointEvery <= 0 {
		cfg.CheckpointEvery = DefaultCheckpointEvery
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	log := cfg.Log.With("component", "validator")
	base := append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOpts...)
	admin, err := kgo.NewClient(base...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	partitions, err := EnsureTopics(ctx, admin, cfg.Topics, 0)
	admin.Close()
	if err != nil {
		return nil, err
	}
	master, err := followMaster(ctx, base, cfg.Topics, log)
	if err != nil {
		return nil, err
	}
	ledger := newLedgerOp(cfg.Topics, master.view, cfg.DedupHorizon, cfg.CheckpointEvery, partitions)
	if err := ensureOutputTopics(ctx, base, cfg.Operators, partitions); err != nil {
		master.close()
		return nil, err
	}
	e, err := NewEngine(EngineConfig{
		Brokers: cfg.Brokers, Group: cfg.Group, Instance: cfg.Instance,
		Sources:    []string{cfg.Topics.Input, cfg.Topics.Repartition},
		StateTopic: cfg.Topics.State,
		Operators:  append([]Operator{ledger}, cfg.Operators...),
		MaxBatch:   cfg.MaxBatch, CheckpointInterval: cfg.CheckpointInterval,
		Clock: cfg.Clock, Log: log, ClientOpts: cfg.ClientOpts, afterCommit: cfg.afterCommit,
	})
	if err != nil {
		master.close()
		return nil, err
	}
	return &Validator{Engine: e, ledger: ledger, master: master}, nil
}

// OutputTopics is implemented by operators that produce to topics of
// their own, which are then created with the input's partitions.
type OutputTopics interface {
	OutputTopics() []string
}

func ensureOutputTopics(ctx context.Context, base []kgo.Opt, ops []Operator, partitions int32) error {
	var names []string
	for _, op := range ops {
		if o, ok := op.(OutputTopics); ok {
			names = append(names, o.OutputTopics()...)
		}
	}
	if len(names) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(base...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for _, name := range names {
		if err := createTopic(ctx, adm, name, partitions, nil); err != nil {
			return err
		}
	}
	return nil
}

// Stats returns the validator's counters.
func (v *Validator) Stats() Stats {
	return Stats{Processed: v.ledger.judged.Load(), Rejected: v.ledger.reject.Load(), LastRecord: v.LastRecord(), Aborts: v.aborts.Load(),
		MasterApplied: v.master.applied.Load()}
}

// Close leaves the group and closes the clients. Call it after Run returns.
func (v *Validator) Close() {
	v.Engine.Close()
	v.master.close()
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

// MasterEnd is the sum of the end offsets of the master-data topics' partitions:
// a validator whose MasterApplied reached it has applied all that was
// published before.
func MasterEnd(ctx context.Context, brokers []string, t Topics, opts ...kgo.Opt) (int64, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		return 0, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, t.Cards, t.Customers, t.Stolen)
	if err != nil {
		return 0, fmt.Errorf("list end offsets of the master data: %w", err)
	}
	var sum int64
	ends.Each(func(o kadm.ListedOffset) { sum += o.Offset })
	return sum, nil
}
