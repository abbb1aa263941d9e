package stream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ResetTopics are the topics a reset of an input topic's stream deletes:
// the input and everything derived from it, the master data, and the
// producer's positions.
func ResetTopics(t Topics) []string {
	out := []string{t.Input, t.Validated, t.DLQ, t.Repartition, t.Alerts, t.State, t.Cards, t.Customers, t.Stolen}
	return slices.DeleteFunc(out, func(s string) bool { return s == "" })
}

// Reset deletes the topics of ResetTopics and the consumer groups, and
// forgets how far each source was published to t.Input (the positions
// topic is shared by every input of the cluster: only this input's
// records are deleted, by tombstones), so the stream starts over. Topics
// or groups that do not exist are skipped; it returns what it deleted.
func Reset(ctx context.Context, brokers []string, t Topics, groups []string, opts ...kgo.Opt) (topics, deletedGroups []string, err error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	resp, err := adm.DeleteGroups(ctx, groups...)
	if err != nil {
		return nil, nil, fmt.Errorf("delete consumer groups %v: %w", groups, err)
	}
	for _, r := range resp.Sorted() {
		switch {
		case r.Err == nil:
			deletedGroups = append(deletedGroups, r.Group)
		case errors.Is(r.Err, kerr.GroupIDNotFound):
		case errors.Is(r.Err, kerr.NonEmptyGroup):
			return nil, deletedGroups, fmt.Errorf("consumer group %s still has members: stop every txpipe consume first", r.Group)
		default:
			return nil, deletedGroups, fmt.Errorf("delete consumer group %s: %w", r.Group, r.Err)
		}
	}
	if err := clearPositions(ctx, cl, append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...), t); err != nil {
		return nil, deletedGroups, err
	}
	dr, err := adm.DeleteTopics(ctx, ResetTopics(t)...)
	if err != nil {
		return nil, deletedGroups, fmt.Errorf("delete topics: %w", err)
	}
	for _, r := range dr.Sorted() {
		switch {
		case r.Err == nil:
			topics = append(topics, r.Topic)
		case errors.Is(r.Err, kerr.UnknownTopicOrPartition):
		default:
			return topics, deletedGroups, fmt.Errorf("delete topic %s: %w", r.Topic, r.Err)
		}
	}
	return topics, deletedGroups, nil
}

// clearPositions writes a tombstone for every source position recorded
// for t.Input: the next produce of those sources starts from their start.
func clearPositions(ctx context.Context, cl *kgo.Client, base []kgo.Opt, t Topics) error {
	td, err := kadm.NewClient(cl).ListTopics(ctx, PositionsTopic)
	if err != nil {
		return fmt.Errorf("look for %s: %w", PositionsTopic, err)
	}
	if !td.Has(PositionsTopic) {
		return nil
	}
	prefix := t.Input + "|"
	live := map[string]bool{}
	if _, err := readRange(ctx, base, PositionsTopic, nil, false, func(r *kgo.Record) {
		if strings.HasPrefix(string(r.Key), prefix) {
			live[string(r.Key)] = r.Value != nil
		}
	}); err != nil {
		return fmt.Errorf("read %s: %w", PositionsTopic, err)
	}
	var tombs []*kgo.Record
	for key, ok := range live {
		if ok {
			tombs = append(tombs, &kgo.Record{Topic: PositionsTopic, Key: []byte(key)})
		}
	}
	if err := cl.ProduceSync(ctx, tombs...).FirstErr(); err != nil {
		return fmt.Errorf("forget the positions of %s in %s: %w", t.Input, PositionsTopic, err)
	}
	return nil
}
