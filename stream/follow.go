package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe"
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

// bounds are a partition's first and next offsets.
type bounds struct{ start, end int64 }

// listBounds lists the bounds of every partition of the topics.
func listBounds(ctx context.Context, adm *kadm.Client, topics ...string) (map[txpipe.Offset]bounds, error) {
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %v: %w", topics, err)
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("list start offsets of %v: %w", topics, err)
	}
	out := map[txpipe.Offset]bounds{}
	var ferr error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			ferr = fmt.Errorf("end offset of %s/%d: %w", o.Topic, o.Partition, o.Err)
			return
		}
		b := bounds{end: o.Offset}
		if s, ok := starts.Lookup(o.Topic, o.Partition); ok {
			if s.Err != nil {
				ferr = fmt.Errorf("start offset of %s/%d: %w", o.Topic, o.Partition, s.Err)
				return
			}
			b.start = s.Offset
		}
		out[tp(o.Topic, o.Partition)] = b
	})
	return out, ferr
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
	bounds, err := listBounds(ctx, kadm.NewClient(admCl), topic)
	if err != nil {
		return err
	}
	consume := map[int32]kgo.Offset{}
	remaining := map[int32]int64{}
	for key, b := range bounds {
		at, want := from[key.Partition]
		if from != nil && !want {
			continue
		}
		if strict && b.start > at && at < b.end {
			return fmt.Errorf("%w: %s/%d: the records from offset %d on are needed but the partition now starts at %d (raise the topic's retention)", errRecordsDeleted, topic, key.Partition, at, b.start)
		}
		if at = max(at, b.start); at < b.end {
			consume[key.Partition] = kgo.NewOffset().At(at)
			remaining[key.Partition] = b.end
		}
	}
	if len(consume) == 0 {
		return nil
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
		var ferr error
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
