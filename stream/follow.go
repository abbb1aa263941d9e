package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// readToEnd reads the given partitions of topic (nil: all) from their start
// to the end offsets they have now, read_committed, calling fn for each
// data record in order per partition.
func readToEnd(ctx context.Context, base []kgo.Opt, topic string, partitions []int32, fn func(*kgo.Record)) error {
	var from map[int32]int64
	if partitions != nil {
		from = make(map[int32]int64, len(partitions))
		for _, p := range partitions {
			from[p] = 0
		}
	}
	return readRange(ctx, base, topic, from, false, fn)
}

// errRecordsDeleted means records a reader needs are gone (retention).
var errRecordsDeleted = errors.New("records deleted")

// readRange reads partitions of topic (nil: all, from their start) from the
// given offsets to the end offsets they have now, read_committed, calling
// fn for each data record in order per partition. A transaction still open
// at the end is waited for. With strict, a partition whose records from
// the given offset on were deleted (retention) is an error.
func readRange(ctx context.Context, base []kgo.Opt, topic string, from map[int32]int64, strict bool, fn func(*kgo.Record)) error {
	admCl, err := kgo.NewClient(base...)
	if err != nil {
		return err
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	consume := map[int32]kgo.Offset{}
	remaining := map[int32]int64{}
	var ferr error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			ferr = fmt.Errorf("end offset of %s/%d: %w", topic, o.Partition, o.Err)
			return
		}
		at, want := from[o.Partition]
		if from != nil && !want {
			return
		}
		start := int64(0)
		if s, ok := starts.Lookup(topic, o.Partition); ok {
			if s.Err != nil {
				ferr = fmt.Errorf("start offset of %s/%d: %w", topic, o.Partition, s.Err)
				return
			}
			start = s.Offset
		}
		if strict && start > at && at < o.Offset {
			ferr = fmt.Errorf("%w: %s/%d: the records from offset %d on are needed but the partition now starts at %d (raise the topic's retention)", errRecordsDeleted, topic, o.Partition, at, start)
			return
		}
		at = max(at, start)
		if at < o.Offset {
			consume[o.Partition] = kgo.NewOffset().At(at)
			remaining[o.Partition] = o.Offset
		}
	})
	if ferr != nil || len(consume) == 0 {
		return ferr
	}
	opts := append(append([]kgo.Opt{}, base...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: consume}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	for len(remaining) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		fs.EachError(func(t string, p int32, err error) {
			ferr = fmt.Errorf("read %s/%d: %w", t, p, err)
		})
		if ferr != nil {
			return ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := remaining[r.Partition]
			if !ok || r.Offset >= end {
				return // beyond the end taken at the start
			}
			if !r.Attrs.IsControl() { // markers end transactions; they still count as read
				fn(r)
			}
			if r.Offset >= end-1 {
				delete(remaining, r.Partition)
			}
		})
	}
	return nil
}

// masterFollower keeps the ledger's master data up to date from the cards
// and customers topics, for as long as the validator runs.
type masterFollower struct {
	cl     *kgo.Client
	topics Topics
	apply  func(r *kgo.Record)
	log    *slog.Logger
	done   chan struct{}
}

// followMaster reads the master-data topics to their end (so no decision
// is taken on stale limits) and then keeps following them in the
// background until ctx ends.
func followMaster(ctx context.Context, base []kgo.Opt, t Topics, apply func(*kgo.Record), log *slog.Logger) (*masterFollower, error) {
	var mu sync.Mutex
	locked := func(r *kgo.Record) { mu.Lock(); apply(r); mu.Unlock() }
	for _, topic := range []string{t.Cards, t.Customers} {
		if err := readToEnd(ctx, base, topic, nil, locked); err != nil {
			return nil, fmt.Errorf("read master data %s: %w", topic, err)
		}
	}
	// Continue from the end: everything before is applied.
	opts := append(append([]kgo.Opt{}, base...),
		kgo.ConsumeTopics(t.Cards, t.Customers),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	f := &masterFollower{cl: cl, topics: t, apply: apply, log: log, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil || fs.IsClientClosed() {
				return
			}
			fs.EachError(func(t string, p int32, err error) {
				log.Warn("master data fetch", "topic", t, "partition", p, "err", err)
			})
			fs.EachRecord(apply)
		}
	}()
	return f, nil
}

func (f *masterFollower) close() {
	f.cl.Close()
	<-f.done
}
