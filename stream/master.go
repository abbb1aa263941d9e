package stream

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe"
)

// masterView is the master data every task judges against: an immutable
// index, replaced as a whole when the master-data topics change, so tasks
// read it without locks.
type masterView struct {
	cur atomic.Pointer[txpipe.MasterIndex]
}

func (m *masterView) get() *txpipe.MasterIndex { return m.cur.Load() }

// testHookMasterRead, for tests, runs between reading the master data to
// its end and following it.
var testHookMasterRead func()

// masterFollower keeps a masterView up to date from the cards and
// customers topics, for as long as the engine runs.
type masterFollower struct {
	view    *masterView
	applied atomic.Int64 // Σ over the master topics' partitions of the offset after the last record applied
	cl      *kgo.Client
	topics  Topics
	log     *slog.Logger
	cancel  context.CancelFunc
	done    chan struct{}
}

// followMaster reads the master-data topics to their end (so no decision
// is taken on stale limits) and then follows them in the background, from
// exactly the offsets it read up to, until close.
func followMaster(ctx context.Context, base []kgo.Opt, t Topics, log *slog.Logger) (*masterFollower, error) {
	idx := txpipe.NewMasterIndex(nil)
	f := &masterFollower{view: &masterView{}, topics: t, log: log, done: make(chan struct{})}
	next := map[string]map[int32]kgo.Offset{}
	for _, topic := range []string{t.Cards, t.Customers, t.Stolen} {
		ends, err := readRange(ctx, base, topic, nil, false, func(r *kgo.Record) { f.apply(idx, r) })
		if err != nil {
			return nil, fmt.Errorf("read master data %s: %w", topic, err)
		}
		next[topic] = map[int32]kgo.Offset{}
		for p, end := range ends {
			next[topic][p] = kgo.NewOffset().At(end)
			f.applied.Add(end)
		}
	}
	f.view.cur.Store(idx)
	if testHookMasterRead != nil {
		testHookMasterRead()
	}
	opts := append(append([]kgo.Opt{}, base...),
		kgo.ConsumePartitions(next),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	f.cl = cl
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	f.cancel = cancel
	go f.run(fctx)
	return f, nil
}

func (f *masterFollower) run(ctx context.Context) {
	defer close(f.done)
	for {
		fs := f.cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		fs.EachError(func(t string, p int32, err error) {
			f.log.Warn("master data fetch", "topic", t, "partition", p, "err", err)
		})
		if fs.NumRecords() == 0 {
			continue
		}
		// A new index per poll: the tasks keep the one they started
		// their transaction with.
		idx := f.view.get().Clone()
		var n int64
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			for _, r := range p.Records {
				f.apply(idx, r)
			}
			if len(p.Records) > 0 {
				n += p.Records[len(p.Records)-1].Offset + 1 - p.Records[0].Offset
			}
		})
		f.view.cur.Store(idx)
		f.applied.Add(n)
	}
}

// apply applies a master-data record to idx; a bad one is logged and
// skipped (the card or customer keeps its previous data).
func (f *masterFollower) apply(idx *txpipe.MasterIndex, r *kgo.Record) {
	if r.Topic == f.topics.Stolen {
		card, ok := txpipe.ParseID(string(r.Key))
		if !ok {
			f.log.Warn("skip stolen-card record: its key is not a card id", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "key", string(r.Key))
			return
		}
		if r.Value == nil { // a tombstone: the report is cleared
			idx.SetStolen(txpipe.StolenCard{CardID: card, Cleared: true})
			return
		}
		s, err := DecodeStolen(r.Value)
		if err != nil || s.CardID != card {
			f.log.Warn("skip bad stolen-card record", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
			return
		}
		idx.SetStolen(s)
		return
	}
	if r.Value == nil {
		return
	}
	switch r.Topic {
	case f.topics.Cards:
		c, err := DecodeCard(r.Value)
		if err != nil {
			f.log.Warn("skip bad card record", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
			return
		}
		idx.SetCard(c)
	case f.topics.Customers:
		c, err := DecodeCustomer(r.Value)
		if err != nil {
			f.log.Warn("skip bad customer record", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
			return
		}
		idx.SetCustomer(c)
	}
}

func (f *masterFollower) close() {
	f.cancel()
	f.cl.Close()
	<-f.done
}
