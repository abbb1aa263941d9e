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

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/compress"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/serving/mysqlstore"
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
	w   *csvfile.Writer
	row int64
	buf []byte
	ts  tsFormat
}

func (t *txCSV) consume(ch <-chan arrow.Record) error {
	for rec := range ch {
		err := t.write(rec)
		rec.Release()
		if err != nil {
			return err
		}
	}
	// Synced now, while the run goes on: the commit has less to wait for.
	return t.w.Sync()
}

// csvChunk is how many bytes of rows are encoded before they are written.
const csvChunk = 256 << 10

func (t *txCSV) write(rec arrow.Record) error {
	c := columns(rec)
	b := t.buf[:0]
	first := t.row + 1
	for i := 0; i < c.n; i++ {
		b = appendCSVRow(b, &c, i, &t.ts)
		if len(b) >= csvChunk || i == c.n-1 {
			if err := t.w.WriteEncoded(b); err != nil {
				return fmt.Errorf("rows %d-%d: %w", first, t.row+int64(i)+1, err)
			}
			b = b[:0]
		}
	}
	t.row += int64(c.n)
	t.buf = b
	return nil
}

// appendCSVRow appends row i as csvfile.AppendResult's fields written by
// csvfile.Writer.
func appendCSVRow(b []byte, c *txCols, i int, ts *tsFormat) []byte {
	b = strconv.AppendInt(b, c.id[i], 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, c.card[i], 10)
	b = append(b, ',')
	b = csvfile.AppendField(b, c.merchant.Value(i))
	b = append(b, ',')
	b = ts.append(b, c.ts[i]) // digits first, no comma: never quoted
	b = append(b, ',')
	b = txpipe.Money(c.amount[i]).Append(b)
	b = append(b, ',')
	b = csvfile.AppendField(b, c.location.Value(i))
	b = append(b, ',')
	b = csvfile.AppendField(b, c.typ.Value(i))
	b = append(b, ',')
	if c.related.IsValid(i) {
		b = csvfile.AppendField(b, c.related.Value(i))
	}
	b = append(b, ',')
	b = csvfile.AppendField(b, c.status.Value(i))
	b = append(b, ',')
	b = txpipe.Money(c.pending[i]).Append(b)
	b = append(b, ',')
	b = csvfile.AppendField(b, c.decl.Value(i))
	return append(b, '\n')
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

// txColumns are the columns of batch_transactions as written.
var txColumns = []string{"transaction_id", "card_id", "merchant_name", "timestamp", "amount", "location",
	"transaction_type", "related_transaction_id", "status", "pending_balance", "decline_reason", "seq"}

// insertBatchRows is the number of rows of one INSERT statement when the
// server refuses LOAD DATA LOCAL.
const insertBatchRows = 1000

// loadRecords writes the records into table in one transaction with the
// serving layer's bulk loader: LOAD DATA LOCAL INFILE (the rows encoded
// in its text form while the driver sends them) or, when useLoad is off
// or the server refuses it, multi-row INSERT. refused reports a refusal.
func loadRecords(ctx context.Context, conn *sql.Conn, table string, useLoad bool, ch <-chan arrow.Record) (refused bool, err error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("load %s: %w", table, err)
	}
	defer tx.Rollback()
	src := &recordSource{ctx: ctx, ch: ch}
	defer src.release()
	n, refused, err := mysqlstore.BulkLoad(ctx, tx, table, txColumns, useLoad, insertBatchRows,
		mysqlstore.BulkSource{Text: src.text, Rows: src.row})
	if err != nil {
		return refused, fmt.Errorf("load %s after row %d: %w", table, n, err)
	}
	if err := tx.Commit(); err != nil {
		return refused, fmt.Errorf("load %s: commit: %w", table, err)
	}
	return refused, nil
}

// recordSource hands the rows of the records on ch to the bulk loader.
// When ch is closed because the run failed, it fails too, so that a
// partial load is never committed.
type recordSource struct {
	ctx context.Context
	ch  <-chan arrow.Record
	rec arrow.Record
	c   txCols
	i   int
	buf []byte
	ts  tsFormat
}

// next makes sure a record with a row left is current; false at the end.
func (s *recordSource) next() (bool, error) {
	for s.rec == nil || s.i >= s.c.n {
		s.release()
		rec, ok := <-s.ch
		if !ok {
			if err := context.Cause(s.ctx); err != nil {
				return false, err
			}
			return false, nil
		}
		s.rec, s.c, s.i = rec, columns(rec), 0
	}
	return true, nil
}

// text writes every row in LOAD DATA's text form.
func (s *recordSource) text(w *bufio.Writer) (int64, error) {
	var n int64
	for {
		ok, err := s.next()
		if err != nil || !ok {
			return n, err
		}
		s.buf = s.buf[:0]
		for ; s.i < s.c.n && len(s.buf) < 64<<10; s.i++ {
			s.buf = appendTSVRow(s.buf, &s.c, s.i, &s.ts)
			n++
		}
		if _, err := w.Write(s.buf); err != nil {
			return n, err
		}
	}
}

// row yields the next row as values; the strings are copied, as the
// record is released before the INSERT that holds them runs.
func (s *recordSource) row(row []any) ([]any, error) {
	ok, err := s.next()
	if err != nil {
		return row, err
	}
	if !ok {
		return row, io.EOF
	}
	c, i := &s.c, s.i
	s.i++
	s.buf = s.ts.append(s.buf[:0], c.ts[i])
	var related any
	if c.related.IsValid(i) {
		related = strings.Clone(c.related.Value(i))
	}
	return append(row, c.id[i], c.card[i], strings.Clone(c.merchant.Value(i)), string(s.buf),
		txpipe.Money(c.amount[i]), strings.Clone(c.location.Value(i)), strings.Clone(c.typ.Value(i)),
		related, strings.Clone(c.status.Value(i)), txpipe.Money(c.pending[i]),
		strings.Clone(c.decl.Value(i)), c.seq[i]), nil
}

func (s *recordSource) release() {
	if s.rec != nil {
		s.rec.Release()
		s.rec = nil
	}
}

func appendTSVRow(b []byte, c *txCols, i int, ts *tsFormat) []byte {
	b = strconv.AppendInt(b, c.id[i], 10)
	b = append(b, '\t')
	b = strconv.AppendInt(b, c.card[i], 10)
	b = append(b, '\t')
	b = mysqlstore.AppendLoadText(b, c.merchant.Value(i))
	b = append(b, '\t')
	b = ts.append(b, c.ts[i])
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
