package stream

import (
	"context"
	"errors"
	"fmt"

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
	opts := append(append([]kgo.Opt{}, base...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: consume}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	for len(remaining) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			ferr = fmt.Errorf("read %s/%d: %w", t, p, err)
		})
		if ferr != nil {
			return nil, ferr
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
	return ends, nil
}
