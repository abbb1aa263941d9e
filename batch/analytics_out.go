package batch

import (
	"bufio"
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/decimal128"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/batch/analytics"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/serving/mysqlstore"
)

// analyticsTables are the MySQL tables of the analytics views.
func analyticsTables() []string {
	var out []string
	for _, v := range analytics.Views() {
		out = append(out, v.Table())
	}
	return out
}

// appendText appends the text of a value as the CSV files hold it (NULL:
// nothing).
func appendText(b []byte, c *analytics.Column, v cell) []byte {
	if v.null {
		return b
	}
	switch c.Type {
	case analytics.Text:
		return append(b, v.s...)
	case analytics.Int:
		return strconv.AppendInt(b, v.i, 10)
	case analytics.Money:
		return txpipe.Money(v.i).Append(b)
	case analytics.Fixed:
		return analytics.AppendFixed(b, v.i, c.Scale)
	case analytics.Date:
		return append(b, analytics.Day(v.i).String()...)
	}
	return b
}

// writeCSV writes every row of the view, as csvfile.Writer.Write would
// (only text is ever quoted: the other values are digits, signs, points
// and dashes).
func (v *viewData) writeCSV(w *csvfile.Writer) error {
	var (
		row []cell
		buf []byte
	)
	for i := range v.n {
		row = v.row(i, row[:0])
		if len(row) != len(v.view.Columns) {
			return fmt.Errorf("view %s row %d has %d values for %d columns", v.view.Name, i+1, len(row), len(v.view.Columns))
		}
		for j := range row {
			if j > 0 {
				buf = append(buf, ',')
			}
			if c := &v.view.Columns[j]; c.Type == analytics.Text && !row[j].null {
				buf = csvfile.AppendField(buf, row[j].s)
			} else {
				buf = appendText(buf, c, row[j])
			}
		}
		buf = append(buf, '\n')
		if len(buf) >= csvChunk || i == v.n-1 {
			if err := w.WriteEncoded(buf); err != nil {
				return fmt.Errorf("row %d: %w", i+1, err)
			}
			buf = buf[:0]
		}
	}
	return nil
}

// arrowSchema is the Parquet schema of a view: money as int64 cents in
// <name>_cents (as in the other views), fixed-point numbers as
// decimal128(18, scale), dates as date32.
func arrowSchema(v analytics.View) *arrow.Schema {
	fields := make([]arrow.Field, len(v.Columns))
	for i, c := range v.Columns {
		f := arrow.Field{Name: c.Name, Nullable: c.Nullable}
		switch c.Type {
		case analytics.Text:
			f.Type = arrow.BinaryTypes.String
		case analytics.Int:
			f.Type = arrow.PrimitiveTypes.Int64
		case analytics.Money:
			f.Type, f.Name = arrow.PrimitiveTypes.Int64, c.Name+"_cents"
		case analytics.Fixed:
			f.Type = &arrow.Decimal128Type{Precision: 18, Scale: int32(c.Scale)}
		case analytics.Date:
			f.Type = arrow.FixedWidthTypes.Date32
		}
		fields[i] = f
	}
	return arrow.NewSchema(fields, nil)
}

// writeParquet writes the view in records of up to rowGroupRows rows.
func (v *viewData) writeParquet(p *parquetOut, mem memory.Allocator) error {
	schema := arrowSchema(v.view)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	var row []cell
	flush := func() error {
		rec := b.NewRecord()
		defer rec.Release()
		if rec.NumRows() == 0 {
			return nil
		}
		return p.write(rec)
	}
	for i := range v.n {
		row = v.row(i, row[:0])
		for j, c := range v.view.Columns {
			x := row[j]
			fb := b.Field(j)
			if x.null {
				fb.AppendNull()
				continue
			}
			switch c.Type {
			case analytics.Text:
				fb.(*array.StringBuilder).Append(x.s)
			case analytics.Int, analytics.Money:
				fb.(*array.Int64Builder).Append(x.i)
			case analytics.Fixed:
				fb.(*array.Decimal128Builder).Append(decimal128.FromI64(x.i))
			case analytics.Date:
				fb.(*array.Date32Builder).Append(arrow.Date32(x.i))
			}
		}
		if (i+1)%rowGroupRows == 0 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// mysqlColumns are the columns of the view's table, row_no first.
func mysqlColumns(v analytics.View) []string {
	return append([]string{analytics.RowNumber}, v.ColumnNames()...)
}

// writeMySQL loads the view into its <table>_next inside tx.
func (r *run) writeAnalyticsMySQL(ctx context.Context, tx *sql.Tx, v *viewData) error {
	table := v.view.Table() + "_next"
	text := func(w *bufio.Writer) (int64, error) {
		var row []cell
		var buf []byte
		for i := range v.n {
			row = v.row(i, row[:0])
			buf = strconv.AppendInt(buf[:0], int64(i+1), 10)
			for j := range row {
				buf = append(buf, '\t')
				c := &v.view.Columns[j]
				switch {
				case row[j].null:
					buf = append(buf, '\\', 'N')
				case c.Type == analytics.Text:
					buf = mysqlstore.AppendLoadText(buf, row[j].s)
				default:
					buf = appendText(buf, c, row[j])
				}
			}
			buf = append(buf, '\n')
			if _, err := w.Write(buf); err != nil {
				return int64(i), err
			}
		}
		return int64(v.n), nil
	}
	i := 0
	var cells []cell
	rows := func(row []any) ([]any, error) {
		if i >= v.n {
			return row, io.EOF
		}
		cells = v.row(i, cells[:0])
		i++
		row = append(row, int64(i))
		for j, c := range v.view.Columns {
			x := cells[j]
			switch {
			case x.null:
				row = append(row, nil)
			case c.Type == analytics.Text:
				row = append(row, x.s)
			case c.Type == analytics.Int:
				row = append(row, x.i)
			default:
				row = append(row, string(appendText(nil, &c, x)))
			}
		}
		return row, nil
	}
	_, refused, err := mysqlstore.BulkLoad(ctx, tx, table, mysqlColumns(v.view), r.useLoad(), insertBatchRows,
		mysqlstore.BulkSource{Text: text, Rows: rows})
	r.noteRefused(refused)
	if err != nil {
		return fmt.Errorf("write %s: %w", table, err)
	}
	return nil
}

// writeViews writes views: with files, to temporary CSV (and Parquet)
// files; with conn, to their <table>_next tables in one transaction.
func (r *run) writeViews(ctx context.Context, views []viewData, files bool, conn *sql.Conn,
	addCSV func(string, []string) (*csvfile.Writer, error), addParquet func(string, *arrow.Schema) (*parquetOut, error)) error {
	// The files on both cores while the tables load.
	fileErr := make(chan error, 1)
	go func() {
		if !files {
			fileErr <- nil
			return
		}
		fileErr <- parallel(len(views), func(i int) error {
			v := &views[i]
			w, err := addCSV(v.view.File(), v.view.ColumnNames())
			if err != nil {
				return err
			}
			if err := v.writeCSV(w); err != nil {
				return fmt.Errorf("analytics: %s: %w", v.view.File(), err)
			}
			if r.o.Parquet {
				p, err := addParquet(v.view.File(), arrowSchema(v.view))
				if err != nil {
					return err
				}
				if err := v.writeParquet(p, r.o.Alloc); err != nil {
					return fmt.Errorf("analytics: %w", err)
				}
			}
			return context.Cause(ctx)
		})
	}()
	err := r.writeViewTables(ctx, views, conn)
	if ferr := <-fileErr; ferr != nil {
		return ferr
	}
	return err
}

// writeViewTables writes views to their <table>_next tables in one
// transaction through conn (nothing when conn is nil).
func (r *run) writeViewTables(ctx context.Context, views []viewData, conn *sql.Conn) error {
	if conn == nil {
		return nil
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("analytics: write the tables: %w", err)
	}
	defer tx.Rollback()
	for i := range views {
		if err := r.writeAnalyticsMySQL(ctx, tx, &views[i]); err != nil {
			return fmt.Errorf("analytics: %w", err)
		}
		if err := context.Cause(ctx); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("analytics: write the tables: commit: %w", err)
	}
	return nil
}

// parallel calls fn for every i below n on two goroutines (the batch's
// two cores), each taking the next i in turn, and returns the first error
// (after which no further i is started).
func parallel(n int, fn func(i int) error) error {
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		errs [2]error
	)
	for g := range errs {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if errs[g] = fn(i); errs[g] != nil {
					next.Store(int64(n))
					return
				}
			}
		})
	}
	wg.Wait()
	return cmp.Or(errs[0], errs[1])
}
