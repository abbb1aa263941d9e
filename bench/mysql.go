package bench

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/batch"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/serving/mysqlstore"
	"github.com/txpipe/txpipe/stream"
)

const noDatabase = "no database"

// storeAdapter adds up the time the sink spends writing MySQL.
type storeAdapter struct {
	db    *mysqlstore.DB
	spent *time.Duration // in WriteStream
	calls *int
}

func (a storeAdapter) WriteViews(ctx context.Context, consumer string, b *txpipe.ViewBatch) error {
	begin := time.Now()
	err := a.db.WriteViews(ctx, consumer, b)
	*a.spent += time.Since(begin) // the sink calls it from one goroutine
	*a.calls++
	return err
}

func (a storeAdapter) Offsets(ctx context.Context, consumer, topic string) (map[int32]txpipe.Offset, error) {
	return a.db.Offsets(ctx, consumer, topic)
}

func (a storeAdapter) ResetPartition(ctx context.Context, consumer, topic string, partition int32, streamRows bool) error {
	return a.db.ResetPartition(ctx, consumer, topic, partition, streamRows)
}

// database is a database the run created.
type database struct {
	name string
	cfg  *mysql.Config
	db   *mysqlstore.DB
}

// newDatabase creates an empty database txpipe_bench_<random> and opens
// it with mysqlstore (which applies the migrations). It is dropped when
// the run ends.
func (b *bencher) newDatabase(ctx context.Context) (*database, error) {
	d := &database{name: "txpipe_bench_" + randomID()}
	d.cfg = b.o.MySQL.Clone()
	d.cfg.DBName = d.name
	admin, err := b.admin()
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	b.databases = append(b.databases, d.name)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE `"+d.name+"` CHARACTER SET utf8mb4"); err != nil {
		return nil, fmt.Errorf("create database %s: %w", d.name, err)
	}
	if d.db, err = mysqlstore.Open(ctx, d.cfg, b.log); err != nil {
		return nil, err
	}
	b.open = append(b.open, d.db)
	return d, nil
}

// admin connects to the server without a database.
func (b *bencher) admin() (*sql.DB, error) {
	c := b.o.MySQL.Clone()
	c.DBName = ""
	conn, err := mysql.NewConnector(c)
	if err != nil {
		return nil, fmt.Errorf("mysql: %w", err)
	}
	return sql.OpenDB(conn), nil
}

// dropDatabases closes and drops every database of the run.
func (b *bencher) dropDatabases(ctx context.Context) {
	for _, db := range b.open {
		db.Close()
	}
	if len(b.databases) == 0 {
		return
	}
	admin, err := b.admin()
	if err != nil {
		b.log.Warn("bench: drop databases", "err", err)
		return
	}
	defer admin.Close()
	for _, name := range b.databases {
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			b.log.Warn("bench: drop database", "database", name, "err", err)
		}
	}
}

// readResults reads the validated topic (read_committed) to its n
// records and decodes them.
func (b *bencher) readResults(ctx context.Context, topic string, n int64) ([]txpipe.Result, error) {
	cl, err := b.client(
		kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	out := make([]txpipe.Result, 0, n)
	for int64(len(out)) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read %s: %d of %d records: %w", topic, len(out), n, err)
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("read %s/%d: %w", t, p, err) })
		if ferr != nil {
			return nil, ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			if ferr != nil {
				return
			}
			res, err := stream.DecodeResult(r.Value)
			if err != nil {
				ferr = fmt.Errorf("%s/%d/%d: %w", r.Topic, r.Partition, r.Offset, err)
				return
			}
			out = append(out, res)
		})
		if ferr != nil {
			return nil, ferr
		}
	}
	return out, nil
}

func (b *bencher) sinkStage(ctx context.Context, rep *Report) error {
	if b.o.MySQL == nil {
		rep.Sink.Skipped = noDatabase
		b.log.Info("bench: sink skipped: no database")
		return nil
	}
	results, err := b.readResults(ctx, b.val.topics.Validated, b.val.processed)
	if err != nil {
		return err
	}
	var text []byte
	for i := range results {
		text = mysqlstore.AppendStreamRow(text, &results[i])
	}
	results = nil

	rawDB, err := b.newDatabase(ctx)
	if err != nil {
		return err
	}
	b.log.Info("bench: sink, raw LOAD DATA LOCAL INFILE", "database", rawDB.name, "rows", b.val.processed, "bytes", len(text))
	raw, err := loadDataRaw(ctx, rawDB.db.SQL, "txpipe-bench-"+b.id, text, b.val.processed)
	if err != nil {
		return fmt.Errorf("raw LOAD DATA: %w", err)
	}
	text = nil

	sinkDB, err := b.newDatabase(ctx)
	if err != nil {
		return err
	}
	b.sinkDB = sinkDB
	b.log.Info("bench: sink, stream sink", "database", sinkDB.name, "topic", b.val.topics.Validated)
	group := b.topic("sink")
	var spent time.Duration
	var calls int
	segs, err := csvfile.NewSegments(filepath.Join(b.tmp, "sink-results"))
	if err != nil {
		return err
	}
	defer segs.CloseAll()
	s, err := stream.NewSink(stream.SinkConfig{
		Brokers: b.brokers, Topics: b.val.topics, Group: group, Instance: "bench",
		Outputs: []stream.Output{segs, stream.StoreOutput(storeAdapter{sinkDB.db, &spent, &calls}, group, b.val.topics, mysqlstore.IsTransient, b.log)},
		Log:     b.log, ClientOpts: b.opts,
	})
	if err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopProfile, err := b.startProfile("sink", rep)
	if err != nil {
		s.Close()
		return err
	}
	want := b.val.processed + b.val.rejected
	begin := time.Now()
	run := start(func() error { return s.Run(rctx) })
	err = waitFor(ctx, run, func() bool { return s.Written() >= want })
	took := time.Since(begin)
	stopProfile()
	cancel()
	if rerr := run.wait(); err == nil && rerr != nil {
		err = rerr
	}
	written := s.Written()
	s.Close()
	if err != nil {
		return fmt.Errorf("sink: %w", err)
	}
	if written != want {
		return fmt.Errorf("the sink wrote %d records, want %d", written, want)
	}
	if n, err := sinkDB.db.CountRows(ctx, "stream_transactions"); err != nil {
		return err
	} else if n != b.val.processed {
		return fmt.Errorf("the sink left %d rows in stream_transactions, want %d", n, b.val.processed)
	}
	rep.Sink.finish(b.val.processed, raw, written, took)
	b.logStage(rep.Sink)
	b.log.Info("bench: sink, time in the database", "write_stream_calls", calls, "write_stream_s", spent.Seconds(),
		"share_of_stage", fmt.Sprintf("%.0f%%", 100*spent.Seconds()/took.Seconds()))
	return nil
}

// loadDataRaw loads the formatted rows into the empty stream_transactions
// with one LOAD DATA LOCAL INFILE in one transaction and returns how long
// it took, from BEGIN to COMMIT.
func loadDataRaw(ctx context.Context, db *sql.DB, name string, text []byte, rows int64) (time.Duration, error) {
	return loadTableRaw(ctx, db, name, "stream_transactions", mysqlstore.StreamColumns, text, rows)
}

// loadTableRaw loads the formatted rows into table with one LOAD DATA
// LOCAL INFILE in one transaction and returns how long it took, from
// BEGIN to COMMIT.
func loadTableRaw(ctx context.Context, db *sql.DB, name, table string, columns []string, text []byte, rows int64) (time.Duration, error) {
	mysql.RegisterReaderHandler(name, func() io.Reader { return bytes.NewReader(text) })
	defer mysql.DeregisterReaderHandler(name)
	cols := make([]string, len(columns))
	for i, c := range columns {
		cols[i] = "`" + c + "`"
	}
	stmt := "LOAD DATA LOCAL INFILE 'Reader::" + name + "' INTO TABLE `" + table + "` CHARACTER SET utf8mb4 " +
		`FIELDS TERMINATED BY '\t' ESCAPED BY '\\' LINES TERMINATED BY '\n' (` + strings.Join(cols, ",") + ")"
	begin := time.Now()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, stmt)
	if err != nil {
		tx.Rollback()
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	took := time.Since(begin)
	if n, err := res.RowsAffected(); err != nil {
		return 0, err
	} else if n != rows {
		return 0, fmt.Errorf("loaded %d rows, want %d", n, rows)
	}
	return took, nil
}

// streamQuery is the batch's own read of stream_transactions: every
// column, in event order.
const streamQuery = "SELECT transaction_id, card_id, merchant_name, `timestamp`, amount, location, " +
	"transaction_type, related_transaction_id, status, pending_balance, decline_reason, seq " +
	"FROM stream_transactions ORDER BY `timestamp`, seq"

// rawSelect streams stream_transactions, scanning every column of every
// row into raw bytes.
func rawSelect(ctx context.Context, db *sql.DB) (int64, time.Duration, error) {
	begin := time.Now()
	rows, err := db.QueryContext(ctx, streamQuery)
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	var raw [12]sql.RawBytes
	dest := make([]any, len(raw))
	for i := range raw {
		dest[i] = &raw[i]
	}
	var n int64
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return n, 0, err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, 0, err
	}
	return n, time.Since(begin), nil
}

func (b *bencher) batchStage(ctx context.Context, rep *Report) error {
	if b.o.MySQL == nil {
		rep.Batch.Skipped = noDatabase
		b.log.Info("bench: batch skipped: no database")
		return nil
	}
	db := b.sinkDB.db
	if err := db.LoadMaster(ctx, b.master); err != nil {
		return err
	}
	b.log.Info("bench: batch, raw SELECT", "database", b.sinkDB.name)
	rawRows, raw, err := rawSelect(ctx, db.SQL)
	if err != nil {
		return fmt.Errorf("raw SELECT: %w", err)
	}
	if rawRows != b.val.processed {
		return fmt.Errorf("raw SELECT read %d rows, want %d", rawRows, b.val.processed)
	}
	b.log.Info("bench: batch, batch.Run", "database", b.sinkDB.name)
	stopProfile, err := b.startProfile("batch", rep)
	if err != nil {
		return err
	}
	begin := time.Now()
	sum, err := batch.Run(ctx, batch.Options{DB: db.SQL, ResultsDir: filepath.Join(b.tmp, "batch-results"), Log: b.log})
	took := time.Since(begin)
	stopProfile()
	if err != nil {
		return err
	}
	if sum.Transactions != rawRows {
		return fmt.Errorf("the batch read %d rows, want %d", sum.Transactions, rawRows)
	}
	rep.Batch.finish(rawRows, raw, sum.Transactions, took)
	b.logStage(rep.Batch)

	// The second baseline: the same SELECT plus LOAD DATA of the views'
	// rows the batch just wrote, into empty copies of their tables.
	b.log.Info("bench: batch, raw LOAD DATA of the views", "database", b.sinkDB.name)
	load, err := rawLoadViews(ctx, db.SQL, "txpipe-bench-views-"+b.id)
	if err != nil {
		return fmt.Errorf("raw LOAD DATA of the views: %w", err)
	}

	// With and without analytics, alternately, twice: the fastest of each
	// is compared, so that a burst of load elsewhere on a shared machine
	// does not decide the comparison.
	plain, withAn := took, time.Duration(math.MaxInt64)
	for i, analytics := range []bool{true, false, true} {
		b.log.Info("bench: batch, batch.Run", "database", b.sinkDB.name, "analytics", analytics)
		begin = time.Now()
		sum, err = batch.Run(ctx, batch.Options{DB: db.SQL, ResultsDir: filepath.Join(b.tmp, fmt.Sprintf("batch-results-%d", i)), Analytics: analytics, Log: b.log})
		took = time.Since(begin)
		if err != nil {
			return err
		}
		if analytics {
			withAn = min(withAn, took)
		} else {
			plain = min(plain, took)
		}
	}
	rep.Batch.finish(rawRows, raw, sum.Transactions, plain)
	rep.BatchLoad.finish(rawRows, raw+load, sum.Transactions, plain)
	rep.Analytics.finish(rawRows, raw, sum.Transactions, withAn)
	b.logStage(rep.Batch)
	b.logStage(rep.BatchLoad)
	b.logStage(rep.Analytics)
	return b.batchChild(ctx, rep)
}

// viewQueries read the batch's three view tables in the order the batch
// writes them.
var viewQueries = []struct{ table, query string }{
	{"batch_transactions", "SELECT * FROM batch_transactions ORDER BY `timestamp`, seq"},
	{"cards_updated", "SELECT * FROM cards_updated ORDER BY card_id"},
	{"customers_updated", "SELECT * FROM customers_updated ORDER BY customer_id"},
}

// rawLoadViews formats the rows of the batch's view tables as LOAD DATA
// text (before the clock starts), then loads each into an empty copy of
// its table (CREATE TABLE ... LIKE) with one LOAD DATA LOCAL INFILE in
// one transaction, one table after the other, and returns the time the
// loads took. The copies are dropped afterwards.
func rawLoadViews(ctx context.Context, db *sql.DB, name string) (time.Duration, error) {
	type load struct {
		table string
		cols  []string
		text  []byte
		rows  int64
	}
	var loads []load
	for _, v := range viewQueries {
		l := load{table: v.table + "_rawload"}
		rows, err := db.QueryContext(ctx, v.query)
		if err != nil {
			return 0, err
		}
		if l.cols, err = rows.Columns(); err != nil {
			rows.Close()
			return 0, err
		}
		raw := make([]sql.RawBytes, len(l.cols))
		dest := make([]any, len(raw))
		for i := range raw {
			dest[i] = &raw[i]
		}
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				rows.Close()
				return 0, err
			}
			for i, f := range raw {
				if i > 0 {
					l.text = append(l.text, '\t')
				}
				if f == nil {
					l.text = append(l.text, '\\', 'N')
				} else {
					l.text = mysqlstore.AppendLoadText(l.text, string(f))
				}
			}
			l.text = append(l.text, '\n')
			l.rows++
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return 0, err
		}
		if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS `"+l.table+"`"); err != nil {
			return 0, err
		}
		if _, err := db.ExecContext(ctx, "CREATE TABLE `"+l.table+"` LIKE `"+v.table+"`"); err != nil {
			return 0, err
		}
		loads = append(loads, l)
	}
	defer func() {
		for _, l := range loads {
			db.ExecContext(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS `"+l.table+"`")
		}
	}()
	var took time.Duration
	for _, l := range loads {
		t, err := loadTableRaw(ctx, db, name, l.table, l.cols, l.text, l.rows)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", l.table, err)
		}
		took += t
	}
	return took, nil
}
