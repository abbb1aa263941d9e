package stream

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe"
)

// How card state survives a process: every result on the validated topic
// carries its card's pending balance after the decision, so the validated
// topic is itself the log of every card's state. Every so often (see
// ValidatorConfig.CheckpointEvery) the validator also writes, in the same
// Kafka transaction as a batch, a checkpoint of one partition to the
// compacted card-state topic: the state of every card that changed since
// the partition's previous checkpoint, then a marker naming the validated
// offset the checkpoint covers. A card not written by a checkpoint has not
// changed since an earlier one, so the topic's last value per card is the
// partition's state at its last marker. Restoring reads that, then replays
// the validated records after the marker.

// checkpointKey is the key of a checkpoint's marker on the card-state
// topic; card states are keyed by the card id in decimal.
const checkpointKey = "checkpoint"

// encodeCheckpoint is a marker's value: the validated offset from which a
// restore replays.
func encodeCheckpoint(b []byte, validatedNext int64) []byte {
	b = append(b, `{"validated_next":`...)
	b = strconv.AppendInt(b, validatedNext, 10)
	return append(b, '}')
}

func decodeCheckpoint(b []byte) (int64, error) {
	next := int64(-1)
	err := flatObject(b, func(key string, val []byte, isString, isNull bool) error {
		if key == "validated_next" {
			n, err := strconv.ParseInt(string(val), 10, 64)
			if err != nil || n < 0 {
				return fmt.Errorf("validated_next %q is not an offset", val)
			}
			next = n
		}
		return nil
	})
	if err == nil && next < 0 {
		err = errors.New("no validated_next")
	}
	return next, err
}

// restored is the state of some partitions' cards, rebuilt from their
// last checkpoint and the validated records after it.
type restored struct {
	states  map[int64]*txpipe.CardState
	part    map[int64]int32              // partition of each card
	changed map[int32]map[int64]struct{} // cards changed since the last checkpoint
	since   map[int32]int                // results since the last checkpoint
	next    map[int32]int64              // validated offset after the last result
}

// restoreCards rebuilds the card states of the given input partitions.
func restoreCards(ctx context.Context, base []kgo.Opt, t Topics, parts []int32) (*restored, error) {
	r := &restored{
		states:  map[int64]*txpipe.CardState{},
		part:    map[int64]int32{},
		changed: map[int32]map[int64]struct{}{},
		since:   map[int32]int{},
		next:    map[int32]int64{},
	}
	from := map[int32]int64{}
	for _, p := range parts {
		from[p] = 0
		r.changed[p] = map[int64]struct{}{}
	}
	var bad error
	err := readRange(ctx, base, t.State, from, false, func(rec *kgo.Record) {
		if bad != nil {
			return
		}
		if string(rec.Key) == checkpointKey {
			next, err := decodeCheckpoint(rec.Value)
			if err != nil {
				bad = fmt.Errorf("checkpoint at %s/%d/%d: %w", rec.Topic, rec.Partition, rec.Offset, err)
				return
			}
			from[rec.Partition] = next
			return
		}
		id, err := strconv.ParseInt(string(rec.Key), 10, 64)
		if err != nil {
			bad = fmt.Errorf("card state at %s/%d/%d: key %q is not a card id", rec.Topic, rec.Partition, rec.Offset, rec.Key)
			return
		}
		s, err := DecodeState(rec.Value)
		if err != nil {
			bad = fmt.Errorf("card state at %s/%d/%d: %w", rec.Topic, rec.Partition, rec.Offset, err)
			return
		}
		r.states[id] = &s
		r.part[id] = rec.Partition
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoints of %s: %w", t.State, err)
	}
	err = readRange(ctx, base, t.Validated, from, true, func(rec *kgo.Record) {
		if bad != nil {
			return
		}
		card, id, pending, err := decodeResultState(rec.Value)
		if err != nil {
			bad = fmt.Errorf("result at %s/%d/%d: %w", rec.Topic, rec.Partition, rec.Offset, err)
			return
		}
		s := r.states[card]
		if s == nil {
			s = &txpipe.CardState{}
			r.states[card] = s
		}
		s.Pending = pending
		if len(s.Recent) >= 4*txpipe.RecentIDs {
			s.Recent = append(s.Recent[:0], s.Recent[len(s.Recent)-txpipe.RecentIDs+1:]...)
		}
		s.Recent = append(s.Recent, id)
		r.part[card] = rec.Partition
		r.changed[rec.Partition][card] = struct{}{}
		r.since[rec.Partition]++
		r.next[rec.Partition] = rec.Offset + 1
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return nil, fmt.Errorf("replay %s after its checkpoints: %w", t.Validated, err)
	}
	for p, at := range from {
		r.next[p] = max(r.next[p], at)
	}
	for _, s := range r.states {
		if n := len(s.Recent); n > txpipe.RecentIDs {
			s.Recent = s.Recent[n-txpipe.RecentIDs:]
		}
	}
	return r, nil
}

// decodeResultState reads what a card's state needs from a validated
// record: the card, the transaction id and the pending balance after it.
func decodeResultState(b []byte) (card, id int64, pending txpipe.Money, err error) {
	var haveCard, haveID, havePending bool
	err = flatObject(b, func(key string, val []byte, isString, isNull bool) error {
		var ok bool
		switch key {
		case "card_id":
			card, ok = txpipe.ParseID(string(val))
			haveCard = ok
		case "transaction_id":
			id, ok = txpipe.ParseID(string(val))
			haveID = ok
		case "pending_balance":
			var err error
			pending, err = txpipe.ParseMoney(string(val))
			ok, havePending = err == nil, err == nil
		default:
			return nil
		}
		if !ok {
			return fmt.Errorf("%s %q is not valid", key, val)
		}
		return nil
	})
	if err == nil && !(haveCard && haveID && havePending) {
		err = errors.New("card_id, transaction_id or pending_balance missing")
	}
	return card, id, pending, err
}

// CardStates rebuilds every card's state from the card-state and
// validated topics, as a validator does on assignment: what the stream
// layer would judge the next transaction of each card against.
func CardStates(ctx context.Context, brokers []string, t Topics, opts ...kgo.Opt) (map[int64]txpipe.CardState, error) {
	base := append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)
	cl, err := kgo.NewClient(base...)
	if err != nil {
		return nil, err
	}
	n, err := partitionCount(ctx, kadm.NewClient(cl), t.Input)
	cl.Close()
	if err != nil {
		return nil, err
	}
	parts := make([]int32, n)
	for i := range parts {
		parts[i] = int32(i)
	}
	r, err := restoreCards(ctx, base, t, parts)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]txpipe.CardState, len(r.states))
	for id, s := range r.states {
		out[id] = *s
	}
	return out, nil
}
