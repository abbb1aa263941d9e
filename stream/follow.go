package stream

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// endOffsets lists, for each given partition of topic, the offset a reader
// must reach (exclusive) to have read everything written so far; partitions
// with nothing to read are left out.
func endOffsets(ctx context.Context, adm *kadm.Client, topic string, partitions []int32) (map[int32]int64, error) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	want := map[int32]bool{}
	for _, p := range partitions {
		want[p] = true
	}
	out := map[int32]int64{}
	var ferr error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			ferr = fmt.Errorf("end offset of %s/%d: %w", topic, o.Partition, o.Err)
			return
		}
		if partitions != nil && !want[o.Partition] {
			return
		}
		if s, ok := starts.Lookup(topic, o.Partition); ok && s.Offset >= o.Offset {
			return
		}
		if o.Offset > 0 {
			out[o.Partition] = o.Offset
		}
	})
	return out, ferr
}

// readToEnd reads the given partitions of topic (nil: all) from their start
// to the end offsets they have now, read_committed, calling fn for each
// data record in order per partition.
func readToEnd(ctx context.Context, base []kgo.Opt, topic string, partitions []int32, fn func(*kgo.Record)) error {
	admCl, err := kgo.NewClient(base...)
	if err != nil {
		return err
	}
	defer admCl.Close()
	ends, err := endOffsets(ctx, kadm.NewClient(admCl), topic, partitions)
	if err != nil || len(ends) == 0 {
		return err
	}
	consume := map[int32]kgo.Offset{}
	for p := range ends {
		consume[p] = kgo.NewOffset().AtStart()
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
	for len(ends) > 0 {
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
			if r.Attrs.IsControl() {
				// markers end transactions; they still count as read
			} else {
				fn(r)
			}
			if end, ok := ends[r.Partition]; ok && r.Offset >= end-1 {
				delete(ends, r.Partition)
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
