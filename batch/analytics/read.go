package analytics

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Errors of Source, for the serving layer to map to status codes
// (errors.Is): ErrUnknownView 404, ErrNotBuilt 404 (or 503), ErrBadQuery 400.
var (
	ErrUnknownView = errors.New("analytics: no such view")
	ErrNotBuilt    = errors.New("analytics: the view has not been built yet (run txpipe batch)")
	ErrBadQuery    = errors.New("analytics: bad query")
)

// Query filters the rows of a view.
type Query struct {
	// From and To (YYYY-MM-DD, inclusive, either may be empty) keep the
	// rows whose DateColumn lies between them; a view without a
	// DateColumn refuses them (ErrBadQuery).
	From, To string
	// Limit is the most rows returned (0: all). The rows come in the
	// view's order, so a limit keeps the first ones (the largest drops,
	// the most lost sales, the earliest days...).
	Limit int
}

func (q Query) check(v View) error {
	if q.Limit < 0 {
		return fmt.Errorf("%w: limit %d is negative", ErrBadQuery, q.Limit)
	}
	if (q.From != "" || q.To != "") && v.DateColumn == "" {
		return fmt.Errorf("%w: view %s has no date column to filter with from/to", ErrBadQuery, v.Name)
	}
	for _, d := range []struct{ name, v string }{{"from", q.From}, {"to", q.To}} {
		if _, ok := ParseDay(d.v); d.v != "" && !ok {
			return fmt.Errorf("%w: %s %q is not a date (YYYY-MM-DD)", ErrBadQuery, d.name, d.v)
		}
	}
	return nil
}

func (q Query) keep(day string) bool {
	return (q.From == "" || day >= q.From) && (q.To == "" || day <= q.To)
}

// Info describes a view and whether it has been built.
type Info struct {
	View
	// Built says whether the view's file (or table) exists: it is then
	// the output of the last batch run that computed analytics.
	Built bool
}

// Result holds rows of a view: each field is the text of the CSV file,
// "" for NULL.
type Result struct {
	View View
	Rows [][]string
}

// Source reads the analytics views of a results directory or a database.
type Source interface {
	// List returns every view, in catalog order.
	List(ctx context.Context) ([]Info, error)
	// Read returns the rows of the view named name that q keeps.
	Read(ctx context.Context, name string, q Query) (*Result, error)
}

// Files reads the views from the CSV files of a results directory.
func Files(dir string) Source { return fileSource{dir} }

// MySQL reads the views from the analytics_* tables of db.
func MySQL(db *sql.DB) Source { return mysqlSource{db} }

type fileSource struct{ dir string }

func (s fileSource) List(ctx context.Context) ([]Info, error) {
	var out []Info
	for _, v := range views {
		_, err := os.Stat(filepath.Join(s.dir, v.File()))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("analytics: %w", err)
		}
		out = append(out, Info{View: v, Built: err == nil})
	}
	return out, nil
}

func (s fileSource) Read(ctx context.Context, name string, q Query) (*Result, error) {
	v, ok := Lookup(name)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownView, name)
	}
	if err := q.check(v); err != nil {
		return nil, err
	}
	path := filepath.Join(s.dir, v.File())
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotBuilt, path)
	}
	if err != nil {
		return nil, fmt.Errorf("analytics: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReader(f))
	r.FieldsPerRecord = len(v.Columns)
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("analytics: read %s:1: %w", path, err)
	}
	if !slices.Equal(header, v.ColumnNames()) {
		return nil, fmt.Errorf("analytics: %s:1: the columns %v are not the view's %v (written by another version?)", path, header, v.ColumnNames())
	}
	dc := v.Index(v.DateColumn)
	res := &Result{View: v}
	for line := 2; q.Limit == 0 || len(res.Rows) < q.Limit; line++ {
		if line%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("analytics: read %s:%d: %w", path, line, err)
		}
		if dc >= 0 && !q.keep(rec[dc]) {
			continue
		}
		res.Rows = append(res.Rows, rec)
	}
	return res, nil
}

type mysqlSource struct{ db *sql.DB }

// errNoTable is MySQL's and MariaDB's "table doesn't exist".
const errNoTable = 1146

func (s mysqlSource) List(ctx context.Context) ([]Info, error) {
	have := map[string]bool{}
	rows, err := s.db.QueryContext(ctx, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'analytics\\_%'")
	if err != nil {
		return nil, fmt.Errorf("analytics: list the tables: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("analytics: list the tables: %w", err)
		}
		have[strings.ToLower(t)] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("analytics: list the tables: %w", err)
	}
	var out []Info
	for _, v := range views {
		out = append(out, Info{View: v, Built: have[v.Table()]})
	}
	return out, nil
}

func (s mysqlSource) Read(ctx context.Context, name string, q Query) (*Result, error) {
	v, ok := Lookup(name)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownView, name)
	}
	if err := q.check(v); err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString("SELECT ")
	for i, c := range v.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("`" + c.Name + "`")
	}
	b.WriteString(" FROM `" + v.Table() + "`")
	var args []any
	var where []string
	if q.From != "" {
		where = append(where, "`"+v.DateColumn+"` >= ?")
		args = append(args, q.From)
	}
	if q.To != "" {
		where = append(where, "`"+v.DateColumn+"` <= ?")
		args = append(args, q.To)
	}
	if len(where) > 0 {
		b.WriteString(" WHERE " + strings.Join(where, " AND "))
	}
	b.WriteString(" ORDER BY " + RowNumber)
	if q.Limit > 0 {
		b.WriteString(" LIMIT ?")
		args = append(args, q.Limit)
	}
	rows, err := s.db.QueryContext(ctx, b.String(), args...)
	if err != nil {
		var me *mysql.MySQLError
		if errors.As(err, &me) && me.Number == errNoTable {
			return nil, fmt.Errorf("%w: table %s", ErrNotBuilt, v.Table())
		}
		return nil, fmt.Errorf("analytics: read %s: %w", v.Table(), err)
	}
	defer rows.Close()
	res := &Result{View: v}
	vals := make([]any, len(v.Columns))
	ptrs := make([]any, len(v.Columns))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("analytics: read %s row %d: %w", v.Table(), len(res.Rows)+1, err)
		}
		rec := make([]string, len(vals))
		for i, x := range vals {
			rec[i], err = sqlText(x)
			if err != nil {
				return nil, fmt.Errorf("analytics: read %s row %d column %s: %w", v.Table(), len(res.Rows)+1, v.Columns[i].Name, err)
			}
		}
		res.Rows = append(res.Rows, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("analytics: read %s: %w", v.Table(), err)
	}
	return res, nil
}

// sqlText is the CSV text of a value scanned from MySQL.
func sqlText(x any) (string, error) {
	switch x := x.(type) {
	case nil:
		return "", nil
	case []byte:
		return string(x), nil
	case string:
		return x, nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case time.Time:
		return x.Format(DateLayout), nil
	}
	return "", fmt.Errorf("unexpected %T", x)
}

// WriteCSV writes the rows as the view's CSV file does: a header, then
// the rows.
func (r *Result) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(r.View.ColumnNames()); err != nil {
		return err
	}
	if err := cw.WriteAll(r.Rows); err != nil { // WriteAll flushes
		return err
	}
	return cw.Error()
}

// WriteJSON writes {"view": name, "columns": [{"name", "type"}...],
// "rows": [{column: value, ...}...]}: integers, money and decimals as JSON
// numbers (exactly the CSV's digits), dates and text as strings, NULL as
// null. Object keys are in column order.
func (r *Result) WriteJSON(w io.Writer) error {
	bw := bufio.NewWriter(w)
	type col struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		Nullable bool   `json:"nullable"`
		Doc      string `json:"doc"`
	}
	cols := make([]col, len(r.View.Columns))
	keys := make([][]byte, len(r.View.Columns))
	for i, c := range r.View.Columns {
		cols[i] = col{c.Name, c.Type.String(), c.Nullable, c.Doc}
		keys[i], _ = json.Marshal(c.Name)
	}
	head, err := json.Marshal(struct {
		View    string `json:"view"`
		Columns []col  `json:"columns"`
	}{r.View.Name, cols})
	if err != nil {
		return err
	}
	bw.Write(head[:len(head)-1])
	bw.WriteString(`,"rows":[`)
	var buf []byte
	for i, row := range r.Rows {
		buf = buf[:0]
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, '{')
		for j, v := range row {
			if j > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, keys[j]...)
			buf = append(buf, ':')
			c := r.View.Columns[j]
			switch {
			case v == "" && (c.Type != Text || c.Nullable):
				buf = append(buf, "null"...)
			case c.Type == Int || c.Type == Money || c.Type == Fixed:
				if !json.Valid([]byte(v)) {
					return fmt.Errorf("analytics: %s row %d: %s %q is not a number", r.View.Name, i+1, c.Name, v)
				}
				buf = append(buf, v...)
			default:
				s, _ := json.Marshal(v)
				buf = append(buf, s...)
			}
		}
		buf = append(buf, '}')
		if _, err := bw.Write(buf); err != nil {
			return err
		}
	}
	bw.WriteString("]}\n")
	return bw.Flush()
}
