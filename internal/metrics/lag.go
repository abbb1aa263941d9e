package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// PollLag sets ConsumerLag for group on topic every interval, from the
// group's committed offsets and the partitions' end offsets, until ctx
// ends. Each poll is bounded by the interval (at most 10 s); a failed poll
// is logged at debug level and retried at the next tick.
func PollLag(ctx context.Context, adm *kadm.Client, group, topic string, every time.Duration, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, min(every, 10*time.Second))
		err := pollLag(pctx, adm, group, topic)
		cancel()
		if err != nil && ctx.Err() == nil {
			log.Debug("consumer lag", "group", group, "topic", topic, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func pollLag(ctx context.Context, adm *kadm.Client, group, topic string) error {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		committed, err = kadm.OffsetResponses{}, nil
	}
	if err != nil {
		return fmt.Errorf("offsets of group %s: %w", group, err)
	}
	var ferr error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			ferr = fmt.Errorf("end offset of %s/%d: %w", o.Topic, o.Partition, o.Err)
			return
		}
		done := int64(0)
		if c, ok := committed.Lookup(topic, o.Partition); ok && c.At > 0 {
			done = c.At
		}
		SetLag(group, topic, o.Partition, o.Offset-done)
	})
	return ferr
}
