// Package batch is the nightly batch layer. It recomputes the views from
// the master data and every stream result: pending transactions become
// approved, card balances are settled, customers re-scored and credit
// limits cut (the rules of package txpipe). It streams the stream results
// through Apache Arrow record batches, so its memory is bounded by the
// cards and the batch size, not by the transactions, and it replaces the
// previous views atomically: a failed run leaves them as they were.
package batch

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/serving/csvfile"
)

const defaultLoaders = 2

// DefaultMinWeeklyVolume is the default of Options.MinWeeklyVolume.
const DefaultMinWeeklyVolume = 20

// DefaultBatchRows is the default number of rows of an Arrow record batch.
const DefaultBatchRows = 64 << 10

// Options configure a run.
type Options struct {
	// DB selects MySQL mode: the master tables and stream_transactions are
	// read from it, and the views are written to its tables as well as to
	// ResultsDir. The pool must allow at least two connections.
	DB *sql.DB
	// DataDir is the dataset directory of CSV mode (customers.csv,
	// credit_card_types.csv, cards.csv).
	DataDir string
	// ResultsDir is where results/*.csv are written ("results" when empty);
	// in CSV mode stream_transactions.csv is read from it too, and the runs
	// are recorded in batch_runs.csv there.
	ResultsDir string
	// Parquet also writes results/*.parquet.
	Parquet bool
	// Alloc allocates the Arrow memory; memory.DefaultAllocator when nil.
	Alloc memory.Allocator
	// BatchRows is the size of the Arrow record batches (DefaultBatchRows
	// when zero).
	BatchRows int
	// Publish, when set, is called with the cards whose credit limit
	// changed, after the new views are in place.
	Publish func(ctx context.Context, changed []txpipe.Card) error
	// Log receives progress and warnings; slog.Default() when nil.
	Log *slog.Logger
	// Now is the clock of the runs record; time.Now when nil.
	Now func() time.Time
	// Topic is the validated topic the stream views were written from,
	// named in the cut-offs (DefaultTopic when empty).
	Topic string
	// Analytics also computes the analytics views (package
	// batch/analytics) in the same pass and swaps them in with the
	// others. Without it the analytics views of the last run that
	// computed them stay as they are.
	Analytics bool
	// MinWeeklyVolume is the fewest transactions of a merchant's week for
	// a drop from it to count as one (DefaultMinWeeklyVolume when zero).
	MinWeeklyVolume int

	// TestHook, for tests of other packages, is hook.
	TestHook func(point string, rows int64) error
	// hook, for tests, is called after each record batch ("rows", with the
	// rows read so far), before the views are committed ("commit") and
	// before the manifest is written ("manifest"); an error fails the run
	// there.
	hook func(point string, rows int64) error
	// loaders, for tests and benchmarks, is the number of connections
	// loading batch_transactions (defaultLoaders when zero).
	loaders int
	// forceInsert, for tests, writes MySQL with INSERT even where LOAD DATA
	// LOCAL INFILE works.
	forceInsert bool
}

// Summary describes a run.
type Summary struct {
	Transactions      int64 // stream rows read
	Approved          int64
	Declined          int64
	Cards             int64
	CardsRelimited    int64 // cards whose credit limit changed
	Customers         int64
	CustomersRescored int64 // customers whose credit score changed
	// Cutoff is the transaction id of the last stream row included.
	Cutoff string
	// Cutoffs are, per partition of the validated topic, the offset after
	// the last stream row included: what the views cover.
	Cutoffs map[int32]int64
	Elapsed time.Duration
}

// DefaultTopic is the validated topic of the default input topic.
const DefaultTopic = "transactions.validated"

// CutoffColumns are the columns of batch_cutoffs (table and CSV file).
var CutoffColumns = []string{"topic", "partition", "next_offset"}

// String is the one-line report of a run.
func (s Summary) String() string {
	cutoff := s.Cutoff
	if cutoff == "" {
		cutoff = "none"
	}
	return fmt.Sprintf("batch: %d rows (%d approved, %d declined) up to transaction %s, %d of %d cards re-limited, %d of %d customers re-scored, %.2fs",
		s.Transactions, s.Approved, s.Declined, cutoff, s.CardsRelimited, s.Cards, s.CustomersRescored, s.Customers, s.Elapsed.Seconds())
}

// Run runs the batch once. Its outputs are a function of the master data
// and the stream results only: running it again gives the same files and
// tables. When it fails, the previous views (files and tables) stay, and
// the run is recorded as failed.
func Run(ctx context.Context, o Options) (Summary, error) {
	t0 := time.Now()
	if err := o.defaults(); err != nil {
		return Summary{}, err
	}
	r := &run{o: o, log: o.Log}
	var record runs
	if o.DB != nil {
		if n := o.DB.Stats().MaxOpenConnections; n > 0 && n < 2 {
			return Summary{}, fmt.Errorf("batch: the database pool allows %d connection, the batch needs 2", n)
		}
		conn, err := o.DB.Conn(ctx)
		if err != nil {
			return Summary{}, fmt.Errorf("batch: connect: %w", err)
		}
		if err := acquireLock(ctx, conn); err != nil {
			conn.Close()
			return Summary{}, fmt.Errorf("batch: %w", err)
		}
		defer releaseConn(conn)
		r.readConn = conn
		record = mysqlRuns{o.DB}
	} else {
		record = &csvRuns{path: filepath.Join(o.ResultsDir, RunsFile)}
	}
	started := o.Now()
	id, err := record.start(ctx, started)
	if err != nil {
		return Summary{}, fmt.Errorf("batch: %w", err)
	}
	r.id = id
	r.log.Info("batch run started", "run", id, "mysql", o.DB != nil, "results", o.ResultsDir)

	err = r.execute(ctx)
	r.sum.Elapsed = time.Since(t0)
	run := runRecord{ID: id, StartedAt: started, FinishedAt: o.Now(), Rows: r.sum.Transactions, Cutoff: r.sum.Cutoff, Status: statusOK}
	if err == nil {
		run.Topic, run.Cutoffs = o.Topic, r.sum.Cutoffs
	}
	if err != nil {
		err = fmt.Errorf("batch: %w", err)
		run.Status, run.Error = statusFailed, err.Error()
	}
	// The end is recorded even when ctx is canceled.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if ferr := record.finish(fctx, run); ferr != nil {
		if err == nil {
			err = fmt.Errorf("batch: %w", ferr)
		} else {
			r.log.Error("batch run not recorded", "run", id, "err", ferr)
		}
	}
	if err != nil {
		r.log.Error("batch run failed", "run", id, "err", err)
		return r.sum, err
	}
	r.log.Debug(r.sum.String(), "run", id) // the command prints the summary
	return r.sum, nil
}

func (o *Options) defaults() error {
	if o.DB == nil && o.DataDir == "" {
		return errors.New("batch: neither a database nor a dataset directory (DataDir) is set")
	}
	if o.ResultsDir == "" {
		o.ResultsDir = "results"
	}
	if o.Alloc == nil {
		o.Alloc = memory.DefaultAllocator
	}
	if o.BatchRows <= 0 {
		o.BatchRows = DefaultBatchRows
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Topic == "" {
		o.Topic = DefaultTopic
	}
	if o.MinWeeklyVolume <= 0 {
		o.MinWeeklyVolume = DefaultMinWeeklyVolume
	}
	if o.hook == nil {
		o.hook = o.TestHook
	}
	return nil
}

type run struct {
	o        Options
	id       int64 // the run's id in the runs record
	log      *slog.Logger
	ctx      context.Context
	cancel   context.CancelCauseFunc
	readConn *sql.Conn

	cardIdx *cardIndex     // card id → index in master.Cards
	sums    []txpipe.Money // approved amounts per card, by index
	workers []*worker      // all the writers
	shards  []*worker      // the loaders, each given every len(shards)-th record
	batches int
	closed  bool
	sum     Summary

	recs *recycler // the memory of the records read and settled

	noLoad      atomic.Bool // the server refused LOAD DATA LOCAL INFILE
	refusedOnce sync.Once

	an        *analyzer // with Options.Analytics
	anConn    *sql.Conn // writes the analytics tables while the loaders run
	cards     []txpipe.Card
	customers []txpipe.Customer
}

// useLoad says whether MySQL writes try LOAD DATA LOCAL INFILE.
func (r *run) useLoad() bool { return !r.o.forceInsert && !r.noLoad.Load() }

// noteRefused remembers that the server refused LOAD DATA LOCAL INFILE,
// and says so once.
func (r *run) noteRefused(refused bool) {
	if refused {
		r.noLoad.Store(true)
		r.refusedOnce.Do(func() {
			r.log.Warn("batch: the server refuses LOAD DATA LOCAL INFILE, writing with INSERT (slower; enable local_infile)")
		})
	}
}

// tables are the MySQL tables the run replaces.
func (r *run) tables() []string {
	if r.o.Analytics {
		return append(slices.Clone(viewTables), analyticsTables()...)
	}
	return viewTables
}

// output is a file written to a temporary name until commit.
type output struct {
	sync   func() error // nil: commit syncs
	commit func() error
	abort  func()
	done   bool
}

type outputs []*output

func (outs outputs) abort() {
	for _, o := range outs {
		if !o.done {
			o.abort()
			o.done = true
		}
	}
}

func (outs outputs) commit() error {
	// The files are synced side by side (each sync mostly waits for the
	// disk), then renamed in turn.
	errs := make(chan error, len(outs))
	for _, o := range outs {
		go func() {
			if o.sync == nil {
				errs <- nil
				return
			}
			errs <- o.sync()
		}()
	}
	var first error
	for range outs {
		if err := <-errs; first == nil {
			first = err
		}
	}
	if first != nil {
		return first
	}
	for _, o := range outs {
		o.done = true
		if err := o.commit(); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) path(name string) string { return filepath.Join(r.o.ResultsDir, name) }

func parquetName(csvName string) string { return strings.TrimSuffix(csvName, ".csv") + ".parquet" }

func (r *run) execute(parent context.Context) (err error) {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	r.ctx, r.cancel = ctx, cancel
	o := r.o
	r.recs = newRecycler(o.Alloc)
	defer r.recs.close() // last: after every record is released
	if err := os.MkdirAll(o.ResultsDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", o.ResultsDir, err)
	}

	// MySQL: empty <view>_next tables, and how to fill them.
	phase, t := "prepare", time.Now()
	lap := func(next string) {
		r.log.Debug("batch phase done", "phase", phase, "elapsed", time.Since(t))
		phase, t = next, time.Now()
	}
	var writeConns []*sql.Conn // [0] also runs the DDL
	if o.DB != nil {
		defer func() {
			// A canceled run has lost these connections: the unfinished
			// tables are dropped through another.
			for _, c := range writeConns {
				c.Close()
			}
			if r.anConn != nil {
				r.anConn.Close()
			}
			if err != nil {
				if derr := dropNext(o.DB, r.tables()); derr != nil {
					r.log.Warn("batch: drop the unfinished tables (the next run drops them)", "err", derr)
				}
			}
		}()
		loaders := r.loaders()
		for range loaders {
			c, err := o.DB.Conn(ctx)
			if err != nil {
				return fmt.Errorf("connect: %w", err)
			}
			writeConns = append(writeConns, c)
		}
		// The analytics views are written while batch_transactions loads,
		// through a connection of their own when the pool has one more.
		if max := o.DB.Stats().MaxOpenConnections; o.Analytics && (max == 0 || max >= loaders+2) {
			if r.anConn, err = o.DB.Conn(ctx); err != nil {
				return fmt.Errorf("connect: %w", err)
			}
		}
		if err := prepareTables(ctx, writeConns[0], r.tables()); err != nil {
			return err
		}
	}

	lap("master")
	// Master data. In MySQL mode it and the stream are read in one
	// snapshot; in CSV mode the stream file is parsed meanwhile.
	var master *txpipe.Master
	var readTx *sql.Tx
	var csvStream *streamReader
	if o.DB == nil {
		csvStream = startStreamCSV(ctx, r.path(csvfile.StreamFile), r.recs, o.BatchRows)
		defer csvStream.stop()
	}
	if o.DB != nil {
		readTx, err = r.readConn.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
		if err != nil {
			return fmt.Errorf("begin the read transaction: %w", err)
		}
		defer readTx.Rollback()
		master, err = readMasterMySQL(ctx, readTx)
	} else {
		master, err = csvfile.ReadMaster(o.DataDir)
	}
	if err != nil {
		return err
	}
	r.cardIdx = newCardIndex(master.Cards)
	r.sums = make([]txpipe.Money, len(master.Cards))
	if o.Analytics {
		r.an = newAnalyzer(master, r.cardIdx)
		r.an.mp.minWeekly = int64(o.MinWeeklyVolume)
		if readTx != nil {
			err = r.an.readMySQL(ctx, readTx, master)
		} else {
			err = r.an.readCSV(master, o.DataDir, o.ResultsDir)
		}
		if err != nil {
			return fmt.Errorf("analytics: %w", err)
		}
	}

	// Outputs, to temporary files until the end.
	var outs outputs
	defer func() {
		if err != nil {
			outs.abort()
		}
	}()
	// The analytics worker adds its outputs while the run goes on.
	var outMu sync.Mutex
	addCSV := func(name string, header []string) (*csvfile.Writer, error) {
		w, err := csvfile.Create(r.path(name), header)
		if err != nil {
			return nil, err
		}
		outMu.Lock()
		outs = append(outs, &output{sync: w.Sync, commit: w.Commit, abort: w.Abort})
		outMu.Unlock()
		return w, nil
	}
	var pqs []*parquetOut
	addParquet := func(name string, schema *arrow.Schema) (*parquetOut, error) {
		p, err := createParquet(r.path(parquetName(name)), schema, o.Alloc)
		if err != nil {
			return nil, err
		}
		outMu.Lock()
		pqs = append(pqs, p)
		outs = append(outs, &output{commit: p.commit, abort: p.abort})
		outMu.Unlock()
		return p, nil
	}
	batchCSV, err := addCSV(csvfile.BatchFile, csvfile.ResultColumns)
	if err != nil {
		return err
	}

	lap("stream")
	// The stream, record batch by record batch, to the writers.
	defer r.stopWorkers()
	r.startWorker("write "+r.path(csvfile.BatchFile), (&txCSV{w: batchCSV}).consume)
	if o.Parquet {
		p, err := addParquet(csvfile.BatchFile, txSchema)
		if err != nil {
			return err
		}
		r.startWorker("parquet", p.consume)
	}
	if r.an != nil {
		// The two halves of the analytics pass, side by side.
		r.startWorker("analytics merchants", r.an.mp.consume)
		mp := r.workers[len(r.workers)-1]
		r.startWorker("analytics", func(ch <-chan arrow.Record) error {
			err := r.an.consume(ch)
			<-mp.done
			if err == nil {
				err = mp.err
			}
			if err != nil || context.Cause(ctx) != nil {
				return err // a failed run writes nothing more
			}
			// Every view but the segments (which need the re-scored
			// customers), while the loaders finish.
			return r.writeViews(ctx, r.an.earlyViews(), true, r.anConn, addCSV, addParquet)
		})
	}
	// batch_transactions_next is loaded through several connections, the
	// records dealt round-robin: the server inserts in parallel.
	for _, conn := range writeConns {
		r.startLoader(func(ch <-chan arrow.Record) error {
			refused, err := loadRecords(ctx, conn, batchTable+"_next", r.useLoad(), ch)
			r.noteRefused(refused)
			return err
		})
	}
	if o.DB != nil {
		b := newTxBuilder(r.recs, o.BatchRows)
		cut := cutoffs{}
		r.sum.Cutoffs = cut
		err = readStreamMySQL(ctx, readTx, b, cut, r.emit)
		b.release()
	} else {
		err = csvStream.each(r.emit)
		r.sum.Cutoffs = csvStream.cut
	}
	if err != nil {
		cancel(err)
		r.stopWorkers()
		// The first failure, which the others may only echo.
		if cause := context.Cause(ctx); !errors.Is(err, cause) {
			return cause
		}
		return err
	}

	// While the writers finish the last records: the read transaction
	// ends, the cards are settled, the customers re-scored, and both
	// written (in MySQL mode through the reading connection, now free).
	r.closeWorkers()
	lap("rescore")
	changed, err := r.writeMaster(ctx, readTx, master, addCSV, addParquet)
	if err != nil {
		cancel(err)
	}
	r.stopWorkers()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	if r.an != nil {
		lap("analytics")
		var conn *sql.Conn
		if len(writeConns) > 0 {
			conn = writeConns[0]
		}
		seg := r.an.segmentsView(analyticsInput{master: master, cards: r.cards, customers: r.customers})
		if err := r.writeViews(ctx, []viewData{seg}, true, conn, addCSV, addParquet); err != nil {
			return err
		}
		if conn != nil && r.anConn == nil {
			// No connection of their own: the other views' tables now.
			if err := r.writeViews(ctx, r.an.early, false, conn, addCSV, addParquet); err != nil {
				return err
			}
		}
	}

	lap("commit")
	// Commit: files first, then the tables in one RENAME.
	if o.hook != nil {
		if err := o.hook("commit", r.sum.Transactions); err != nil {
			return err
		}
	}
	for _, p := range pqs {
		if err := p.finish(); err != nil {
			return err
		}
	}
	if err := context.Cause(ctx); err != nil {
		return err
	}
	if err := outs.commit(); err != nil {
		return err
	}
	if o.DB != nil {
		dropErr, err := swapTables(ctx, writeConns[0], r.tables())
		if err != nil {
			return err
		}
		if dropErr != nil {
			r.log.Warn("batch: the previous views were not dropped (the next run drops them)", "err", dropErr)
		}
	}
	if err := r.writeManifest(); err != nil {
		return fmt.Errorf("the views are committed, but %w", err)
	}
	lap("publish")
	if o.Publish != nil {
		if err := o.Publish(ctx, changed); err != nil {
			return fmt.Errorf("the views are committed, but publishing the %d changed cards failed: %w", len(changed), err)
		}
	}
	lap("")
	return nil
}

// writeMaster settles the cards and re-scores the customers, and writes
// them to the CSV files, the Parquet files and the MySQL tables.
func (r *run) writeMaster(ctx context.Context, readTx *sql.Tx, master *txpipe.Master,
	addCSV func(string, []string) (*csvfile.Writer, error), addParquet func(string, *arrow.Schema) (*parquetOut, error)) ([]txpipe.Card, error) {
	if readTx != nil {
		if err := readTx.Commit(); err != nil {
			return nil, fmt.Errorf("end the read transaction: %w", err)
		}
	}
	customers, cards, changed, err := r.rescore(master)
	if err != nil {
		return nil, err
	}
	r.cards, r.customers = cards, customers
	cut := cutoffs(r.sum.Cutoffs)
	// The files on both cores while the tables load.
	fileErr := make(chan error, 1)
	go func() { fileErr <- r.writeMasterFiles(cards, customers, cut, addCSV, addParquet) }()
	if r.o.DB != nil {
		err = r.writeMasterViews(ctx, r.readConn, cards, customers)
		if err == nil {
			err = writeCutoffs(ctx, r.readConn, cutoffsTable+"_next", r.o.Topic, 0, cut)
		}
	}
	if ferr := <-fileErr; ferr != nil {
		return nil, ferr
	}
	if err != nil {
		return nil, err
	}
	return changed, nil
}

// writeMasterFiles writes cards_updated.csv and customers_updated.csv
// side by side (and their Parquet files), then batch_cutoffs.csv.
func (r *run) writeMasterFiles(cards []txpipe.Card, customers []txpipe.Customer, cut cutoffs,
	addCSV func(string, []string) (*csvfile.Writer, error), addParquet func(string, *arrow.Schema) (*parquetOut, error)) error {
	err := parallel(2, func(i int) error {
		if i == 0 {
			return writeRows(addCSV, csvfile.CardsUpdatedFile, csvfile.CardColumns, len(cards), func(b []byte, k int) []byte {
				return appendCardRow(b, &cards[k])
			})
		}
		return writeRows(addCSV, csvfile.CustomersUpdFile, csvfile.CustomerColumns, len(customers), func(b []byte, k int) []byte {
			return appendCustomerRow(b, &customers[k])
		})
	})
	if err != nil {
		return err
	}
	if r.o.Parquet {
		if err := r.writeMasterParquet(addParquet, cards, customers); err != nil {
			return err
		}
	}
	cw, err := addCSV(csvfile.CutoffsFile, CutoffColumns)
	if err != nil {
		return err
	}
	for _, p := range slices.Sorted(maps.Keys(cut)) {
		if err := cw.Write([]string{r.o.Topic, strconv.Itoa(int(p)), strconv.FormatInt(cut[p], 10)}); err != nil {
			return err
		}
	}
	return nil
}

// writeRows writes n rows, row k appended by row, to a new CSV file, and
// syncs it.
func writeRows(addCSV func(string, []string) (*csvfile.Writer, error), name string, header []string, n int, row func(b []byte, k int) []byte) error {
	w, err := addCSV(name, header)
	if err != nil {
		return err
	}
	var b []byte
	for k := range n {
		b = row(b, k)
		if len(b) >= csvChunk || k == n-1 {
			if err := w.WriteEncoded(b); err != nil {
				return err
			}
			b = b[:0]
		}
	}
	return w.Sync()
}

// appendCardRow appends a cards row as csvfile.Writer.WriteCard writes
// it (numbers and money are never quoted).
func appendCardRow(b []byte, c *txpipe.Card) []byte {
	b = strconv.AppendInt(b, c.ID, 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, c.CustomerID, 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, c.CardTypeID, 10)
	b = append(b, ',')
	b = csvfile.AppendField(b, c.Number)
	b = append(b, ',')
	b = csvfile.AppendField(b, c.Expiration)
	b = append(b, ',')
	b = c.CreditLimit.Append(b)
	b = append(b, ',')
	b = c.CurrentBalance.Append(b)
	b = append(b, ',')
	b = csvfile.AppendField(b, c.IssueDate)
	return append(b, '\n')
}

// appendCustomerRow appends a customers row as
// csvfile.Writer.WriteCustomer writes it.
func appendCustomerRow(b []byte, c *txpipe.Customer) []byte {
	b = strconv.AppendInt(b, c.ID, 10)
	b = append(b, ',')
	b = csvfile.AppendField(b, c.Name)
	b = append(b, ',')
	b = csvfile.AppendField(b, c.Phone)
	b = append(b, ',')
	b = csvfile.AppendField(b, c.Address)
	b = append(b, ',')
	b = csvfile.AppendField(b, c.Email)
	b = append(b, ',')
	b = strconv.AppendInt(b, c.CreditScore, 10)
	b = append(b, ',')
	b = c.AnnualIncome.Append(b)
	return append(b, '\n')
}

func (r *run) startWorker(name string, consume func(<-chan arrow.Record) error) {
	r.workers = append(r.workers, startWorker(name, r.cancel, consume))
}

// startLoader starts a worker that gets every len(loaders)-th record.
func (r *run) startLoader(consume func(<-chan arrow.Record) error) {
	w := startWorker("load", r.cancel, consume)
	r.workers = append(r.workers, w)
	w.sharded = true
	r.shards = append(r.shards, w)
}

// loaders is the number of connections loading batch_transactions_next,
// within the pool's limit (one connection reads).
func (r *run) loaders() int {
	n := r.o.loaders
	if n <= 0 {
		n = defaultLoaders
	}
	if max := r.o.DB.Stats().MaxOpenConnections; max > 0 {
		n = min(n, max-1)
	}
	return max(n, 1)
}

// closeWorkers tells the workers that no record follows.
func (r *run) closeWorkers() {
	if !r.closed {
		r.closed = true
		for _, w := range r.workers {
			close(w.ch)
		}
	}
}

// stopWorkers closes the workers' inputs, waits for them and returns the
// first error.
func (r *run) stopWorkers() error {
	r.closeWorkers()
	var first error
	for _, w := range r.workers {
		<-w.done
		if w.err != nil && first == nil {
			first = w.err
		}
	}
	return first
}

// emit settles a record of stream results and hands it to the writers.
func (r *run) emit(in arrow.Record) error {
	defer in.Release()
	if r.ctx.Err() != nil {
		return context.Cause(r.ctx)
	}
	out, err := r.settle(in)
	if err != nil {
		return err
	}
	defer out.Release()
	var shard *worker
	if len(r.shards) > 0 {
		shard = r.shards[r.batches%len(r.shards)]
	}
	r.batches++
	for _, w := range r.workers {
		if w.sharded && w != shard {
			continue
		}
		out.Retain()
		select {
		case w.ch <- out:
		case <-r.ctx.Done():
			out.Release()
			return context.Cause(r.ctx)
		}
	}
	if r.o.hook != nil {
		return r.o.hook("rows", r.sum.Transactions)
	}
	return nil
}

// settle returns in with pending settled to approved, and adds the
// approved amounts to their cards.
func (r *run) settle(in arrow.Record) (arrow.Record, error) {
	c := columns(in)
	var sb strCol
	sb.reserve = c.n * len(txpipe.StatusApproved)
	sb.init(r.recs, c.n, false)
	defer sb.release() // after an error
	approved, declined := int64(0), int64(0)
	for i := 0; i < c.n; i++ {
		k, ok := r.cardIdx.get(c.card[i])
		if !ok {
			return nil, fmt.Errorf("stream_transactions row %d (transaction_id %d): card %d is not in the master data",
				r.sum.Transactions+int64(i)+1, c.id[i], c.card[i])
		}
		switch txpipe.Settle(txpipe.Status(c.status.Value(i))) {
		case txpipe.StatusApproved:
			sb.append(approvedBytes)
			r.sums[k] += txpipe.Money(c.amount[i])
			approved++
		default:
			sb.append(declinedBytes)
			declined++
		}
	}
	status := sb.build()
	defer status.Release()
	cols := slices.Clone(in.Columns())
	cols[colStatus] = status
	out := array.NewRecord(txSchema, cols, int64(c.n))
	r.sum.Transactions += int64(c.n)
	r.sum.Approved += approved
	r.sum.Declined += declined
	if c.n > 0 {
		r.sum.Cutoff = strconv.FormatInt(c.id[c.n-1], 10)
	}
	return out, nil
}

// rescore settles the cards' balances and applies txpipe.Rescore.
func (r *run) rescore(m *txpipe.Master) ([]txpipe.Customer, []txpipe.Card, []txpipe.Card, error) {
	settled := make([]txpipe.Card, len(m.Cards))
	for i, c := range m.Cards {
		c.CurrentBalance += r.sums[i]
		if c.CurrentBalance >= txpipe.MaxMoney || c.CurrentBalance <= -txpipe.MaxMoney {
			return nil, nil, nil, fmt.Errorf("card_id %d: settled balance %s is out of range", c.ID, c.CurrentBalance)
		}
		settled[i] = c
	}
	customers, cards := txpipe.Rescore(m.Customers, settled)
	var changed []txpipe.Card
	for i, c := range cards {
		if c.CreditLimit != m.Cards[i].CreditLimit {
			changed = append(changed, c)
		}
	}
	var rescored int64
	for i, c := range customers {
		if c.CreditScore != m.Customers[i].CreditScore {
			rescored++
		}
	}
	r.sum.Cards, r.sum.CardsRelimited = int64(len(cards)), int64(len(changed))
	r.sum.Customers, r.sum.CustomersRescored = int64(len(customers)), rescored
	return customers, cards, changed, nil
}

// writeMasterParquet writes cards_updated.parquet and
// customers_updated.parquet, one record each (bounded by the cards).
func (r *run) writeMasterParquet(add func(string, *arrow.Schema) (*parquetOut, error), cards []txpipe.Card, customers []txpipe.Customer) error {
	mem := r.o.Alloc
	cb := array.NewRecordBuilder(mem, cardSchema)
	defer cb.Release()
	for _, c := range cards {
		cb.Field(0).(*array.Int64Builder).Append(c.ID)
		cb.Field(1).(*array.Int64Builder).Append(c.CustomerID)
		cb.Field(2).(*array.Int64Builder).Append(c.CardTypeID)
		cb.Field(3).(*array.StringBuilder).Append(c.Number)
		cb.Field(4).(*array.StringBuilder).Append(c.Expiration)
		cb.Field(5).(*array.Int64Builder).Append(int64(c.CreditLimit))
		cb.Field(6).(*array.Int64Builder).Append(int64(c.CurrentBalance))
		cb.Field(7).(*array.StringBuilder).Append(c.IssueDate)
	}
	ub := array.NewRecordBuilder(mem, customerSchema)
	defer ub.Release()
	for _, c := range customers {
		ub.Field(0).(*array.Int64Builder).Append(c.ID)
		ub.Field(1).(*array.StringBuilder).Append(c.Name)
		ub.Field(2).(*array.StringBuilder).Append(c.Phone)
		ub.Field(3).(*array.StringBuilder).Append(c.Address)
		ub.Field(4).(*array.StringBuilder).Append(c.Email)
		ub.Field(5).(*array.Int64Builder).Append(c.CreditScore)
		ub.Field(6).(*array.Int64Builder).Append(int64(c.AnnualIncome))
	}
	for _, x := range []struct {
		name string
		b    *array.RecordBuilder
	}{{csvfile.CardsUpdatedFile, cb}, {csvfile.CustomersUpdFile, ub}} {
		p, err := add(x.name, x.b.Schema())
		if err != nil {
			return err
		}
		rec := x.b.NewRecord()
		err = p.write(rec)
		rec.Release()
		if err != nil {
			return err
		}
	}
	return nil
}
