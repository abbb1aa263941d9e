package mysqlstore

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/go-sql-driver/mysql"
	"github.com/txpipe/txpipe"
)

// A rowSource yields the rows of a bulk load one at a time: it appends the
// next row's values to row and returns it, or returns io.EOF after the last
// row. Values are nil (NULL), string, int64 or txpipe.Money.
type rowSource func(row []any) ([]any, error)

// sliceSource yields n rows built by fill.
func sliceSource(n int, fill func(i int, row []any) []any) rowSource {
	i := 0
	return func(row []any) ([]any, error) {
		if i >= n {
			return row, io.EOF
		}
		i++
		return fill(i-1, row), nil
	}
}

// bulkTable describes where a bulk load goes.
type bulkTable struct {
	name   string   // table
	cols   []string // columns, in the order of the source's values
	update []string // with upsert: the columns ON DUPLICATE KEY UPDATE sets from VALUES()
	upsert bool     // replace rows with the same key instead of failing
	// keepFirst keeps the stored row of a key and skips the new one (the
	// caller counts the rows inserted).
	keepFirst bool
}

// load writes every row of src into the table inside tx: with LOAD DATA
// LOCAL INFILE streamed from a pipe, or, when the server does not allow it
// (or the DB was opened without it), with multi-row INSERT statements.
func (db *DB) load(ctx context.Context, tx *sql.Tx, t bulkTable, src rowSource) (int64, error) {
	if db.opts.loadData && !db.noLoadData.Load() {
		n, refused, err := db.loadData(ctx, tx, t, src)
		if !refused {
			return n, err
		}
		db.noteRefused(err)
	}
	return db.insertRows(ctx, tx, t, src, db.opts.insertBatch)
}

// noteRefused remembers that the server refused LOAD DATA LOCAL and
// says so in the log, once.
func (db *DB) noteRefused(err error) {
	db.noLoadData.Store(true)
	db.refusedOnce.Do(func() {
		db.log.Warn("the server refuses LOAD DATA LOCAL INFILE; bulk loads and stream writes use multi-row INSERT, which is slower. "+
			"Enable it with SET GLOBAL local_infile = 1 (or local_infile=1 in the server configuration)", "err", err)
	})
}

// loadDataRefused reports whether err says that LOAD DATA LOCAL is not
// allowed: MySQL 8's default local_infile=OFF (3948), MariaDB's and older
// MySQL's 1148, or a server that words it otherwise.
func loadDataRefused(err error) bool {
	switch mysqlErrNo(err) {
	case 1148, 3948, 3950:
		return true
	}
	if mysqlErrNo(err) != 0 {
		msg := strings.ToLower(err.Error())
		return strings.Contains(msg, "not allowed") || strings.Contains(msg, "local data is disabled") ||
			strings.Contains(msg, "local_infile")
	}
	return false
}

var readerSeq atomic.Int64

// errTestRefused is what MariaDB answers with local_infile off.
var errTestRefused = &mysql.MySQLError{Number: 1148, Message: "The used command is not allowed with this MariaDB version"}

// loadData runs one LOAD DATA LOCAL INFILE whose data a goroutine formats
// from src into a pipe while the driver sends it. refused reports that the
// server would not take LOAD DATA LOCAL at all (src is then untouched).
func (db *DB) loadData(ctx context.Context, tx *sql.Tx, t bulkTable, src rowSource) (n int64, refused bool, err error) {
	if db.testRefuse {
		return 0, true, errTestRefused
	}
	stmt, err := loadDataStmt(t, "")
	if err != nil {
		return 0, false, err
	}
	return runLoadData(ctx, tx, stmt, t.upsert, func(w *bufio.Writer) (int64, error) {
		return writeRows(ctx, w, src, db.testHookRows)
	})
}

// loadDataStmt is the LOAD DATA statement for t, reading the registered
// reader named name ("%s" placeholder when name is empty).
func loadDataStmt(t bulkTable, name string) (string, error) {
	table, err := quoteIdent(t.name)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("LOAD DATA LOCAL INFILE 'Reader::")
	if name == "" {
		b.WriteString("%s")
	} else {
		b.WriteString(name)
	}
	b.WriteString("' ")
	if t.upsert {
		b.WriteString("REPLACE ")
	}
	b.WriteString("INTO TABLE " + table + ` CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\t' ESCAPED BY '\\' LINES TERMINATED BY '\n' (`)
	for i, c := range t.cols {
		q, err := quoteIdent(c)
		if err != nil {
			return "", err
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(q)
	}
	b.WriteByte(')')
	return b.String(), nil
}

var errLoadAborted = errors.New("LOAD DATA stopped before the end of the data")

// runLoadData executes stmt (a LOAD DATA statement whose file name is the
// "%s" to fill in) with a fresh registered reader. produce writes the rows
// as text; it runs in its own goroutine only once the server asked for the
// data. Warnings (LOAD DATA LOCAL turns data errors into warnings) fail the
// load, as does a row count other than the one produced. refused reports
// that the server would not take LOAD DATA LOCAL at all.
func runLoadData(ctx context.Context, tx *sql.Tx, stmt string, replace bool, produce func(*bufio.Writer) (int64, error)) (n int64, refused bool, err error) {
	pr, pw := io.Pipe()
	var (
		done     = make(chan struct{})
		produced int64
		prodErr  error
	)
	started, res, err := execLoadData(ctx, tx, stmt, func() io.Reader {
		go func() {
			defer close(done)
			w := bufio.NewWriterSize(pw, 256<<10)
			produced, prodErr = produce(w)
			if prodErr == nil {
				prodErr = w.Flush()
			}
			pw.CloseWithError(prodErr) // nil: EOF
		}()
		return pr
	})
	pr.CloseWithError(errLoadAborted) // unblock the producer if the driver stopped reading
	if !started {
		return 0, err != nil && loadDataRefused(err), loadErr(err)
	}
	<-done
	if prodErr != nil && !errors.Is(prodErr, errLoadAborted) && !errors.Is(prodErr, io.ErrClosedPipe) {
		return 0, false, prodErr
	}
	if err == nil && prodErr != nil {
		err = prodErr
	}
	return finishLoadData(ctx, tx, res, err, replace, produced)
}

// runLoadDataBytes is runLoadData for rows already formatted in data.
func runLoadDataBytes(ctx context.Context, tx *sql.Tx, stmt string, replace bool, data []byte, rows int64) (n int64, refused bool, err error) {
	started, res, err := execLoadData(ctx, tx, stmt, func() io.Reader { return bytes.NewReader(data) })
	if !started {
		return 0, err != nil && loadDataRefused(err), loadErr(err)
	}
	return finishLoadData(ctx, tx, res, err, replace, rows)
}

// execLoadData runs the LOAD DATA statement stmt with a reader that open
// returns when the server asks for the data; started says whether it did.
func execLoadData(ctx context.Context, tx *sql.Tx, stmt string, open func() io.Reader) (started bool, res sql.Result, err error) {
	name := "txpipe-" + strconv.FormatInt(readerSeq.Add(1), 10)
	var asked atomic.Bool
	mysql.RegisterReaderHandler(name, func() io.Reader {
		if asked.Swap(true) {
			return strings.NewReader("") // asked twice: never happens
		}
		return open()
	})
	defer mysql.DeregisterReaderHandler(name)
	res, err = tx.ExecContext(ctx, fmt.Sprintf(stmt, name))
	return asked.Load(), res, err
}

func loadErr(err error) error {
	if err == nil {
		return errors.New("load data: the server never asked for the data")
	}
	return fmt.Errorf("load data: %w", err)
}

// finishLoadData checks the outcome of a LOAD DATA that sent rows rows.
func finishLoadData(ctx context.Context, tx *sql.Tx, res sql.Result, err error, replace bool, rows int64) (int64, bool, error) {
	if err != nil {
		return 0, false, fmt.Errorf("load data: %w", err)
	}
	if err := checkWarnings(ctx, tx); err != nil {
		return 0, false, err
	}
	if !replace {
		if n, err := res.RowsAffected(); err == nil && n != rows {
			return 0, false, fmt.Errorf("load data: the server took %d of %d rows", n, rows)
		}
	}
	return rows, false, nil
}

// checkWarnings fails when the last statement left warnings (notes, such as
// decimals rounded to the column's scale, are fine).
func checkWarnings(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, "SHOW WARNINGS LIMIT 5")
	if err != nil {
		return fmt.Errorf("load data: show warnings: %w", err)
	}
	defer rows.Close()
	var msgs []string
	for rows.Next() {
		var level, msg string
		var code int
		if err := rows.Scan(&level, &code, &msg); err != nil {
			return err
		}
		if strings.EqualFold(level, "note") || code == 1287 { // 1287: deprecated syntax
			continue
		}
		msgs = append(msgs, fmt.Sprintf("%s %d: %s", level, code, msg))
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(msgs) > 0 {
		return fmt.Errorf("load data: the server rejected values: %s", strings.Join(msgs, "; "))
	}
	return nil
}

// writeRows formats src as LOAD DATA text.
func writeRows(ctx context.Context, w *bufio.Writer, src rowSource, hook func(int)) (int64, error) {
	var (
		row []any
		buf []byte
		n   int64
		err error
	)
	for {
		row, err = src(row[:0])
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		buf = buf[:0]
		for i, v := range row {
			if i > 0 {
				buf = append(buf, '\t')
			}
			buf = appendText(buf, v)
		}
		buf = append(buf, '\n')
		if _, err := w.Write(buf); err != nil {
			return n, err
		}
		n++
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return n, err
			}
			if hook != nil {
				hook(int(n))
			}
		}
	}
}

// appendText appends v in LOAD DATA's text form: NULL is \N, and the
// escape character, the field and line terminators, carriage returns and
// NUL bytes are escaped with a backslash.
func appendText(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, '\\', 'N')
	case string:
		return AppendLoadText(b, v)
	case int64:
		return strconv.AppendInt(b, v, 10)
	case int:
		return strconv.AppendInt(b, int64(v), 10)
	case txpipe.Money:
		return v.Append(b)
	default:
		panic(fmt.Sprintf("mysqlstore: no text form for %T", v))
	}
}

// AppendLoadText appends s escaped for LOAD DATA text: backslash, tab,
// newline, carriage return and NUL become backslash escapes.
func AppendLoadText(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		var esc byte
		switch s[i] {
		case '\\':
			esc = '\\'
		case '\t':
			esc = 't'
		case '\n':
			esc = 'n'
		case '\r':
			esc = 'r'
		case 0:
			esc = '0'
		default:
			continue
		}
		b = append(b, s[start:i]...)
		b = append(b, '\\', esc)
		start = i + 1
	}
	return append(b, s[start:]...)
}

// sqlArg converts a source value to a statement argument.
func sqlArg(v any) any {
	if m, ok := v.(txpipe.Money); ok {
		return m.String()
	}
	return v
}

// insertSQL is a multi-row INSERT of rows rows into t.
func insertSQL(t bulkTable, rows int) (string, error) {
	table, err := quoteIdent(t.name)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("INSERT INTO " + table + " (")
	for i, c := range t.cols {
		q, err := quoteIdent(c)
		if err != nil {
			return "", err
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(q)
	}
	b.WriteString(") VALUES ")
	one := "(" + strings.Repeat("?,", len(t.cols)-1) + "?)"
	b.Grow(rows * (len(one) + 1))
	for i := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(one)
	}
	if t.upsert {
		b.WriteString(" ON DUPLICATE KEY UPDATE ")
		for i, c := range t.update {
			q, err := quoteIdent(c)
			if err != nil {
				return "", err
			}
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(q + "=VALUES(" + q + ")")
		}
	} else if t.keepFirst {
		q, err := quoteIdent(t.cols[0])
		if err != nil {
			return "", err
		}
		b.WriteString(" ON DUPLICATE KEY UPDATE " + q + "=" + q)
	}
	return b.String(), nil
}

// insertRows writes src with multi-row INSERT statements of batch rows.
func (db *DB) insertRows(ctx context.Context, tx *sql.Tx, t bulkTable, src rowSource, batch int) (int64, error) {
	var (
		full     string
		args     = make([]any, 0, batch*len(t.cols))
		row      []any
		n, inBat int64
	)
	flush := func() error {
		if inBat == 0 {
			return nil
		}
		q := full
		if inBat < int64(batch) || full == "" {
			var err error
			if q, err = insertSQL(t, int(inBat)); err != nil {
				return err
			}
			if inBat == int64(batch) {
				full = q
			}
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("insert into %s: %w", t.name, err)
		}
		n += inBat
		inBat, args = 0, args[:0]
		if db.testHookRows != nil {
			db.testHookRows(int(n))
		}
		return nil
	}
	for {
		var err error
		row, err = src(row[:0])
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, err
		}
		if len(row) != len(t.cols) {
			return n, fmt.Errorf("insert into %s: a row has %d values for %d columns", t.name, len(row), len(t.cols))
		}
		for _, v := range row {
			args = append(args, sqlArg(v))
		}
		if inBat++; inBat == int64(batch) {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	return n, flush()
}
