package stream

import (
	"context"
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

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/serving/csvfile"
)

// ProducerConfig configures Produce.
type ProducerConfig struct {
	Brokers    []string
	Topics     Topics
	Rate       float64   // records per second; 0 is as fast as the broker takes
	Progress   io.Writer // where a progress bar goes (nil: none)
	Log        *slog.Logger
	ClientOpts []kgo.Opt
}

// Row is one transaction to publish: its raw fields, its input order, where
// it came from, and whether it can be judged at all (FieldsOK). A row that
// cannot goes to the dead-letter topic with Reject and Detail (field_count
// when they are empty).
type Row struct {
	Raw      txpipe.RawTransaction
	Seq      int64
	Source   string
	FieldsOK bool
	Reject   txpipe.RejectReason
	Detail   string
}

// ProduceStats summarises a Produce run.
type ProduceStats struct {
	Records  int64 // published to the input topic
	Rejected int64 // published straight to the dead-letter topic (wrong field count, broken CSV)
	Elapsed  time.Duration
}

func (s ProduceStats) String() string {
	rate := float64(s.Records+s.Rejected) / max(s.Elapsed.Seconds(), 1e-9)
	return fmt.Sprintf("produced %d records (%d to the dead-letter topic) in %.2f s, %.0f records/s", s.Records, s.Rejected, s.Elapsed.Seconds(), rate)
}

// CSVRows reads a transactions file in event order (timestamp, then input
// order). A file already in that order is streamed; otherwise it is read
// whole and sorted. Rows with an unreadable timestamp keep their place
// after the row before them.
func CSVRows(path string) (func(yield func(Row) error) error, error) {
	sorted := true
	var last []byte
	err := csvfile.ScanColumn(path, "timestamp", func(ts []byte, fieldsOK bool) error {
		if _, ok := txpipe.ParseTimestamp(string(ts)); ok && fieldsOK {
			if string(ts) < string(last) {
				sorted = false
				return errStop
			}
			last = append(last[:0], ts...)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, err
	}
	if sorted {
		return func(yield func(Row) error) error { return scanCSV(path, yield) }, nil
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
		return nil, err
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
	return func(yield func(Row) error) error {
		for _, k := range rows {
			if err := yield(k.row); err != nil {
				return err
			}
		}
		return nil
	}, nil
}

var errStop = errors.New("stop")

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

// Produce publishes rows to the input topic keyed by card id, with an
// idempotent producer. A row with the wrong number of fields or broken CSV
// cannot be a transaction: it goes straight to the dead-letter topic with
// its reason (field_count, bad_csv).
func Produce(ctx context.Context, cfg ProducerConfig, rows func(yield func(Row) error) error) (ProduceStats, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	opts := append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOpts...)
	opts = append(opts, kgo.ProducerLinger(5*time.Millisecond), kgo.ProducerBatchMaxBytes(1<<20))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return ProduceStats{}, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	if _, err := EnsureTopics(ctx, cl, cfg.Topics, 0); err != nil {
		return ProduceStats{}, err
	}
	var stats ProduceStats
	var failed atomic.Pointer[error]
	promise := func(r *kgo.Record, err error) {
		if err != nil {
			failed.CompareAndSwap(nil, &err)
		}
	}
	start := time.Now()
	lastDraw := time.Time{}
	var n int64
	var slab []byte                // record keys, values and headers are cut from 1 MiB slabs
	var recSlab []kgo.Record       // the records from slabs of 1024
	var hdrSlab []kgo.RecordHeader // and their headers from slabs of 3 × 1024
	eventType := []byte(EventPayment)
	headers := func(r Row) []kgo.RecordHeader {
		if len(hdrSlab) < 3 {
			hdrSlab = make([]kgo.RecordHeader, 3*1024)
		}
		h := hdrSlab[:3:3]
		hdrSlab = hdrSlab[3:]
		at := len(slab)
		slab = strconv.AppendInt(slab, r.Seq, 10)
		mid := len(slab)
		slab = append(slab, r.Source...)
		h[0] = kgo.RecordHeader{Key: HeaderEventType, Value: eventType}
		h[1] = kgo.RecordHeader{Key: HeaderSeq, Value: slab[at:mid:mid]}
		h[2] = kgo.RecordHeader{Key: HeaderSource, Value: slab[mid:len(slab):len(slab)]}
		return h
	}
	err = rows(func(r Row) error {
		if err := failed.Load(); err != nil {
			return *err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if cfg.Rate > 0 {
			due := start.Add(time.Duration(float64(n) / cfg.Rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(d):
				}
			}
		}
		n++
		if len(recSlab) == 0 {
			recSlab = make([]kgo.Record, 1024)
		}
		rec := &recSlab[0]
		recSlab = recSlab[1:]
		if cap(slab)-len(slab) < 4096+len(r.Source) {
			slab = make([]byte, 0, max(1<<20, 8192+len(r.Source)))
		}
		hs := headers(r)
		at := len(slab)
		slab = append(slab, r.Raw.CardID...)
		*rec = kgo.Record{Key: slab[at:len(slab):len(slab)], Headers: hs}
		at = len(slab)
		if r.FieldsOK {
			slab = EncodeTransaction(slab, r.Raw)
			rec.Topic = cfg.Topics.Input
			stats.Records++
		} else {
			reason, detail := r.Reject, r.Detail
			if reason == "" {
				reason, detail = txpipe.RejectFieldCount, "the row does not have the header's number of fields"
			}
			slab = EncodeRejected(slab, txpipe.Rejected{Raw: r.Raw, Reason: reason, Source: r.Source, Seq: r.Seq, Detail: detail})
			rec.Topic = cfg.Topics.DLQ
			stats.Rejected++
		}
		rec.Value = slab[at:len(slab):len(slab)]
		cl.Produce(ctx, rec, promise)
		if cfg.Progress != nil && time.Since(lastDraw) > 200*time.Millisecond {
			lastDraw = time.Now()
			fmt.Fprintf(cfg.Progress, "\rproducing: %d records, %.0f/s ", n, float64(n)/time.Since(start).Seconds())
		}
		return nil
	})
	if ferr := cl.Flush(context.WithoutCancel(ctx)); err == nil {
		err = ferr
	}
	if perr := failed.Load(); err == nil && perr != nil {
		err = *perr
	}
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, "\r%*s\r", 60, "")
	}
	stats.Elapsed = time.Since(start)
	if err != nil {
		return stats, fmt.Errorf("produce to %s: %w", cfg.Topics.Input, err)
	}
	return stats, nil
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
