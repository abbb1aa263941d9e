package stream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe"
)

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

func tp(topic string, p int32) txpipe.Offset { return txpipe.Offset{Topic: topic, Partition: p} }

// errRecordsDeleted means records a reader needs are gone (retention).
var errRecordsDeleted = errors.New("records deleted")

// readRange reads partitions of topic (nil: all, from their start) from the
// given offsets to the end offsets they have now, read_committed, calling
// fn for each data record in order per partition. A transaction still open
// at the end is waited for. With strict, a partition whose records from
// the given offset on were deleted (retention) is an error. It returns
// the offsets it ended at, per partition.
func readRange(ctx context.Context, base []kgo.Opt, topic string, from map[int32]int64, strict bool, fn func(*kgo.Record)) (map[int32]int64, error) {
	admCl, err := kgo.NewClient(base...)
	if err != nil {
		return nil, err
	}
	defer admCl.Close()
	bounds, err := listBounds(ctx, kadm.NewClient(admCl), topic)
	if err != nil {
		return nil, err
	}
	consume := map[int32]kgo.Offset{}
	remaining := map[int32]int64{}
	ends := map[int32]int64{}
	for key, b := range bounds {
		at, want := from[key.Partition]
		if from != nil && !want {
			continue
		}
		ends[key.Partition] = b.end
		if strict && b.start > at && at < b.end {
			return nil, fmt.Errorf("%w: %s/%d: the records from offset %d on are needed but the partition now starts at %d (raise the topic's retention)", errRecordsDeleted, topic, key.Partition, at, b.start)
		}
		if at = max(at, b.start); at < b.end {
			consume[key.Partition] = kgo.NewOffset().At(at)
			remaining[key.Partition] = b.end
		}
	}
	if len(consume) == 0 {
		return ends, nil
	}
	// next is, per partition still to read, the offset to read next: a
	// reader that stalls starts again from there.
	next := map[int32]int64{}
	for p, o := range consume {
		next[p] = o.EpochOffset().Offset
	}
	for stalls := 0; ; stalls++ {
		stalled, err := readFrom(ctx, base, topic, next, remaining, fn)
		if err != nil || !stalled {
			return ends, err
		}
		if stalls+1 >= readStallTries {
			return nil, fmt.Errorf("read %s read_committed: no record for %s, %d times, at offsets %v of the ends %v (a transaction left open on the broker holds readers back until it times out)",
				topic, readStall, readStallTries, next, remaining)
		}
	}
}

// readStall is how long a read may see no record before it starts again
// with a new client (longer than the transaction timeout, after which the
// broker aborts a transaction its producer left open), readStallTries how
// many times.
var (
	readStall      = 15 * time.Second
	readStallTries = 4
)

// readFrom reads topic's partitions from next up to remaining (the ends),
// moving both as it goes; stalled: readStall passed without a record.
func readFrom(ctx context.Context, base []kgo.Opt, topic string, next, remaining map[int32]int64, fn func(*kgo.Record)) (stalled bool, err error) {
	consume := map[int32]kgo.Offset{}
	for p, o := range next {
		consume[p] = kgo.NewOffset().At(o)
	}
	opts := append(append([]kgo.Opt{}, base...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: consume}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return false, err
	}
	defer cl.Close()
	last := time.Now()
	for len(remaining) > 0 {
		pctx, cancel := context.WithDeadline(ctx, last.Add(readStall))
		fs := cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return false, err
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				ferr = fmt.Errorf("read %s/%d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return false, ferr
		}
		got := false
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := remaining[r.Partition]
			if !ok {
				return // done with this partition
			}
			got = true
			if r.Offset >= end {
				// Beyond the end taken at the start: everything before it
				// is behind us. (When the end fell inside a transaction
				// that was then aborted, its records never come, only the
				// abort marker after them.)
				delete(remaining, r.Partition)
				delete(next, r.Partition)
				return
			}
			if !r.Attrs.IsControl() { // markers end transactions; they still count as read
				fn(r)
			}
			next[r.Partition] = r.Offset + 1
			if r.Offset >= end-1 {
				delete(remaining, r.Partition)
				delete(next, r.Partition)
			}
		})
		if got {
			last = time.Now()
		} else if time.Since(last) >= readStall {
			return true, nil
		}
	}
	return false, nil
}
