package batch

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/compress"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
	"github.com/go-sql-driver/mysql"
	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/serving/csvfile"
	mysqlstore "github.com/txpipe/txpipe/serving/mysql"
)

// worker consumes the settled records in its own goroutine, so that the
// CSV, Parquet and MySQL outputs are written while the next records are
// read. Records sent to it are released by it.
type worker struct {
	name    string
	sharded bool // gets only some of the records
	ch      chan arrow.Record
	done    chan struct{}
	err     error
}

// startWorker runs consume over the worker's records. When consume fails
// the run is canceled with its error; the records still sent are drained
// and released.
func startWorker(name string, cancel context.CancelCauseFunc, consume func(<-chan arrow.Record) error) *worker {
	w := &worker{name: name, ch: make(chan arrow.Record, 1), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		err := consume(w.ch)
		for rec := range w.ch {
			rec.Release()
		}
		if err != nil {
			cancel(err)
		}
		w.err = err
	}()
	return w
}

// txCSV writes settled records as rows of batch_transactions.csv, byte for
// byte what csvfile.Writer.WriteResult writes.
type txCSV struct {
	w      *csvfile.Writer
	path   string
	row    int64
	buf    []byte
	fields []string
}

func (t *txCSV) consume(ch <-chan arrow.Record) error {
	for rec := range ch {
		err := t.write(rec)
		rec.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

func (t *txCSV) write(rec arrow.Record) error {
	c := columns(rec)
	for i := 0; i < c.n; i++ {
		t.row++
		// The formatted numbers of a row share one allocation.
		b := strconv.AppendInt(t.buf[:0], c.id[i], 10)
		e0 := len(b)
		b = strconv.AppendInt(b, c.card[i], 10)
		e1 := len(b)
		b = appendTimestamp(b, c.ts[i])
		e2 := len(b)
		b = txpipe.Money(c.amount[i]).Append(b)
		e3 := len(b)
		b = txpipe.Money(c.pending[i]).Append(b)
		t.buf = b
		s := string(b)
		related := ""
		if c.related.IsValid(i) {
			related = c.related.Value(i)
		}
		t.fields = append(t.fields[:0], s[:e0], s[e0:e1], c.merchant.Value(i), s[e1:e2], s[e2:e3],
			c.location.Value(i), c.typ.Value(i), related, c.status.Value(i), s[e3:], c.decl.Value(i))
		if err := t.w.Write(t.fields); err != nil {
			return fmt.Errorf("row %d (transaction_id %d): %w", t.row, c.id[i], err)
		}
	}
	return nil
}

const rowGroupRows = 64 << 10

// parquetOut writes a Parquet file (snappy) to a temporary file beside
// path, renamed into place by commit.
type parquetOut struct {
	path string
	f    *os.File
	bw   *bufio.Writer
	fw   *pqarrow.FileWriter
	rows int64
}

func createParquet(path string, schema *arrow.Schema, mem memory.Allocator) (*parquetOut, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	p := &parquetOut{path: path, f: f, bw: bufio.NewWriterSize(f, 1<<20)}
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy), parquet.WithAllocator(mem),
		parquet.WithMaxRowGroupLength(rowGroupRows))
	// bw has no Close: the writer leaves the file to commit and abort.
	p.fw, err = pqarrow.NewFileWriter(schema, p.bw, props,
		pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema(), pqarrow.WithAllocator(mem)))
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return p, nil
}

// write appends rec to the current row group; row groups hold
// rowGroupRows rows whatever the record batch size, so the file does not
// depend on Options.BatchRows.
func (p *parquetOut) write(rec arrow.Record) error {
	if err := p.fw.WriteBuffered(rec); err != nil {
		return fmt.Errorf("write %s rows %d-%d: %w", p.path, p.rows+1, p.rows+rec.NumRows(), err)
	}
	p.rows += rec.NumRows()
	return nil
}

func (p *parquetOut) consume(ch <-chan arrow.Record) error {
	for rec := range ch {
		err := p.write(rec)
		rec.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

// finish writes the footer and syncs the temporary file.
func (p *parquetOut) finish() error {
	err := p.fw.Close()
	if err == nil {
		err = p.bw.Flush()
	}
	if err == nil {
		err = p.f.Sync()
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", p.path, err)
	}
	return nil
}

// commit renames the finished file into place.
func (p *parquetOut) commit() error {
	err := p.f.Close()
	if err == nil {
		err = os.Rename(p.f.Name(), p.path)
	}
	if err != nil {
		os.Remove(p.f.Name())
		return fmt.Errorf("write %s: %w", p.path, err)
	}
	return nil
}

// abort drops the temporary file; the previous file stays.
func (p *parquetOut) abort() {
	p.fw.Close() // releases the writer's buffers
	p.f.Close()
	os.Remove(p.f.Name())
}

// txColumnList are the columns of batch_transactions as written.
const txColumnList = "transaction_id, card_id, merchant_name, `timestamp`, amount, location, " +
	"transaction_type, related_transaction_id, status, pending_balance, decline_reason, seq"

var readerSeq atomic.Int64

// loadData streams the records into table with one LOAD DATA LOCAL INFILE
// statement in a transaction: the rows are encoded as the server's default
// tab-separated format while the driver sends them.
func loadData(ctx context.Context, conn *sql.Conn, table string, ch <-chan arrow.Record) error {
	r := &tsvReader{ctx: ctx, ch: ch}
	defer r.release()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("load %s: %w", table, err)
	}
	defer tx.Rollback()
	if err := execLoad(ctx, tx, table, txColumnList, r, func() int64 { return r.rows }, func() error { return r.err }); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("load %s: commit: %w", table, err)
	}
	return nil
}

// execLoad runs LOAD DATA LOCAL INFILE of r into table and checks that
// the server took every row without a warning.
func execLoad(ctx context.Context, tx *sql.Tx, table, cols string, r io.Reader, sent func() int64, readErr func() error) error {
	name := fmt.Sprintf("txpipe_batch_%d_%d", os.Getpid(), readerSeq.Add(1))
	mysql.RegisterReaderHandler(name, func() io.Reader { return r })
	defer mysql.DeregisterReaderHandler(name)
	res, err := tx.ExecContext(ctx, "LOAD DATA LOCAL INFILE 'Reader::"+name+"' INTO TABLE `"+table+
		"` CHARACTER SET utf8mb4 ("+cols+")")
	if rerr := readErr(); rerr != nil {
		return rerr
	}
	if err != nil {
		return fmt.Errorf("load %s after row %d: %w", table, sent(), err)
	}
	if err := checkWarnings(ctx, tx, table); err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != sent() {
		return fmt.Errorf("load %s: the server took %d of %d rows (%v)", table, n, sent(), err)
	}
	return nil
}

// rowReader encodes rows 0..n-1 with enc as the driver reads.
type rowReader struct {
	n, i int
	enc  func(b []byte, i int) []byte
	buf  []byte
	off  int
}

func (r *rowReader) Read(p []byte) (int, error) {
	if r.off >= len(r.buf) {
		if r.i >= r.n {
			return 0, io.EOF
		}
		r.buf, r.off = r.buf[:0], 0
		for ; r.i < r.n && len(r.buf) < len(p); r.i++ {
			r.buf = r.enc(r.buf, r.i)
		}
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}

// checkWarnings fails when the last statement had warnings: LOAD DATA LOCAL
// turns data errors (truncation, duplicates) into warnings.
func checkWarnings(ctx context.Context, tx *sql.Tx, table string) error {
	var n int64
	if err := tx.QueryRowContext(ctx, "SELECT @@warning_count").Scan(&n); err != nil {
		return fmt.Errorf("load %s: %w", table, err)
	}
	if n == 0 {
		return nil
	}
	rows, err := tx.QueryContext(ctx, "SHOW WARNINGS LIMIT 3")
	if err != nil {
		return fmt.Errorf("load %s: %d warnings: %w", table, n, err)
	}
	defer rows.Close()
	var msgs []string
	for rows.Next() {
		var level, msg string
		var code int
		if rows.Scan(&level, &code, &msg) == nil {
			msgs = append(msgs, msg)
		}
	}
	return fmt.Errorf("load %s: %d warnings: %s", table, n, strings.Join(msgs, "; "))
}

// tsvReader encodes records, as the driver reads, in LOAD DATA's default
// format: tab between fields, newline after rows, backslash escapes, \N
// for NULL.
type tsvReader struct {
	ctx  context.Context
	ch   <-chan arrow.Record
	rec  arrow.Record
	c    txCols
	i    int
	buf  []byte
	off  int
	rows int64
	err  error
	eof  bool
}

func (r *tsvReader) Read(p []byte) (int, error) {
	for r.off >= len(r.buf) {
		if r.err != nil {
			return 0, r.err
		}
		if r.eof {
			return 0, io.EOF
		}
		r.fill(max(len(p), 64<<10))
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}

// fill encodes rows until the buffer holds at least size bytes or the
// records end.
func (r *tsvReader) fill(size int) {
	r.buf, r.off = r.buf[:0], 0
	for len(r.buf) < size {
		if r.rec == nil {
			rec, ok := <-r.ch
			if !ok {
				// Closed early when the run failed: do not let the server
				// commit a partial load.
				if err := context.Cause(r.ctx); err != nil {
					r.err = err
				} else {
					r.eof = true
				}
				return
			}
			r.rec, r.c, r.i = rec, columns(rec), 0
		}
		for ; r.i < r.c.n && len(r.buf) < size; r.i++ {
			r.buf = appendTSVRow(r.buf, &r.c, r.i)
			r.rows++
		}
		if r.i == r.c.n {
			r.rec.Release()
			r.rec = nil
		}
	}
}

func (r *tsvReader) release() {
	if r.rec != nil {
		r.rec.Release()
		r.rec = nil
	}
}

func appendTSVRow(b []byte, c *txCols, i int) []byte {
	b = strconv.AppendInt(b, c.id[i], 10)
	b = append(b, '\t')
	b = strconv.AppendInt(b, c.card[i], 10)
	b = append(b, '\t')
	b = mysqlstore.AppendLoadText(b, c.merchant.Value(i))
	b = append(b, '\t')
	b = appendTimestamp(b, c.ts[i])
	b = append(b, '\t')
	b = txpipe.Money(c.amount[i]).Append(b)
	b = append(b, '\t')
	b = mysqlstore.AppendLoadText(b, c.location.Value(i))
	b = append(b, '\t')
	b = mysqlstore.AppendLoadText(b, c.typ.Value(i))
	b = append(b, '\t')
	if c.related.IsNull(i) {
		b = append(b, '\\', 'N')
	} else {
		b = mysqlstore.AppendLoadText(b, c.related.Value(i))
	}
	b = append(b, '\t')
	b = mysqlstore.AppendLoadText(b, c.status.Value(i))
	b = append(b, '\t')
	b = txpipe.Money(c.pending[i]).Append(b)
	b = append(b, '\t')
	b = mysqlstore.AppendLoadText(b, c.decl.Value(i))
	b = append(b, '\t')
	b = strconv.AppendInt(b, c.seq[i], 10)
	return append(b, '\n')
}

// inserter writes rows with multi-row INSERT statements; the statement for
// a full chunk is prepared once.
type inserter struct {
	tx    *sql.Tx
	table string
	cols  string
	ncol  int
	per   int
	stmt  *sql.Stmt
	args  []any
	rows  int
	done  int64 // rows written before the pending ones
}

func newInserter(tx *sql.Tx, table, cols string, ncol int) *inserter {
	return &inserter{tx: tx, table: table, cols: cols, ncol: ncol, per: max(1, 12000/ncol)}
}

func (in *inserter) query(rows int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO `" + in.table + "` (" + in.cols + ") VALUES ")
	row := "(" + strings.Repeat("?,", in.ncol-1) + "?)"
	for i := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(row)
	}
	return b.String()
}

func (in *inserter) add(ctx context.Context, vals ...any) error {
	in.args = append(in.args, vals...)
	in.rows++
	if in.rows == in.per {
		return in.flush(ctx)
	}
	return nil
}

func (in *inserter) flush(ctx context.Context) error {
	if in.rows == 0 {
		return nil
	}
	var err error
	if in.rows == in.per {
		if in.stmt == nil {
			in.stmt, err = in.tx.PrepareContext(ctx, in.query(in.per))
		}
		if err == nil {
			_, err = in.stmt.ExecContext(ctx, in.args...)
		}
	} else {
		_, err = in.tx.ExecContext(ctx, in.query(in.rows), in.args...)
	}
	if err != nil {
		return fmt.Errorf("insert into %s rows %d-%d: %w", in.table, in.done+1, in.done+int64(in.rows), err)
	}
	in.done += int64(in.rows)
	clear(in.args)
	in.args, in.rows = in.args[:0], 0
	return nil
}

func (in *inserter) close() {
	if in.stmt != nil {
		in.stmt.Close()
	}
}

// insertTx writes the records into table with multi-row INSERTs in one
// transaction: the fallback when the server refuses LOAD DATA LOCAL.
func insertTx(ctx context.Context, conn *sql.Conn, table string, ch <-chan arrow.Record) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("insert into %s: %w", table, err)
	}
	defer tx.Rollback()
	in := newInserter(tx, table, txColumnList, numTxCols)
	defer in.close()
	var buf []byte
	for rec := range ch {
		c := columns(rec)
		for i := 0; i < c.n && err == nil; i++ {
			// The strings are copied: the record's memory is released below.
			buf = appendTimestamp(buf[:0], c.ts[i])
			var related any
			if c.related.IsValid(i) {
				related = strings.Clone(c.related.Value(i))
			}
			err = in.add(ctx, c.id[i], c.card[i], strings.Clone(c.merchant.Value(i)), string(buf),
				txpipe.Money(c.amount[i]).String(), strings.Clone(c.location.Value(i)), strings.Clone(c.typ.Value(i)),
				related, strings.Clone(c.status.Value(i)), txpipe.Money(c.pending[i]).String(),
				strings.Clone(c.decl.Value(i)), c.seq[i])
		}
		rec.Release()
		if err != nil {
			return err
		}
	}
	if err := in.flush(ctx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("insert into %s: commit: %w", table, err)
	}
	return nil
}
