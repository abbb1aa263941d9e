package stream

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/internal/metrics"
	"github.com/txpipe/txpipe/internal/retry"
	"github.com/txpipe/txpipe/serving/csvfile"
)

// The producer is idempotent across runs, as a Kafka Connect source is: it
// publishes in Kafka transactions, and each transaction also records, on
// the compacted positions topic, how far the source has been published.
// A second produce of the same source continues after that position (and
// publishes nothing if nothing is new); a stop (SIGINT, SIGTERM) commits
// what it handed to the client and counts only what committed; a producer
// killed mid-transaction leaves nothing a read_committed reader sees, and
// the next one continues from the last committed position. Two producers
// of one source fence each other (the transactional id is the source's).

// PositionsTopic records how far each source has been published.
const PositionsTopic = "txpipe.producer-positions"

// ProducerConfig configures Produce.
type ProducerConfig struct {
	Brokers []string
	Topics  Topics
	Rate    float64 // records per second; 0 is as fast as the broker takes
	// FromStart publishes the source from its start, whatever was
	// published before (the validator rejects what it already judged).
	FromStart bool
	// Progress, when set, shows a progress bar (with the total when the
	// source knows it) on this terminal.
	Progress *os.File
	// TxnRows and TxnInterval bound a producer transaction (defaults
	// 50,000 rows, 200 ms: at full speed a commit every ~0.1 s; fewer,
	// larger transactions made produce 30 % faster on Kafka, 8 % on the
	// embedded broker, than 10,000).
	TxnRows     int
	TxnInterval time.Duration
	// StopTimeout bounds how long a stop waits for the transaction in
	// flight to commit (default 10 s).
	StopTimeout time.Duration
	Log         *slog.Logger
	ClientOpts  []kgo.Opt
}

// Row is one transaction to publish: its raw fields, its input order,
// where it came from, and whether it can be judged at all (FieldsOK). A
// row that cannot goes to the dead-letter topic with Reject and Detail
// (field_count when they are empty).
type Row struct {
	Raw      txpipe.RawTransaction
	Seq      int64
	Source   string
	FieldsOK bool
	Reject   txpipe.RejectReason
	Detail   string
	// Position is how far the source is published once this row is.
	Position string
}

// Source is what Produce publishes: rows in event order, with a stable
// identity, and a way to continue after a position.
type Source struct {
	// ID identifies the source across runs ("" : no position is kept).
	ID string
	// Name names it for people.
	Name string
	// Total is the number of rows, when known (for the progress bar).
	Total int64
	// Rows calls yield for each row after position after ("": from the
	// start), in order.
	Rows func(after string, yield func(Row) error) error
}

// RowsOf is a source without identity: it is published whole each time.
func RowsOf(name string, rows func(yield func(Row) error) error) Source {
	return Source{Name: name, Total: -1, Rows: func(_ string, yield func(Row) error) error { return rows(yield) }}
}

// ProduceStats summarises a Produce run.
type ProduceStats struct {
	Records  int64 // published to the input topic (committed)
	Rejected int64 // published straight to the dead-letter topic (wrong field count, broken CSV, too large), committed
	Skipped  int64 // rows of the source published by an earlier run
	Elapsed  time.Duration
	// From is the position the run continued from ("" : the start).
	From string
}

func (s ProduceStats) String() string {
	rate := float64(s.Records+s.Rejected) / max(s.Elapsed.Seconds(), 1e-9)
	out := fmt.Sprintf("produced %d records (%d to the dead-letter topic) in %.2f s, %.0f records/s", s.Records, s.Rejected, s.Elapsed.Seconds(), rate)
	if s.From != "" {
		out += fmt.Sprintf("; continued after position %s, where an earlier run stopped", s.From)
	}
	return out
}

// CSVRows is the source of a transactions file, in event order (timestamp,
// then input order). A file already in that order is streamed; otherwise
// it is read whole and sorted. Rows with an unreadable timestamp keep
// their place after the row before them. Its identity is the file's name
// and a fingerprint of its header and first row, so the same file (also
// with rows appended) continues where it stopped; its position is the
// number of rows published in that order.
func CSVRows(path string) (Source, error) {
	sorted := true
	var last []byte
	var total int64
	err := csvfile.ScanColumn(path, "timestamp", func(ts []byte, fieldsOK bool) error {
		total++
		if _, ok := txpipe.ParseTimestamp(string(ts)); ok && fieldsOK && sorted {
			if string(ts) < string(last) {
				sorted = false
			}
			last = append(last[:0], ts...)
		}
		return nil
	})
	if err != nil {
		return Source{}, err
	}
	id, err := fileIdentity(path)
	if err != nil {
		return Source{}, err
	}
	src := Source{ID: id, Name: path, Total: total}
	skip := func(after string) (int64, error) {
		if after == "" {
			return 0, nil
		}
		n, err := strconv.ParseInt(after, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("position %q of %s is not a row count", after, path)
		}
		return n, nil
	}
	if sorted {
		src.Rows = func(after string, yield func(Row) error) error {
			n, err := skip(after)
			if err != nil {
				return err
			}
			var i int64
			return scanCSV(path, func(r Row) error {
				if i++; i <= n {
					return nil
				}
				r.Position = strconv.FormatInt(i, 10)
				return yield(r)
			})
		}
		return src, nil
	}
	src.Rows = func(after string, yield func(Row) error) error {
		n, err := skip(after)
		if err != nil {
			return err
		}
		type keyed struct {
			ts  string
			row Row
		}
		var rows []keyed
		lastTS := ""
		if err := scanCSV(path, func(r Row) error {
			if _, ok := txpipe.ParseTimestamp(r.Raw.Timestamp); ok && r.FieldsOK {
				lastTS = r.Raw.Timestamp
			}
			rows = append(rows, keyed{lastTS, r})
			return nil
		}); err != nil {
			return err
		}
		slices.SortStableFunc(rows, func(a, b keyed) int {
			switch {
			case a.ts < b.ts:
				return -1
			case a.ts > b.ts:
				return 1
			}
			return 0
		})
		for i, k := range rows {
			if int64(i) < n {
				continue
			}
			k.row.Position = strconv.Itoa(i + 1)
			if err := yield(k.row); err != nil {
				return err
			}
		}
		return nil
	}
	return src, nil
}

// fileIdentity names a transactions file across runs: its base name and a
// fingerprint of its first two lines.
func fileIdentity(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	r := bufio.NewReader(io.LimitReader(f, 1<<20))
	h := sha256.New()
	for range 2 {
		line, err := r.ReadBytes('\n')
		h.Write(line)
		if err != nil {
			break
		}
	}
	return "file:" + filepath.Base(path) + "#" + hex.EncodeToString(h.Sum(nil))[:16], nil
}

// scanCSV reads a transactions file in a goroutine of its own, in chunks,
// while fn (encoding and producing) runs on the caller's: the two overlap.
func scanCSV(path string, fn func(Row) error) error {
	r, err := csvfile.OpenTransactions(path)
	if err != nil {
		return err
	}
	defer r.Close()
	name := filepath.Base(path)
	const chunk = 512
	type rows struct {
		rows []Row
		err  error
	}
	ch := make(chan rows, 4)
	stop, done := make(chan struct{}), make(chan struct{})
	defer func() { close(stop); <-done }() // before the file is closed
	go func() {
		defer close(done)
		defer close(ch)
		for {
			c := rows{rows: make([]Row, 0, chunk)}
			for len(c.rows) < chunk {
				row, err := r.Next()
				if err != nil {
					if !errors.Is(err, io.EOF) {
						c.err = err
					}
					break
				}
				c.rows = append(c.rows, Row{Raw: row.Raw, Seq: int64(row.Line), Source: name + ":" + strconv.Itoa(row.Line),
					FieldsOK: row.Reject == "", Reject: row.Reject, Detail: row.Detail})
			}
			select {
			case ch <- c:
			case <-stop:
				return
			}
			if len(c.rows) < chunk {
				return
			}
		}
	}()
	for c := range ch {
		for _, row := range c.rows {
			if err := fn(row); err != nil {
				return err
			}
		}
		if c.err != nil {
			return c.err
		}
	}
	return nil
}

// maxRecordBytes bounds a record the producer sends: far below any
// broker's limit (Kafka's default is 1 MiB); a row larger than this
// cannot be a transaction (its text columns are narrower) and goes to the
// dead-letter topic with its fields cut short.
const maxRecordBytes = 64 << 10

// Produce publishes a source's rows to the input topic keyed by card id,
// in Kafka transactions that also record the source's position. A row
// with the wrong number of fields or broken CSV, or too large to be a
// transaction, cannot be judged: it goes straight to the dead-letter topic
// with its reason (field_count, bad_csv, bad_text).
func Produce(ctx context.Context, cfg ProducerConfig, src Source) (ProduceStats, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.TxnRows <= 0 {
		cfg.TxnRows = 50000
	}
	if cfg.TxnInterval <= 0 {
		cfg.TxnInterval = 200 * time.Millisecond
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	txnID := "txpipe-producer-" + cfg.Topics.Input
	if src.ID != "" {
		sum := sha256.Sum256([]byte(src.ID))
		txnID += "-" + hex.EncodeToString(sum[:8])
	} else {
		txnID += "-adhoc-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	base := append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOpts...)
	opts := append(append([]kgo.Opt{}, base...),
		kgo.ProducerLinger(5*time.Millisecond), kgo.ProducerBatchMaxBytes(1<<20),
		kgo.TransactionalID(txnID), kgo.TransactionTimeout(10*time.Second),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return ProduceStats{}, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	if _, err := EnsureTopics(ctx, cl, cfg.Topics, 0); err != nil {
		return ProduceStats{}, err
	}
	if err := ensurePositionsTopic(ctx, cl); err != nil {
		return ProduceStats{}, err
	}
	// Fence an earlier producer of the source (its open transaction is
	// aborted), then read the position it committed.
	err = retry.Do(ctx, retry.Policy{What: fmt.Sprintf("fence an earlier producer of %s (InitProducerID on %v)", src.Name, cfg.Brokers), Bound: time.Minute, Log: cfg.Log},
		func(ctx context.Context) error { _, _, err := cl.ProducerID(ctx); return err })
	if err != nil {
		return ProduceStats{}, err
	}
	var stats ProduceStats
	after := ""
	inputID := inputTopicID(ctx, cl, cfg.Topics.Input)
	if src.ID != "" {
		var onID string
		if after, onID, err = readPosition(ctx, base, positionKey(cfg.Topics, src)); err != nil {
			return stats, err
		}
		if after != "" && onID != "" && inputID != "" && onID != inputID {
			// The input topic was deleted and created again since: what the
			// position says was published is gone.
			cfg.Log.Info("the input topic is not the one the source was published to (it was created again): publishing from the start",
				"topic", cfg.Topics.Input, "source", src.Name, "position", after)
			after = ""
		}
		if cfg.FromStart && after != "" {
			cfg.Log.Info("publishing from the start, as asked: the validator rejects the transactions it judged before as duplicates", "source", src.Name, "position", after)
			after = ""
		}
		stats.From = after
	}
	p := &txnProducer{cl: cl, cfg: cfg, src: src, inputID: inputID}
	start := time.Now()
	var bar *progressbar.ProgressBar
	if cfg.Progress != nil {
		bar = newBar(cfg.Progress, src, after)
		defer bar.Close()
	}
	var n int64
	var slab []byte
	eventType := []byte(EventPayment)
	err = src.Rows(after, func(r Row) error {
		if err := p.failed(); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if cfg.Rate > 0 {
			due := start.Add(time.Duration(float64(n) / cfg.Rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				if d > cfg.TxnInterval { // do not hold a transaction open while waiting long
					if err := p.commitIfDue(ctx, true); err != nil {
						return err
					}
				}
				if err := retry.Sleep(ctx, d); err != nil {
					return err
				}
			}
		}
		n++
		if cap(slab)-len(slab) < 4096+len(r.Source) {
			slab = make([]byte, 0, max(1<<20, 8192+len(r.Source)))
		}
		at := len(slab)
		slab = strconv.AppendInt(slab, r.Seq, 10)
		mid := len(slab)
		slab = append(slab, r.Source...)
		hs := []kgo.RecordHeader{
			{Key: HeaderEventType, Value: eventType},
			{Key: HeaderSeq, Value: slab[at:mid:mid]},
			{Key: HeaderSource, Value: slab[mid:len(slab):len(slab)]},
		}
		rec := &kgo.Record{Key: []byte(r.Raw.CardID), Headers: hs}
		var rejectReason txpipe.RejectReason
		if r.FieldsOK {
			at = len(slab)
			slab = EncodeTransaction(slab, r.Raw)
			rec.Topic, rec.Value = cfg.Topics.Input, slab[at:len(slab):len(slab)]
			if len(rec.Value) > maxRecordBytes {
				rej := oversized(r, len(rec.Value))
				rec.Topic, rec.Value, rejectReason = cfg.Topics.DLQ, EncodeRejected(nil, rej), rej.Reason
			}
		} else {
			reason, detail := r.Reject, r.Detail
			if reason == "" {
				reason, detail = txpipe.RejectFieldCount, "the row does not have the header's number of fields"
			}
			rej := txpipe.Rejected{Raw: r.Raw, Reason: reason, Source: r.Source, Seq: r.Seq, Detail: detail}
			if size := r.Raw.Size(); size > maxRecordBytes {
				rej = oversized(r, size)
				rej.Reason, rej.Detail = reason, detail+"; the row is "+strconv.Itoa(size)+" bytes (fields cut short here)"
			}
			rec.Topic, rec.Value, rejectReason = cfg.Topics.DLQ, EncodeRejected(nil, rej), rej.Reason
		}
		if len(rec.Key) > 1024 {
			rec.Key = rec.Key[:1024]
		}
		if err := p.add(ctx, rec, r.Position, rec.Topic == cfg.Topics.Input, rejectReason); err != nil {
			return err
		}
		if bar != nil {
			bar.Add(1)
		}
		return p.commitIfDue(ctx, false)
	})
	// Commit what was handed to the client, also on a stop (bounded).
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.StopTimeout)
	cerr := p.commit(cctx)
	cancel()
	stats.Records, stats.Rejected = p.records, p.rejected
	stats.Elapsed = time.Since(start)
	if after != "" {
		stats.Skipped, _ = strconv.ParseInt(after, 10, 64)
	}
	if err == nil {
		err = cerr
	} else if cerr != nil {
		cfg.Log.Warn("the last transaction did not commit: its rows are published by the next run", "err", cerr)
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return stats, nil // a stop: what committed is reported and recorded
	}
	if err != nil {
		return stats, fmt.Errorf("produce to %s: %w", cfg.Topics.Input, err)
	}
	return stats, nil
}

// oversized is the rejected row of a row too large to be a transaction:
// its fields cut to 1 KiB each.
func oversized(r Row, size int) txpipe.Rejected {
	cut := func(s string) string { return truncate(s, 1024) }
	x := r.Raw
	raw := txpipe.RawTransaction{TransactionID: cut(x.TransactionID), CardID: cut(x.CardID), Merchant: cut(x.Merchant), Timestamp: cut(x.Timestamp),
		Amount: cut(x.Amount), Location: cut(x.Location), Type: cut(x.Type), RelatedID: cut(x.RelatedID)}
	reason, detail := txpipe.CheckSize(x, maxRecordBytes)
	if reason == "" {
		reason, detail = txpipe.RejectText, "too large"
	}
	if len(detail) > 512 {
		detail = detail[:512]
	}
	return txpipe.Rejected{Raw: raw, Reason: reason, Source: r.Source, Seq: r.Seq,
		Detail: fmt.Sprintf("the row is %d bytes, over the %d a transaction may take (fields cut short here): %s", size, maxRecordBytes, detail)}
}

// txnProducer publishes rows in transactions that end with the source's
// position.
type txnProducer struct {
	cl       *kgo.Client
	cfg      ProducerConfig
	src      Source
	inputID  string // the input topic's incarnation, recorded with the position
	open     bool
	begun    time.Time
	rows     int
	pos      string
	pending  [2]int64                    // records and rejected in the open transaction
	reasons  map[txpipe.RejectReason]int // rejected in the open transaction, by reason
	records  int64                       // committed
	rejected int64
	err      atomic.Pointer[error] // a record failed
}

func (p *txnProducer) failed() error {
	if err := p.err.Load(); err != nil {
		return *err
	}
	return nil
}

func (p *txnProducer) fail(err error) { p.err.CompareAndSwap(nil, &err) }

func (p *txnProducer) add(ctx context.Context, rec *kgo.Record, pos string, input bool, reason txpipe.RejectReason) error {
	if !p.open {
		if err := p.cl.BeginTransaction(); err != nil {
			return fmt.Errorf("begin transaction: %w", err)
		}
		p.open, p.begun, p.rows = true, time.Now(), 0
	}
	p.cl.Produce(context.WithoutCancel(ctx), rec, func(r *kgo.Record, err error) {
		if err != nil {
			p.fail(fmt.Errorf("produce to %s: %w", r.Topic, err))
		}
	})
	p.rows++
	p.pos = pos
	if input {
		p.pending[0]++
	} else {
		p.pending[1]++
		if p.reasons == nil {
			p.reasons = map[txpipe.RejectReason]int{}
		}
		p.reasons[reason]++
	}
	return nil
}

// commitIfDue commits the open transaction when it is full or old (or,
// with force, whenever one is open).
func (p *txnProducer) commitIfDue(ctx context.Context, force bool) error {
	if !p.open || (!force && p.rows < p.cfg.TxnRows && time.Since(p.begun) < p.cfg.TxnInterval) {
		return nil
	}
	return p.commit(ctx)
}

// commit ends the open transaction: its records, then the position,
// committed together; counted only once committed.
func (p *txnProducer) commit(ctx context.Context) error {
	if !p.open {
		return nil
	}
	p.open = false
	// A commit is bounded, and not cut short by a stop: a transaction
	// whose end is unknown would be counted wrong.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.StopTimeout)
	defer cancel()
	if p.src.ID != "" && p.pos != "" {
		p.cl.Produce(ctx, &kgo.Record{Topic: PositionsTopic, Key: positionKey(p.cfg.Topics, p.src), Value: encodePosition(p.pos, p.src.Name, p.inputID)}, func(r *kgo.Record, err error) {
			if err != nil {
				p.fail(fmt.Errorf("record the position of %s: %w", p.src.Name, err))
			}
		})
	}
	ferr := p.cl.Flush(ctx)
	commit := kgo.TryCommit
	if ferr != nil || p.failed() != nil {
		commit = kgo.TryAbort
	}
	if err := p.cl.EndTransaction(ctx, commit); err != nil {
		return fmt.Errorf("end transaction: %w", err)
	}
	if commit == kgo.TryAbort {
		clear(p.reasons)
		p.pending = [2]int64{}
		if ferr != nil {
			return fmt.Errorf("flush: %w", ferr)
		}
		return p.failed()
	}
	p.records += p.pending[0]
	p.rejected += p.pending[1]
	p.pending = [2]int64{}
	for r, n := range p.reasons {
		metrics.ObserveRejected(r, n)
	}
	clear(p.reasons)
	return nil
}

func encodePosition(pos, name, topicID string) []byte {
	b := append([]byte(`{"position":`), strconv.Quote(pos)...)
	b = append(b, `,"source":`...)
	b = appendString(b, name)
	if topicID != "" {
		b = append(b, `,"topic_id":`...)
		b = strconv.AppendQuote(b, topicID)
	}
	b = append(b, `,"at":"`...)
	b = time.Now().UTC().AppendFormat(b, time.RFC3339)
	return append(b, `"}`...)
}

// positionKey keys a source's position: the input topic and the source.
func positionKey(t Topics, src Source) []byte { return []byte(t.Input + "|" + src.ID) }

// inputTopicID names the incarnation of the input topic ("" when the
// broker does not say).
func inputTopicID(ctx context.Context, cl *kgo.Client, topic string) string {
	td, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil {
		return ""
	}
	if d, ok := td[topic]; ok && d.Err == nil && d.ID != (kadm.TopicID{}) {
		return d.ID.String()
	}
	return ""
}

// readPosition reads the last committed position of a source and the
// incarnation of the input topic it was published to ("" in positions
// recorded before topic ids were).
func readPosition(ctx context.Context, base []kgo.Opt, key []byte) (pos, topicID string, err error) {
	var bad error
	_, err = readRange(ctx, base, PositionsTopic, nil, false, func(r *kgo.Record) {
		if string(r.Key) != string(key) {
			return
		}
		if r.Value == nil {
			pos, topicID = "", ""
			return
		}
		topicID = ""
		err := flatObject(r.Value, func(key string, val []byte, isString, isNull bool) error {
			switch key {
			case "position":
				pos = string(val)
			case "topic_id":
				topicID = string(val)
			}
			return nil
		})
		if err != nil {
			bad = fmt.Errorf("position record %s/%d/%d: %w", r.Topic, r.Partition, r.Offset, err)
		}
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return "", "", fmt.Errorf("read %s: %w", PositionsTopic, err)
	}
	return pos, topicID, nil
}

// ensurePositionsTopic creates the positions topic: compacted on Kafka,
// kept whole on the embedded broker (which may compact past an open
// transaction).
func ensurePositionsTopic(ctx context.Context, cl *kgo.Client) error {
	adm := kadm.NewClient(cl)
	cfg := map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}
	if embedded, err := isEmbedded(ctx, adm); err != nil {
		return err
	} else if embedded {
		cfg = map[string]*string{"cleanup.policy": kadm.StringPtr("delete"), "retention.ms": kadm.StringPtr("-1")}
	}
	return createTopic(ctx, adm, PositionsTopic, 1, cfg)
}

func newBar(out *os.File, src Source, after string) *progressbar.ProgressBar {
	total := src.Total
	done, _ := strconv.ParseInt(after, 10, 64)
	if total >= 0 {
		total -= min(done, total)
	}
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(out),
		progressbar.OptionSetDescription("producing"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("records"),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetPredictTime(true),
	)
}

// IsTerminal reports whether f is a terminal (for progress bars).
func IsTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// PublishMaster publishes cards and customers to the master-data topics,
// keyed by id, so every validator applies them without a restart.
func PublishMaster(ctx context.Context, brokers []string, t Topics, cards []txpipe.Card, customers []txpipe.Customer, extra ...kgo.Opt) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ProducerLinger(5 * time.Millisecond)}, extra...)...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	if err := EnsureMasterTopics(ctx, cl, t); err != nil {
		return err
	}
	var recs []*kgo.Record
	for _, c := range customers {
		recs = append(recs, &kgo.Record{Topic: t.Customers, Key: strconv.AppendInt(nil, c.ID, 10), Value: EncodeCustomer(nil, c)})
	}
	for _, c := range cards {
		recs = append(recs, &kgo.Record{Topic: t.Cards, Key: strconv.AppendInt(nil, c.ID, 10), Value: EncodeCard(nil, c)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("publish master data: %w", err)
	}
	return nil
}
