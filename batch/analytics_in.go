package batch

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/serving/mysqlstore"
)

// What the analytics read besides the master data and the stream: the
// rejected rows (for the rejected-row rate), the stream's staging table
// (for latency percentiles, where it exists) and the customers' optional
// age and gender.
const (
	// StagingFile is the stream's staging data in CSV mode, in the
	// results directory; StagingTable in MySQL mode. Both are optional.
	StagingFile  = "event_staging.csv"
	StagingTable = "event_staging"
	// DemographicsTable holds the optional age and gender of customers in
	// MySQL mode (customers.csv's optional age and gender columns in CSV
	// mode); LoadDemographics fills it.
	DemographicsTable = "customer_demographics"
)

// Columns of the staging data: when the event happened at its origin and
// when it was registered in the warehouse.
const (
	stagingOrigin     = "event_date_origin"
	stagingRegistered = "event_dw_regdate"
)

var stagingLayouts = []string{"2006-01-02 15:04:05.999999999", time.RFC3339Nano}

func parseStagingTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	for _, l := range stagingLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// addLatency adds one staging row; a row whose times do not parse is
// counted as invalid.
func (a *analyzer) addLatency(origin, registered string) {
	o, ok1 := parseStagingTime(origin)
	r, ok2 := parseStagingTime(registered)
	if !ok1 || !ok2 {
		a.total.latencyInvalid++
		return
	}
	a.total.latency.Add(r.Sub(o).Microseconds())
}

// csvHeader opens a CSV file and returns its reader and the position of
// each column of its header; ok is false when the file does not exist.
func csvHeader(path string) (f *os.File, r *csv.Reader, cols map[string]int, ok bool, err error) {
	f, err = os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil, false, nil
	}
	if err != nil {
		return nil, nil, nil, false, fmt.Errorf("read %s: %w", path, err)
	}
	r = csv.NewReader(bufio.NewReader(f))
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	header, err := r.Read()
	if err == io.EOF {
		return f, r, map[string]int{}, true, nil
	}
	if err != nil {
		f.Close()
		return nil, nil, nil, false, fmt.Errorf("read %s:1: %w", path, err)
	}
	cols = map[string]int{}
	for i, h := range header {
		cols[strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))] = i
	}
	return f, r, cols, true, nil
}

// field returns field i of rec, "" when the row is short.
func field(rec []string, i int, ok bool) string {
	if !ok || i >= len(rec) {
		return ""
	}
	return rec[i]
}

// readAnalyticsCSV reads the rejected rows and the staging data of the
// results directory and the demographics of the dataset directory.
func (a *analyzer) readCSV(m *txpipe.Master, dataDir, resultsDir string) error {
	// Rejected rows: every row of results/rejected_transactions.csv.
	path := filepath.Join(resultsDir, csvfile.RejectedFile)
	f, r, _, ok, err := csvHeader(path)
	if err != nil {
		return err
	}
	if ok {
		defer f.Close()
		for {
			_, err := r.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				return fmt.Errorf("read %s: %w", path, err)
			}
			a.total.rejected++
		}
	}
	// Staging.
	path = filepath.Join(resultsDir, StagingFile)
	sf, sr, cols, ok, err := csvHeader(path)
	if err != nil {
		return err
	}
	if ok {
		defer sf.Close()
		oi, ok1 := cols[stagingOrigin]
		ri, ok2 := cols[stagingRegistered]
		if ok1 && ok2 {
			a.total.latencySource = path
			for {
				rec, err := sr.Read()
				if err == io.EOF {
					break
				}
				if err != nil {
					return fmt.Errorf("read %s: %w", path, err)
				}
				a.addLatency(field(rec, oi, true), field(rec, ri, true))
			}
		}
	}
	// Demographics: customers.csv's optional age and gender columns.
	path = filepath.Join(dataDir, csvfile.CustomersFile)
	cf, cr, cols, ok, err := csvHeader(path)
	if err != nil || !ok {
		return err
	}
	defer cf.Close()
	ai, hasAge := cols["age"]
	gi, hasGender := cols["gender"]
	if !hasAge && !hasGender {
		return nil
	}
	a.startDemographics(m)
	idc := cols["customer_id"]
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		id, ok := txpipe.ParseID(field(rec, idc, true))
		if !ok {
			return fmt.Errorf("read %s:%d: customer_id %q is not a positive integer", path, line, field(rec, idc, true))
		}
		a.setDemographics(id, field(rec, ai, hasAge), field(rec, gi, hasGender))
	}
}

func (a *analyzer) startDemographics(m *txpipe.Master) {
	a.total.demographics = true
	a.total.age = make([]string, len(m.Customers))
	a.total.gender = make([]string, len(m.Customers))
	a.custIdx = make(map[int64]int, len(m.Customers))
	for i, c := range m.Customers {
		a.custIdx[c.ID] = i
	}
}

// setDemographics records a customer's age and gender; unknown customers
// are ignored (they have no transactions).
func (a *analyzer) setDemographics(id int64, age, gender string) {
	if i, ok := a.custIdx[id]; ok {
		a.total.age[i] = strings.TrimSpace(age)
		a.total.gender[i] = strings.TrimSpace(gender)
	}
}

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// readMySQL reads the rejected rows, the staging table (when it exists)
// and the demographics inside the batch's read transaction.
func (a *analyzer) readMySQL(ctx context.Context, q queryer, m *txpipe.Master) error {
	if err := q.QueryRowContext(ctx, "SELECT COUNT(*) FROM rejected_transactions").Scan(&a.total.rejected); err != nil {
		return fmt.Errorf("read rejected_transactions: %w", err)
	}
	var n int
	err := q.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME IN (?, ?)",
		StagingTable, stagingOrigin, stagingRegistered).Scan(&n)
	if err != nil {
		return fmt.Errorf("look for %s: %w", StagingTable, err)
	}
	if n == 2 {
		a.total.latencySource = StagingTable
		err := queryRows(ctx, q, StagingTable, "SELECT "+stagingOrigin+", "+stagingRegistered+" FROM "+StagingTable, func(rows *sql.Rows, _ int) error {
			var o, r sql.Null[any]
			if err := rows.Scan(&o, &r); err != nil {
				return err
			}
			a.addLatency(timeText(o), timeText(r))
			return nil
		})
		if err != nil {
			return err
		}
	}
	first := true
	return queryRows(ctx, q, DemographicsTable, "SELECT customer_id, age, gender FROM "+DemographicsTable+" ORDER BY customer_id", func(rows *sql.Rows, _ int) error {
		var id int64
		var age sql.NullInt64
		var gender sql.NullString
		if err := rows.Scan(&id, &age, &gender); err != nil {
			return err
		}
		if first {
			a.startDemographics(m)
			first = false
		}
		ageText := ""
		if age.Valid {
			ageText = strconv.FormatInt(age.Int64, 10)
		}
		a.setDemographics(id, ageText, gender.String)
		return nil
	})
}

// timeText is the text of a DATETIME scanned as any (a time.Time with
// parseTime, else its text).
func timeText(v sql.Null[any]) string {
	switch x := v.V.(type) {
	case time.Time:
		return x.UTC().Format("2006-01-02 15:04:05.999999999")
	case []byte:
		return string(x)
	case string:
		return x
	}
	return ""
}

// LoadDemographics replaces the customer_demographics table with the
// optional age and gender columns of dataDir/customers.csv (emptying it
// when the file has neither), in one transaction. It returns the rows
// loaded.
func LoadDemographics(ctx context.Context, db *sql.DB, dataDir string) (int64, error) {
	path := filepath.Join(dataDir, csvfile.CustomersFile)
	f, r, cols, ok, err := csvHeader(path)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("read %s: %w", path, fs.ErrNotExist)
	}
	defer f.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("load %s: %w", DemographicsTable, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "DELETE FROM "+DemographicsTable); err != nil {
		return 0, fmt.Errorf("load %s: %w", DemographicsTable, err)
	}
	ai, hasAge := cols["age"]
	gi, hasGender := cols["gender"]
	var n int64
	if hasAge || hasGender {
		idc := cols["customer_id"]
		line := 1
		rows := func(row []any) ([]any, error) {
			rec, err := r.Read()
			line++
			if err == io.EOF {
				return row, io.EOF
			}
			if err != nil {
				return row, fmt.Errorf("read %s: %w", path, err)
			}
			id, ok := txpipe.ParseID(field(rec, idc, true))
			if !ok {
				return row, fmt.Errorf("read %s:%d: customer_id %q is not a positive integer", path, line, field(rec, idc, true))
			}
			var age, gender any
			if s := strings.TrimSpace(field(rec, ai, hasAge)); s != "" {
				v, err := strconv.ParseInt(s, 10, 64)
				if err != nil || v < 0 || v > 150 {
					return row, fmt.Errorf("read %s:%d: age %q is not an age in years", path, line, s)
				}
				age = v
			}
			if s := strings.TrimSpace(field(rec, gi, hasGender)); s != "" {
				gender = s
			}
			return append(row, id, age, gender), nil
		}
		n, _, err = mysqlstore.BulkLoad(ctx, tx, DemographicsTable, []string{"customer_id", "age", "gender"}, false, insertBatchRows,
			mysqlstore.BulkSource{Rows: rows})
		if err != nil {
			return 0, fmt.Errorf("load %s: %w", DemographicsTable, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("load %s: commit: %w", DemographicsTable, err)
	}
	return n, nil
}
