package stream

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// SetNoAssignmentWait changes how long a sink without partitions waits
// before it counts as caught up, for a test; it returns the old value.
func SetNoAssignmentWait(d time.Duration) time.Duration {
	old := noAssignmentWait
	noAssignmentWait = d
	return old
}

// SetAfterCommit makes a Consume run call fn after each committed
// validator transaction with the number of records it consumed, so a test
// can stop it on progress rather than after a time.
func SetAfterCommit(c *ConsumeConfig, fn func(records int)) { c.afterCommit = fn }

// ReadTopic reads every committed record of a topic up to its end when
// called, however slow the broker is to answer the first fetch.
func ReadTopic(ctx context.Context, brokers []string, topic string, fn func(*kgo.Record)) error {
	_, err := readRange(ctx, []kgo.Opt{kgo.SeedBrokers(brokers...)}, topic, nil, false, fn)
	return err
}
