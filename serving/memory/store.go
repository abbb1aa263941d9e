// Package memory answers the query side without a database: the batch
// views come from the results folder (a set of files taken only when it
// matches the batch's manifest), the stream's results after their
// cut-off and the dead letters from the broker's validated and
// dead-letter topics, read read_committed and followed as they grow. It
// holds in memory the master data, the batch view's transactions, the
// stream's transactions after the cut-off and every rejected row.
package memory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/batch"
	"github.com/txpipe/txpipe/internal/metrics"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/stream"
)

// Config configures a Store.
type Config struct {
	ResultsDir string // the batch's files and runs record
	DataDir    string // the master data (customers, cards)
	Brokers    []string
	Topics     stream.Topics
	ClientOpts []kgo.Opt
	// Reload is how often the manifest is checked for a new batch (2 s
	// when zero).
	Reload time.Duration
	Log    *slog.Logger
}

// Store is the query side in memory. Its goroutines (the topic follower
// and the manifest watcher) run from Open to Close.
type Store struct {
	cfg Config
	log *slog.Logger

	// The master data, read once.
	cards     map[int64]txpipe.Card
	byNumber  map[string]int64
	customers map[int64]txpipe.Customer
	custCards map[int64][]int64

	mu       sync.RWMutex
	set      *batchSet         // the batch views in use; nil before the first batch
	stream   *view             // the stream rows after set's cut-off
	rejected []txpipe.Rejected // sorted by position
	next     map[txpipe.Offset]int64
	targets  map[txpipe.Offset]int64 // end offsets at Open: ready once read to them

	cl     *kgo.Client
	cancel context.CancelFunc
	wg     sync.WaitGroup
	failed setFailure // the last manifest that did not match its files
}

var _ txpipe.QueryStore = (*Store)(nil)

// Open reads the master data and the batch set in place (when the files
// match the manifest), then follows the topics in the background.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Reload <= 0 {
		cfg.Reload = 2 * time.Second
	}
	s := &Store{cfg: cfg, log: cfg.Log.With("component", "serve"), stream: newView(), next: map[txpipe.Offset]int64{}}
	m, err := csvfile.ReadMaster(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("serve: master data: %w", err)
	}
	s.cards, s.byNumber = map[int64]txpipe.Card{}, map[string]int64{}
	s.customers, s.custCards = map[int64]txpipe.Customer{}, map[int64][]int64{}
	for _, c := range m.Cards {
		s.cards[c.ID] = c
		if _, dup := s.byNumber[c.Number]; !dup {
			s.byNumber[c.Number] = c.ID
		}
		s.custCards[c.CustomerID] = append(s.custCards[c.CustomerID], c.ID)
	}
	for _, c := range m.Customers {
		s.customers[c.ID] = c
	}
	s.reload(ctx)

	opts := append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOpts...)
	opts = append(opts,
		kgo.ConsumeTopics(cfg.Topics.Validated, cfg.Topics.DLQ),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(), // how far a partition was read, past its markers
		kgo.FetchMaxBytes(8<<20),
	)
	if s.cl, err = kgo.NewClient(opts...); err != nil {
		return nil, fmt.Errorf("serve: kafka client: %w", err)
	}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	s.targets, err = endOffsets(tctx, s.cl, cfg.Topics.Validated, cfg.Topics.DLQ)
	cancel()
	if err != nil {
		s.cl.Close()
		return nil, fmt.Errorf("serve: the end of %s and %s on %v: %w", cfg.Topics.Validated, cfg.Topics.DLQ, cfg.Brokers, err)
	}
	fctx, stop := context.WithCancel(context.Background())
	s.cancel = stop
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.follow(fctx) }()
	go func() { defer s.wg.Done(); s.watch(fctx) }()
	return s, nil
}

// endOffsets lists the end offsets of the topics' partitions; a topic
// that does not exist yet has none.
func endOffsets(ctx context.Context, cl *kgo.Client, topics ...string) (map[txpipe.Offset]int64, error) {
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, err
	}
	out := map[txpipe.Offset]int64{}
	var ferr error
	ends.Each(func(o kadm.ListedOffset) {
		switch {
		case o.Err == nil:
			out[txpipe.Offset{Topic: o.Topic, Partition: o.Partition}] = o.Offset
		case ferr == nil:
			ferr = fmt.Errorf("%s/%d: %w", o.Topic, o.Partition, o.Err)
		}
	})
	if ferr != nil && len(out) == 0 {
		// Unknown topics: nothing to wait for.
		return out, nil
	}
	return out, ferr
}

// Close stops following the topics and waits for the goroutines.
func (s *Store) Close() {
	if s.cancel != nil {
		s.cancel()
	}
	if s.cl != nil {
		s.cl.Close()
	}
	s.wg.Wait()
}

// Ping checks that a broker answers.
func (s *Store) Ping(ctx context.Context) error { return s.cl.Ping(ctx) }

// CaughtUp returns nil once the topics were read to where they ended at
// Open, else how far it is.
func (s *Store) CaughtUp(context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	behind := int64(0)
	for tp, end := range s.targets {
		if n := s.next[tp]; n < end {
			behind += end - n
		}
	}
	if behind > 0 {
		return fmt.Errorf("reading the topics: %d records to go", behind)
	}
	return nil
}

// follow reads the topics until ctx ends or the client closes.
func (s *Store) follow(ctx context.Context) {
	for {
		fs := s.cl.PollRecords(ctx, 10000)
		if fs.IsClientClosed() || ctx.Err() != nil {
			return
		}
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				s.log.Warn("serve: fetch", "topic", t, "partition", p, "err", err)
			}
		})
		s.apply(fs)
	}
}

// decoded is a polled record, decoded outside the lock.
type decoded struct {
	res   *txpipe.Result
	rej   *txpipe.Rejected
	tp    txpipe.Offset
	next  int64
	isCtl bool
}

// decode decodes a record; a result the batch view holds already (below
// cut) is not decoded at all.
func (s *Store) decode(r *kgo.Record, cut txpipe.Cutoffs) decoded {
	d := decoded{tp: txpipe.Offset{Topic: r.Topic, Partition: r.Partition}, next: r.Offset + 1}
	if r.Attrs.IsControl() {
		d.isCtl = true
		return d
	}
	pos := txpipe.Position{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
	source := func() string { return fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset) }
	if r.Topic == s.cfg.Topics.Validated {
		if cut.Settled(pos) {
			return d
		}
		res, err := stream.DecodeResult(r.Value)
		if err == nil {
			res.Pos = pos
			d.res = &res
			return d
		}
		d.rej = &txpipe.Rejected{Raw: txpipe.RawTransaction{Merchant: truncate(string(r.Value), 200)}, Reason: txpipe.RejectBadJSON,
			Detail: "validated record: " + err.Error(), Source: source(), Seq: r.Offset, Pos: pos}
		return d
	}
	rej, err := stream.DecodeRejected(r.Value)
	if err != nil {
		rej = txpipe.Rejected{Raw: txpipe.RawTransaction{Merchant: truncate(string(r.Value), 200)}, Reason: txpipe.RejectBadJSON,
			Detail: "dead-letter record: " + err.Error(), Source: source(), Seq: r.Offset}
	}
	if rej.Source == "" {
		rej.Source = source()
	}
	rej.Pos = pos
	d.rej = &rej
	return d
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// apply adds what was polled: stream rows past the cut-off (those before
// it are in the batch view already), every rejected row.
func (s *Store) apply(fs kgo.Fetches) {
	s.mu.RLock()
	cut := s.cutoffs()
	s.mu.RUnlock()
	var ds []decoded
	fs.EachRecord(func(r *kgo.Record) { ds = append(ds, s.decode(r, cut)) })
	if len(ds) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cut = s.cutoffs() // a new batch set may have come meanwhile: its cut-off is higher
	for _, d := range ds {
		s.next[d.tp] = max(s.next[d.tp], d.next)
		switch {
		case d.res != nil:
			if !cut.Settled(d.res.Pos) {
				s.stream.add(d.res)
			}
		case d.rej != nil:
			s.addRejected(*d.rej)
		}
	}
	metrics.ServeRows.WithLabelValues("stream").Set(float64(len(s.stream.rows)))
	metrics.ServeRows.WithLabelValues("rejected").Set(float64(len(s.rejected)))
}

// cutoffs is the cut-off in use (mu held).
func (s *Store) cutoffs() txpipe.Cutoffs {
	if s.set == nil {
		return txpipe.Cutoffs{}
	}
	return s.set.cut
}

func posLess(a, b txpipe.Position) bool {
	if a.Topic != b.Topic {
		return a.Topic < b.Topic
	}
	if a.Partition != b.Partition {
		return a.Partition < b.Partition
	}
	return a.Offset < b.Offset
}

// addRejected inserts r in position order (mu held); a position already
// there (a record read twice) is not added again.
func (s *Store) addRejected(r txpipe.Rejected) {
	at := len(s.rejected)
	for at > 0 && posLess(r.Pos, s.rejected[at-1].Pos) {
		at--
	}
	if at > 0 && s.rejected[at-1].Pos == r.Pos {
		return
	}
	s.rejected = append(s.rejected, txpipe.Rejected{})
	copy(s.rejected[at+1:], s.rejected[at:])
	s.rejected[at] = r
}

// watch loads the batch set whenever the manifest names a new one.
func (s *Store) watch(ctx context.Context) {
	t := time.NewTicker(s.cfg.Reload)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.reload(ctx)
		}
	}
}

// reload loads the set the manifest describes, when it is not the one in
// use and its files match it; otherwise the set in use stays. It gives up
// when ctx ends.
func (s *Store) reload(ctx context.Context) {
	m, err := batch.ReadManifest(s.cfg.ResultsDir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("serve: batch manifest", "err", err)
		}
		return
	}
	s.mu.RLock()
	cur := s.set
	s.mu.RUnlock()
	if cur != nil && cur.m.RunID == m.RunID && cur.m.CommittedAt.Equal(m.CommittedAt) {
		return
	}
	stamp := fileStamps(s.cfg.ResultsDir, m)
	if s.failed.same(m, stamp) {
		return // nothing changed since it did not match
	}
	set, err := loadSet(ctx, s.cfg.ResultsDir, m)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		s.failed = setFailure{run: m.RunID, at: m.CommittedAt, stamp: stamp}
		s.log.Warn("serve: the batch files do not match their manifest (a batch is committing, or failed halfway); keeping the views in use",
			"run", m.RunID, "err", err)
		return
	}
	set.finished = runFinished(filepath.Join(s.cfg.ResultsDir, batch.RunsFile), m)
	s.mu.Lock()
	s.set = set
	old := s.stream
	kept := old.keep(func(r *row) bool { return !set.cut.Settled(txpipe.Position{Partition: r.part, Offset: r.off}) })
	s.stream = kept
	s.mu.Unlock()
	metrics.ServeBatchRun.Set(float64(m.RunID))
	metrics.ServeRows.WithLabelValues("batch").Set(float64(len(set.txs.rows)))
	metrics.ServeRows.WithLabelValues("stream").Set(float64(len(kept.rows)))
	s.log.Info("serve: batch views loaded", "run", m.RunID, "transactions", len(set.txs.rows),
		"stream_rows_settled", len(old.rows)-len(kept.rows), "stream_rows_pending", len(kept.rows))
}

// setFailure remembers a manifest whose files did not match, and the
// files' sizes and times then: it is tried again when they change.
type setFailure struct {
	run   int64
	at    time.Time
	stamp string
}

func (f setFailure) same(m batch.Manifest, stamp string) bool {
	return f.run == m.RunID && f.at.Equal(m.CommittedAt) && f.stamp == stamp
}

func fileStamps(dir string, m batch.Manifest) string {
	var b []byte
	for _, e := range m.Files {
		fi, err := os.Stat(filepath.Join(dir, e.Name))
		if err != nil {
			b = append(b, "missing;"...)
			continue
		}
		b = fmt.Appendf(b, "%d@%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return string(b)
}

// Transactions returns a page of a card's or a merchant's transactions,
// the batch view's and the stream's after the cut-off merged by key.
func (s *Store) Transactions(_ context.Context, q txpipe.TxQuery) (txpipe.TxPage, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var lists [2][]int32
	views := [2]*view{nil, s.stream}
	if s.set != nil {
		views[0] = s.set.txs
	}
	if q.CardID != 0 {
		if _, ok := s.cards[q.CardID]; !ok {
			return txpipe.TxPage{}, fmt.Errorf("card %d: %w", q.CardID, txpipe.ErrNotFound)
		}
		for i, v := range views {
			if v != nil {
				lists[i] = v.byCard[q.CardID]
			}
		}
	} else {
		found := false
		for i, v := range views {
			if v == nil {
				continue
			}
			if id, ok := v.strs.lookup(q.Merchant); ok {
				lists[i] = v.byMerchant[id]
				found = found || len(lists[i]) > 0
			}
		}
		if !found {
			return txpipe.TxPage{}, fmt.Errorf("merchant: no transaction: %w", txpipe.ErrNotFound)
		}
	}
	var at [2]int
	for i, v := range views {
		if v != nil {
			at[i] = v.start(lists[i], q.From, q.After)
		}
	}
	var to int64
	if !q.To.IsZero() {
		to = q.To.Unix()
	}
	var page txpipe.TxPage
	for {
		// The next row of either view, by key.
		pick := -1
		for i, v := range views {
			if v == nil || at[i] >= len(lists[i]) {
				continue
			}
			if r := &v.rows[lists[i][at[i]]]; !q.To.IsZero() && r.ts > to {
				continue
			}
			if pick < 0 || v.rows[lists[i][at[i]]].less(&views[pick].rows[lists[pick][at[pick]]]) {
				pick = i
			}
		}
		if pick < 0 {
			break
		}
		if len(page.Rows) == q.Limit {
			page.More = true
			break
		}
		r := &views[pick].rows[lists[pick][at[pick]]]
		at[pick]++
		page.Rows = append(page.Rows, views[pick].result(r, pick == 0))
	}
	return page, nil
}

// CardByNumber finds a card of the master data by its number.
func (s *Store) CardByNumber(_ context.Context, number string) (int64, error) {
	if id, ok := s.byNumber[number]; ok {
		return id, nil
	}
	return 0, fmt.Errorf("card_number: no card has this number: %w", txpipe.ErrNotFound)
}

// cardView builds a card's view (mu held).
func (s *Store) cardView(c txpipe.Card) txpipe.CardView {
	v := txpipe.CardView{Card: c, CreditLimit: c.CreditLimit, Settled: c.CurrentBalance,
		SettledCounts: txpipe.StatusCounts{}, PendingCounts: txpipe.StatusCounts{}}
	if s.set != nil {
		if u, ok := s.set.cards[c.ID]; ok {
			v.CreditLimit, v.Settled = u.CreditLimit, u.CurrentBalance
		}
		for _, i := range s.set.txs.byCard[c.ID] {
			v.SettledCounts[s.set.txs.status(&s.set.txs.rows[i])]++
		}
	}
	for _, i := range s.stream.byCard[c.ID] {
		r := &s.stream.rows[i]
		st := s.stream.status(r)
		v.PendingCounts[st]++
		if st == txpipe.StatusPending {
			v.Pending += r.amount
		}
	}
	return v
}

// info is the batch an answer used (mu held).
func (s *Store) info() txpipe.BatchInfo {
	if s.set == nil {
		return txpipe.BatchInfo{}
	}
	return txpipe.BatchInfo{RunID: s.set.m.RunID, FinishedAt: s.set.finished, Cutoffs: s.set.cut}
}

// Card returns a card as of the batch set in use.
func (s *Store) Card(_ context.Context, id int64) (txpipe.CardView, txpipe.BatchInfo, error) {
	c, ok := s.cards[id]
	if !ok {
		return txpipe.CardView{}, txpipe.BatchInfo{}, fmt.Errorf("card %d: %w", id, txpipe.ErrNotFound)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cardView(c), s.info(), nil
}

// Customer returns a customer with its cards.
func (s *Store) Customer(_ context.Context, id int64) (txpipe.CustomerView, txpipe.BatchInfo, error) {
	c, ok := s.customers[id]
	if !ok {
		return txpipe.CustomerView{}, txpipe.BatchInfo{}, fmt.Errorf("customer %d: %w", id, txpipe.ErrNotFound)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	v := txpipe.CustomerView{Customer: c, ScoreAfter: c.CreditScore}
	if s.set != nil {
		if score, ok := s.set.scores[id]; ok {
			v.ScoreAfter = score
		}
	}
	for _, cid := range s.custCards[id] {
		v.Cards = append(v.Cards, s.cardView(s.cards[cid]))
	}
	return v, s.info(), nil
}

// Rejected returns a page of the rejected rows in position order.
func (s *Store) Rejected(_ context.Context, q txpipe.RejectedQuery) (txpipe.RejectedPage, error) {
	var from, to string
	if !q.From.IsZero() {
		from = q.From.UTC().Format(txpipe.TimestampLayout)
	}
	if !q.To.IsZero() {
		to = q.To.UTC().Format(txpipe.TimestampLayout)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	at := 0
	if q.After != nil {
		after := *q.After
		at = sort.Search(len(s.rejected), func(i int) bool { return posLess(after, s.rejected[i].Pos) })
	}
	var page txpipe.RejectedPage
	for ; at < len(s.rejected); at++ {
		r := &s.rejected[at]
		if (q.Reason != "" && r.Reason != q.Reason) || (from != "" && r.Raw.Timestamp < from) || (to != "" && r.Raw.Timestamp > to) {
			continue
		}
		if len(page.Rows) == q.Limit {
			page.More = true
			break
		}
		page.Rows = append(page.Rows, *r)
	}
	return page, nil
}

// BatchRuns returns a page of results/batch_runs.csv, newest first.
func (s *Store) BatchRuns(_ context.Context, q txpipe.RunQuery) (txpipe.RunPage, error) {
	runs, err := readRuns(filepath.Join(s.cfg.ResultsDir, batch.RunsFile))
	if err != nil {
		return txpipe.RunPage{}, fmt.Errorf("%w: %w", txpipe.ErrUnavailable, err)
	}
	var page txpipe.RunPage
	for _, r := range runs {
		if q.Before > 0 && r.ID >= q.Before {
			continue
		}
		if len(page.Runs) == q.Limit {
			page.More = true
			break
		}
		page.Runs = append(page.Runs, r)
	}
	return page, nil
}
