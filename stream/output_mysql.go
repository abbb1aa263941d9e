package stream

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/internal/retry"
)

// Store is a database view of the stream: rows and the offsets they came
// from are written in one transaction, so a replay writes nothing twice.
type Store interface {
	// WriteViews writes the rows of b and the consumer's next offsets in
	// one transaction.
	WriteViews(ctx context.Context, consumer string, b *txpipe.ViewBatch) error
	// Offsets returns the next offsets the consumer stored for a topic.
	Offsets(ctx context.Context, consumer, topic string) (map[int32]txpipe.Offset, error)
	// ResetPartition drops the rows of a topic partition and the
	// consumer's offset of it, in one transaction (the topic was created
	// anew: its rows are written again). streamRows: the topic is the
	// validated one, whose results are stream rows.
	ResetPartition(ctx context.Context, consumer, topic string, partition int32, streamRows bool) error
}

// StoreOutput is the Output of a Store. Errors transient says are
// retried with backoff until they pass or the write's context ends (a
// configured database that is down is waited for and reported, never
// skipped); any other error fails at once.
func StoreOutput(store Store, consumer string, t Topics, transient func(error) bool, log *slog.Logger) Output {
	if log == nil {
		log = slog.Default()
	}
	return &storeOutput{store: store, consumer: consumer, topics: t, transient: transient, log: log.With("component", "sink", "output", "mysql")}
}

type storeOutput struct {
	store     Store
	consumer  string
	topics    Topics
	transient func(error) bool
	log       *slog.Logger
}

func (o *storeOutput) Name() string { return "mysql" }

func (o *storeOutput) policy(what string) retry.Policy {
	return retry.Policy{What: what, Transient: o.transient, Log: o.log}
}

func (o *storeOutput) Open(ctx context.Context, topic, topicID string, partitions []int32) (map[int32]int64, error) {
	var stored map[int32]txpipe.Offset
	err := retry.Do(ctx, o.policy("read the stored offsets of "+topic), func(ctx context.Context) error {
		var err error
		stored, err = o.store.Offsets(ctx, o.consumer, topic)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make(map[int32]int64, len(partitions))
	for _, p := range partitions {
		s := stored[p]
		if s.TopicID != "" && topicID != "" && s.TopicID != topicID {
			o.log.Warn("the topic was created anew since the database was written: its partition's rows are written again", "topic", topic, "partition", p)
			err := retry.Do(ctx, o.policy(fmt.Sprintf("reset %s/%d", topic, p)), func(ctx context.Context) error {
				return o.store.ResetPartition(ctx, o.consumer, topic, p, topic == o.topics.Validated)
			})
			if err != nil {
				return nil, err
			}
			s.Next = 0
		}
		out[p] = s.Next
	}
	return out, nil
}

func (o *storeOutput) Write(ctx context.Context, b *txpipe.ViewBatch) error {
	return retry.Do(ctx, o.policy("write stream rows"), func(ctx context.Context) error {
		return o.store.WriteViews(ctx, o.consumer, b)
	})
}

func (o *storeOutput) Close(string, []int32) {}
