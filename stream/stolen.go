package stream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe"
)

// Stolen cards are master data: the stolen-cards topic (Topics.Stolen,
// compacted, keyed by card id) holds each reported card with the time it
// was reported; a tombstone clears a card. `txpipe load initial` publishes
// a dataset's stolen_cards.csv there and `txpipe report-stolen` changes it
// at runtime; every validator follows it like the cards and customers.

// StolenRecord is the record of a stolen-card report (or, for a cleared
// card, its tombstone) on the stolen-cards topic.
func StolenRecord(t Topics, s txpipe.StolenCard) *kgo.Record {
	r := &kgo.Record{Topic: t.Stolen, Key: strconv.AppendInt(nil, s.CardID, 10)}
	if !s.Cleared {
		r.Value = EncodeStolen(nil, s)
	}
	return r
}

// PublishStolen publishes stolen-card reports and clearings, in order, to
// the stolen-cards topic (created with the other master-data topics when
// missing) and returns once the broker has acknowledged every one.
func PublishStolen(ctx context.Context, brokers []string, t Topics, cards []txpipe.StolenCard, extra ...kgo.Opt) error {
	recs := make([]*kgo.Record, 0, len(cards))
	for i, s := range cards {
		if s.CardID <= 0 {
			return fmt.Errorf("stolen card %d of %d: card id %d is not positive", i+1, len(cards), s.CardID)
		}
		if !s.Cleared && s.ReportedAt.IsZero() {
			return fmt.Errorf("stolen card %d: no time it was reported", s.CardID)
		}
		recs = append(recs, StolenRecord(t, s))
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ProducerLinger(5 * time.Millisecond)}, extra...)...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	if err := EnsureMasterTopics(ctx, cl, t); err != nil {
		return err
	}
	if len(recs) == 0 {
		return nil
	}
	var errs []error
	for _, res := range cl.ProduceSync(ctx, recs...) {
		if res.Err != nil {
			errs = append(errs, fmt.Errorf("publish stolen card %s to %s/%d: %w", res.Record.Key, res.Record.Topic, res.Record.Partition, res.Err))
			if len(errs) == 3 {
				break
			}
		}
	}
	return errors.Join(errs...)
}

// ReadStolen reads the stolen-cards topic to its end: the cards reported
// stolen now, by id. A record that is not a stolen-card record is an
// error naming its topic, partition and offset.
func ReadStolen(ctx context.Context, brokers []string, t Topics, extra ...kgo.Opt) (map[int64]txpipe.StolenCard, error) {
	out := map[int64]txpipe.StolenCard{}
	var bad error
	base := append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, extra...)
	_, err := readRange(ctx, base, t.Stolen, nil, false, func(r *kgo.Record) {
		s, err := DecodeStolenRecord(r.Key, r.Value)
		switch {
		case err != nil:
			if bad == nil {
				bad = fmt.Errorf("%s/%d/%d: %w", r.Topic, r.Partition, r.Offset, err)
			}
		case s.Cleared:
			delete(out, s.CardID)
		default:
			out[s.CardID] = s
		}
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", t.Stolen, err)
	}
	return out, nil
}

// KnownCards reports which of ids the cards topic holds (reading it to
// its end, keys only).
func KnownCards(ctx context.Context, brokers []string, t Topics, ids []int64, extra ...kgo.Opt) (map[int64]bool, error) {
	want := make(map[int64]bool, len(ids))
	for _, id := range ids {
		want[id] = false
	}
	base := append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, extra...)
	_, err := readRange(ctx, base, t.Cards, nil, false, func(r *kgo.Record) {
		if id, ok := txpipe.ParseID(string(r.Key)); ok {
			if _, asked := want[id]; asked {
				want[id] = r.Value != nil
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", t.Cards, err)
	}
	return want, nil
}
