// Package bench measures txpipe against the raw limit of the machine it
// runs on: each stage of the pipeline and a bare client doing the same I/O
// on the same data, measured back to back in one run.
//
// The stages, each a pair (raw first, then txpipe):
//
//   - produce: franz-go producing the pre-encoded records (encoded before
//     the clock starts, async Produce + Flush, keyed by card) into a fresh
//     topic, vs stream.Produce of the transactions file (CSVRows) into
//     another fresh topic.
//   - validate: a bare exactly-once copy (kgo.GroupTransactSession reading
//     the input and producing every record unchanged, one transaction per
//     polled batch of 2000) vs the validator (stream.NewValidator + Run) on
//     another copy of the input, after the master data is published.
//   - validate+alerts: the validator without and with the stolen-card
//     alerts operator (alternated, the fastest of two runs each) on the
//     same input with 10 % of the cards reported stolen and event times
//     5,000 a second apart, as the simulator sends them.
//   - sink: one LOAD DATA LOCAL INFILE of the validated rows (decoded and
//     formatted before the clock starts) into an empty stream_transactions
//     table vs the stream sink (CSV + MySQL through mysqlstore) reading the
//     validated topic, each into a database of its own.
//   - batch: a streaming SELECT of stream_transactions (every column,
//     rows.Next + Scan) vs batch.Run in MySQL mode on the same database,
//     without and with the analytics views (the fastest of two runs each,
//     alternated); and the same batch run against a second baseline: the
//     SELECT plus one LOAD DATA LOCAL INFILE of each view's rows (as the
//     batch wrote them) into an empty copy of its table.
//   - batch-csv: the batch in CSV mode (no database) over the validated
//     results written as stream_transactions.csv, vs a raw read of that
//     file (encoding/csv, every record split into fields) plus a raw
//     write of the same output bytes (the three view files, each synced
//     and renamed into place); without and with the analytics views,
//     the fastest of three rounds of each, alternated.
//
// Peak memory is measured on the real binary: `txpipe consume --until-idle
// 3s` on a fresh copy of the input and `txpipe batch --no-publish` (with
// --analytics=false, then true; in MySQL mode and in CSV mode) run as
// child processes, and their peak RSS is read from the kernel.
//
// Without a database (Options.MySQL nil) the sink and (MySQL) batch
// stages are skipped: the table says "skipped (no database)", their ratios and rates
// are 0 in the last line, and the consume child runs on Kafka and CSV only.
//
// The run creates topics named bench-<id>-* and databases named
// txpipe_bench_<id>, and removes them when it ends. It publishes the
// generated master data to the master-data topics (txpipe.cards and
// txpipe.customers), which the validators read: do not point it at a
// cluster whose master data matters.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/config"
	"github.com/txpipe/txpipe/dataset"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/serving/mysqlstore"
	"github.com/txpipe/txpipe/stream/embedded"
)

// Options configure a benchmark run.
type Options struct {
	Transactions int // transactions to generate (the rows of every stage)
	Cards        int // cards they are spread over; customers ≈ cards / 1.6
	// Brokers is the Kafka cluster; nil starts an embedded broker on a
	// free loopback port for the run: a `txpipe dev` child process when
	// Binary is set (the stages then share no heap with the broker), else
	// in this process.
	Brokers []string
	// Compression is the producers' codec, a KAFKA_COMPRESSION value
	// (empty: config.DefaultCompression).
	Compression string
	// MySQL is the server (DBName is ignored: the run creates and drops
	// databases of its own); nil skips the sink and batch stages.
	MySQL *mysql.Config
	// Binary is the txpipe executable run as a child process to measure
	// peak RSS; empty skips the RSS measurements (reported as 0).
	Binary string
	// Profile, when set, is a directory where CPU profiles of the
	// in-process txpipe side of each stage are written (produce.pprof,
	// validate.pprof, validate-alerts.pprof, sink.pprof, batch.pprof, and batch-csv.pprof and
	// batch-csv-analytics.pprof of one more CSV batch run each). They
	// cover the whole process: with an in-process embedded broker, the
	// broker too.
	Profile string
	Out     io.Writer    // the table and the summary line (nil: discarded)
	Log     *slog.Logger // progress and the pipeline's own logs (nil: discarded)
}

// Stage is the measurement of one stage.
type Stage struct {
	Name string
	// Skipped says why the stage did not run ("no database"); empty when
	// it ran.
	Skipped string
	// RawRows and Rows are the rows the raw side and txpipe handled; Raw
	// and Txpipe the time they took.
	RawRows, Rows int64
	Raw, Txpipe   time.Duration
	// RawRate and Rate are rows per second; Ratio is Rate / RawRate.
	RawRate, Rate, Ratio float64
	// RSSMiB is the peak RSS of the txpipe child process that ran this
	// stage (consume for validate and sink, batch for batch); 0 when not
	// measured.
	RSSMiB float64
	// RawCPU and CPU are the CPU seconds the process used during the raw
	// and the txpipe run measured (the CSV batch stages only; on a shared
	// machine they vary less than the wall-clock times).
	RawCPU, CPU float64
}

// Report is the outcome of a run.
type Report struct {
	Transactions, Cards, Customers int
	Produce, Validate, Sink, Batch Stage
	// ConsumeRSSMiB and BatchRSSMiB are the peak RSS of `txpipe consume`
	// and `txpipe batch` run as child processes (0: not measured).
	ConsumeRSSMiB, BatchRSSMiB float64
	// Analytics is the batch stage again with the analytics views on
	// (batch.Options.Analytics), against the same raw SELECT. The batch
	// runs three more times after its first, with, without and with
	// analytics: Batch and Analytics are the fastest run of each.
	// AnalyticsRSSMiB is the peak RSS of `txpipe batch` with analytics
	// (BatchRSSMiB is without).
	Analytics       Stage
	AnalyticsRSSMiB float64
	// BatchLoad is the MySQL batch (Batch's run) against the second
	// baseline: the raw SELECT plus a raw LOAD DATA of the views' rows.
	BatchLoad Stage
	// BatchCSV and BatchCSVAnalytics are the batch in CSV mode without
	// and with the analytics views, against a raw read of the same
	// stream_transactions.csv plus a raw write of the same view files;
	// their RSSMiB is the peak RSS of `txpipe batch` in CSV mode.
	BatchCSV, BatchCSVAnalytics Stage
	// Alerts is the validator with the stolen-card alerts operator against
	// the validator without it (its raw side), on the same input with
	// StolenShare % of the cards reported stolen: the fastest of
	// alertRounds alternated runs each. AlertRecords is what the alerts
	// topic held after a run with alerts (records and transaction
	// markers), StolenCards how many cards were reported.
	Alerts       Stage
	AlertRecords int64
	StolenCards  int
	// ConsumeChild is how long the consume child ran, including its 3 s
	// of idleness at the end.
	ConsumeChild time.Duration
	// Profiles are the CPU profile files written.
	Profiles []string
	// Databases are the databases the run created (and dropped).
	Databases []string
}

// Stages returns the four stages in order.
func (r Report) Stages() []Stage { return []Stage{r.Produce, r.Validate, r.Sink, r.Batch} }

// Line is the one-line summary the run prints last: ratios with two
// decimals, txpipe's rates in rows per second and the children's peak RSS
// in MiB, as integers. A skipped stage has ratio and rate 0. The CSV
// batch's figures come last: its ratio and rate without and with the
// analytics views and its peak RSS with them.
func (r Report) Line() string {
	return fmt.Sprintf("bench: produce_ratio=%.2f validate_ratio=%.2f sink_ratio=%.2f batch_ratio=%.2f "+
		"produce_rows_s=%d validate_rows_s=%d sink_rows_s=%d batch_rows_s=%d consume_rss_mib=%d batch_rss_mib=%d "+
		"batch_load_ratio=%.2f batch_csv_ratio=%.2f batch_csv_rows_s=%d batch_csv_analytics_ratio=%.2f batch_csv_analytics_rows_s=%d batch_csv_rss_mib=%d "+
		"alerts_ratio=%.2f alerts_rows_s=%d",
		r.Produce.Ratio, r.Validate.Ratio, r.Sink.Ratio, r.Batch.Ratio,
		round(r.Produce.Rate), round(r.Validate.Rate), round(r.Sink.Rate), round(r.Batch.Rate),
		round(r.ConsumeRSSMiB), round(r.BatchRSSMiB),
		r.BatchLoad.Ratio, r.BatchCSV.Ratio, round(r.BatchCSV.Rate), r.BatchCSVAnalytics.Ratio, round(r.BatchCSVAnalytics.Rate),
		round(r.BatchCSVAnalytics.RSSMiB), r.Alerts.Ratio, round(r.Alerts.Rate))
}

func round(f float64) int64 { return int64(math.Round(f)) }

func mib(v float64) string {
	if v <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", v)
}

// WriteTable writes the table of the stages and the summary line.
func (r Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "txpipe bench: %d transactions, %d cards, %d customers\n", r.Transactions, r.Cards, r.Customers)
	fmt.Fprintf(&b, "%-20s %14s %14s %7s %15s\n", "stage", "raw rows/s", "txpipe rows/s", "ratio", "txpipe RSS MiB")
	row := func(name string, s Stage) {
		fmt.Fprintf(&b, "%-20s %14.0f %14.0f %7.2f %15s\n", name, s.RawRate, s.Rate, s.Ratio, mib(s.RSSMiB))
	}
	for _, s := range r.Stages() {
		if s.Skipped != "" {
			fmt.Fprintf(&b, "%-20s skipped (%s)\n", s.Name, s.Skipped)
			continue
		}
		row(s.Name, s)
	}
	if s := r.Alerts; s.Rate > 0 {
		row("validate+alerts", s)
	}
	if s := r.BatchLoad; s.Rate > 0 {
		row("batch vs +LOAD DATA", s)
	}
	if a := r.Analytics; a.Skipped == "" && a.Rate > 0 {
		row("batch+analytics", a)
	}
	if s := r.BatchCSV; s.Rate > 0 {
		row("batch-csv", s)
		row("batch-csv+analytics", r.BatchCSVAnalytics)
	}
	if a := r.Analytics; a.Skipped == "" && a.Rate > 0 {
		fmt.Fprintf(&b, "(batch+analytics: the MySQL batch with the analytics views, %.0f %% slower than without; peak RSS %s MiB with, %s MiB without)\n",
			100*(r.Batch.Rate/a.Rate-1), mib(r.AnalyticsRSSMiB), mib(r.BatchRSSMiB))
	}
	if s := r.Alerts; s.Rate > 0 {
		fmt.Fprintf(&b, "(validate+alerts: the validator with the stolen-card alerts operator against itself without it, %d %% of the %d cards stolen (%d), fastest of %d alternated runs each: %.2f s without, %.2f s with, %.0f %% lower throughput; %d records on the alerts topic)\n",
			StolenShare, r.Cards, r.StolenCards, alertRounds, s.Raw.Seconds(), s.Txpipe.Seconds(), 100*(1-s.Ratio), r.AlertRecords)
	}
	if s := r.BatchLoad; s.Rate > 0 {
		fmt.Fprintf(&b, "(batch vs +LOAD DATA: the MySQL batch against the raw SELECT plus a raw LOAD DATA of the same view rows)\n")
	}
	if s, a := r.BatchCSV, r.BatchCSVAnalytics; s.Rate > 0 && a.Rate > 0 {
		fmt.Fprintf(&b, "(batch-csv: the batch in CSV mode against a raw CSV read plus a raw write of the same view files: %.3f s raw, %.3f s without analytics, %.3f s with them (%.0f %% slower); CPU %.2f s, %.2f s and %.2f s; peak RSS %s MiB without, %s MiB with)\n",
			s.Raw.Seconds(), s.Txpipe.Seconds(), a.Txpipe.Seconds(), 100*(s.Rate/a.Rate-1), s.RawCPU, s.CPU, a.CPU, mib(s.RSSMiB), mib(a.RSSMiB))
	}
	if r.ConsumeRSSMiB > 0 {
		fmt.Fprintf(&b, "(txpipe RSS: peak of a `txpipe consume` child, validator and sink in one process, %.1f s including 3 s idle; of `txpipe batch --no-publish`)\n", r.ConsumeChild.Seconds())
	}
	for _, p := range r.Profiles {
		fmt.Fprintf(&b, "CPU profile: %s\n", p)
	}
	b.WriteString(r.Line())
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

// bencher is the state of one run.
type bencher struct {
	o       Options
	log     *slog.Logger
	id      string // random, names the run's topics, groups and databases
	tmp     string
	data    string // the generated dataset
	brokers []string
	opts    []kgo.Opt // added to every Kafka client: the codec
	master  *txpipe.Master
	rows    int64 // transactions in the file (the N of every stage)
	enc     encoded
	val     validated // what the validate stage left for the sink stage
	sinkDB  *database // the sink stage's database, read by the batch stage
	childDB *database // the consume child's database, read by the batch child

	topics    []string // created, deleted at the end
	databases []string // created, dropped at the end
	open      []*mysqlstore.DB
}

// Run generates the data, measures every stage and prints the table and
// the summary line to o.Out.
func Run(ctx context.Context, o Options) (rep Report, err error) {
	if o.Transactions <= 0 || o.Cards <= 0 {
		return rep, fmt.Errorf("bench: transactions and cards must be positive, got %d and %d", o.Transactions, o.Cards)
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	b := &bencher{o: o, log: o.Log, id: randomID()}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	customers := max(1, int(math.Round(float64(o.Cards)/1.6)))
	rep = Report{Transactions: o.Transactions, Cards: o.Cards, Customers: customers}
	rep.Produce.Name, rep.Validate.Name, rep.Sink.Name, rep.Batch.Name = "produce", "validate", "sink", "batch"
	rep.Analytics.Name, rep.BatchLoad.Name = "batch+analytics", "batch-load"
	rep.BatchCSV.Name, rep.BatchCSVAnalytics.Name = "batch-csv", "batch-csv+analytics"
	rep.Alerts.Name = "validate+alerts"

	if b.tmp, err = os.MkdirTemp("", "txpipe-bench-"); err != nil {
		return rep, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(b.tmp)

	b.brokers = o.Brokers
	if b.o.Compression == "" {
		b.o.Compression = config.DefaultCompression
	}
	compression, err := config.ProducerCompression(b.o.Compression)
	if err != nil {
		return Report{}, err
	}
	b.opts = []kgo.Opt{compression}
	if len(b.brokers) == 0 && o.Binary != "" {
		addr, stop, err := b.startBrokerChild(ctx)
		if err != nil {
			return rep, fmt.Errorf("bench: embedded broker: %w", err)
		}
		defer stop()
		b.brokers = []string{addr}
		b.log.Info("bench: embedded broker started in a child process", "addr", addr)
	} else if len(b.brokers) == 0 {
		br, err := embedded.Start(0, "", embedded.WithRetention(embedded.Retention{})) // the bench reads back all it writes
		if err != nil {
			return rep, fmt.Errorf("bench: %w", err)
		}
		defer br.Close()
		b.brokers = br.Addrs()
		b.log.Info("bench: embedded broker started", "addrs", b.brokers)
	} else {
		defer b.deleteTopics(context.WithoutCancel(ctx))
	}
	if o.MySQL != nil {
		defer func() {
			b.dropDatabases(context.WithoutCancel(ctx))
			rep.Databases = b.databases
		}()
	}

	b.data = filepath.Join(b.tmp, "data")
	b.log.Info("bench: generating the dataset", "transactions", o.Transactions, "cards", o.Cards, "customers", customers)
	if _, err := dataset.Generate(ctx, b.data, dataset.Options{Customers: customers, Cards: o.Cards, Transactions: o.Transactions, Seed: 2026}); err != nil {
		return rep, fmt.Errorf("bench: %w", err)
	}
	if b.master, err = csvfile.ReadMaster(b.data); err != nil {
		return rep, fmt.Errorf("bench: %w", err)
	}
	if err := b.encode(); err != nil {
		return rep, fmt.Errorf("bench: %w", err)
	}

	steps := []struct {
		name string
		fn   func(context.Context, *Report) error
	}{
		{"produce", b.produceStage},
		{"validate", b.validateStage},
		{"alerts", b.alertsStage},
		{"sink", b.sinkStage},
		{"consume child", b.consumeChild},
		{"batch", b.batchStage},
		{"batch csv", b.batchCSVStage},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if err := s.fn(ctx, &rep); err != nil {
			return rep, fmt.Errorf("bench: %s: %w", s.name, err)
		}
	}
	if err := rep.WriteTable(o.Out); err != nil {
		return rep, fmt.Errorf("bench: %w", err)
	}
	return rep, nil
}

// finish fills a stage's rates.
func (s *Stage) finish(rawRows int64, raw time.Duration, rows int64, took time.Duration) {
	s.RawRows, s.Raw, s.Rows, s.Txpipe = rawRows, raw, rows, took
	s.RawRate = float64(rawRows) / max(raw.Seconds(), 1e-9)
	s.Rate = float64(rows) / max(took.Seconds(), 1e-9)
	s.Ratio = s.Rate / s.RawRate
}

func (b *bencher) logStage(s Stage) {
	b.log.Info("bench: stage measured", "stage", s.Name,
		"raw_rows", s.RawRows, "raw_s", s.Raw.Seconds(), "raw_rows_s", round(s.RawRate),
		"txpipe_rows", s.Rows, "txpipe_s", s.Txpipe.Seconds(), "txpipe_rows_s", round(s.Rate), "ratio", fmt.Sprintf("%.2f", s.Ratio))
}

func randomID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// task is a function running in its own goroutine.
type task struct {
	done chan struct{}
	err  error
}

func start(fn func() error) *task {
	t := &task{done: make(chan struct{})}
	go func() {
		defer close(t.done)
		t.err = fn()
	}()
	return t
}

// wait returns the task's error once it returned.
func (t *task) wait() error {
	<-t.done
	return t.err
}

// waitFor polls cond every 2 ms until it reports true; it fails when ctx
// ends or the task returns first.
func waitFor(ctx context.Context, t *task, cond func() bool) error {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.done:
			if cond() {
				return nil
			}
			if t.err != nil {
				return t.err
			}
			return errors.New("stopped before processing every record")
		case <-tick.C:
		}
	}
	return nil
}
