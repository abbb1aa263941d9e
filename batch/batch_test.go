package batch

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/batch/analytics"
	"github.com/txpipe/txpipe/internal/mysqltest"
	"github.com/txpipe/txpipe/internal/reftest"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/serving/mysqlstore"
)

var quiet = slog.New(slog.DiscardHandler)

func fixedClock() func() time.Time {
	t := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return func() time.Time { t = t.Add(time.Second); return t }
}

// csvRun runs the stream and the batch in CSV mode over the reference
// dataset and returns the results directory.
func csvRun(t *testing.T, mem memory.Allocator, batchRows int) (string, Summary) {
	t.Helper()
	dir := t.TempDir()
	runStream(t, reftest.Data(t), dir)
	sum, err := Run(context.Background(), Options{DataDir: reftest.Data(t), ResultsDir: dir, Parquet: true,
		Alloc: mem, BatchRows: batchRows, Log: quiet, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	return dir, sum
}

func TestCSVModeMatchesReference(t *testing.T) {
	mem := checkedAlloc(t)
	dir, sum := csvRun(t, mem, 64)
	for _, f := range viewFiles {
		reftest.CompareFile(t, filepath.Join(dir, f), filepath.Join(reftest.Results(t), f))
	}
	if sum.Transactions != 400 || sum.Approved+sum.Declined != 400 || sum.Cards != 54 || sum.Customers != 30 {
		t.Errorf("summary %+v", sum)
	}
	if sum.Cutoff == "" || !strings.Contains(sum.String(), "400 rows") {
		t.Errorf("summary %q", sum)
	}
	t.Log(sum)

	// A second run changes nothing but the runs record.
	before := snapshotFiles(t, dir)
	if _, err := Run(context.Background(), Options{DataDir: reftest.Data(t), ResultsDir: dir, Parquet: true,
		Alloc: mem, BatchRows: 1000, Log: quiet, Now: fixedClock()}); err != nil {
		t.Fatal(err)
	}
	after := snapshotFiles(t, dir)
	for name, b := range before {
		if name != RunsFile && !bytes.Equal(b, after[name]) {
			t.Errorf("%s changed on the second run", name)
		}
	}
	if len(after) != len(before) {
		t.Errorf("files %d, then %d", len(before), len(after))
	}
	runs := readCSV(t, filepath.Join(dir, RunsFile))
	if len(runs) != 2 || runs[0][0] != "1" || runs[1][0] != "2" || runs[1][5] != statusOK || runs[1][3] != "400" {
		t.Errorf("runs %q", runs)
	}
}

func TestCSVModeStreamErrors(t *testing.T) {
	dir := t.TempDir()
	runStream(t, reftest.Data(t), dir)
	path := filepath.Join(dir, csvfile.StreamFile)
	b, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(b), "\n")

	bad := func(line int, from, to string) {
		t.Helper()
		l := append([]string{}, lines...)
		if !strings.Contains(l[line-1], from) {
			t.Fatalf("line %d %q has no %q", line, l[line-1], from)
		}
		l[line-1] = strings.Replace(l[line-1], from, to, 1)
		os.WriteFile(path, []byte(strings.Join(l, "")), 0o644)
	}
	for _, tc := range []struct {
		line     int
		from, to string
		want     string
	}{
		{5, ",pending,", ",maybe,", "stream_transactions.csv:5: column status"},
		{7, "2025-", "2025/", "stream_transactions.csv:7"},
	} {
		bad(tc.line, tc.from, tc.to)
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		_, err := Run(context.Background(), Options{DataDir: reftest.Data(t), ResultsDir: dir, Alloc: mem, BatchRows: 2, Log: quiet})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
		mem.AssertSize(t, 0)
	}
	// An unknown card is named with its row.
	l := append([]string{}, lines...)
	f := strings.SplitN(l[3], ",", 3)
	l[3] = f[0] + ",999999," + f[2]
	os.WriteFile(path, []byte(strings.Join(l, "")), 0o644)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	_, err := Run(context.Background(), Options{DataDir: reftest.Data(t), ResultsDir: dir, Alloc: mem, BatchRows: 2, Log: quiet})
	if err == nil || !strings.Contains(err.Error(), "row 3") || !strings.Contains(err.Error(), "card 999999") {
		t.Errorf("error %v", err)
	}
	mem.AssertSize(t, 0)
	for _, f := range viewFiles {
		if _, err := os.Stat(filepath.Join(dir, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s written by a failed run", f)
		}
	}
	assertNoTemp(t, dir)
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left", e.Name())
		}
	}
}

func TestMySQLMode(t *testing.T) {
	mem := checkedAlloc(t)
	csvDir, _ := csvRun(t, mem, 64)
	db, cfg := newDBWithConfig(t)
	s := runStream(t, reftest.Data(t), t.TempDir())
	loadMySQL(t, db, s)

	dir := t.TempDir()
	var logs bytes.Buffer
	opts := Options{DB: db, ResultsDir: dir, Parquet: true, Alloc: mem, BatchRows: 64, Now: fixedClock(),
		Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	sum, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if logs.Len() > 0 { // e.g. LOAD DATA refused: the fallback is tested below
		t.Errorf("warnings: %s", logs.String())
	}
	t.Log(sum)
	for _, f := range viewFiles {
		got, _ := os.ReadFile(filepath.Join(dir, f))
		want, _ := os.ReadFile(filepath.Join(csvDir, f))
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs between MySQL mode and CSV mode", f)
		}
		reftest.CompareFile(t, filepath.Join(dir, f), filepath.Join(reftest.Results(t), f))
	}
	assertTablesMatchCSV(t, db, dir)
	// The cut-offs: every partition's last row, in the summary, the view
	// swapped in with the others, the runs record, and the same file as in
	// CSV mode.
	if want := s.wantCutoffs(); len(want) != reftest.Partitions || fmt.Sprint(sum.Cutoffs) != fmt.Sprint(want) {
		t.Errorf("cut-offs %v, want %v", sum.Cutoffs, want)
	}
	if got, want := queryStrings(t, db, "SELECT topic, `partition`, next_offset FROM batch_cutoffs ORDER BY `partition`"), cutoffRows(sum.Cutoffs, ""); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("batch_cutoffs %q, want %q", got, want)
	}
	if got, want := queryStrings(t, db, "SELECT topic, `partition`, next_offset, run_id FROM batch_run_cutoffs ORDER BY `partition`"), cutoffRows(sum.Cutoffs, "1"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("batch_run_cutoffs %q, want %q", got, want)
	}
	got, _ := os.ReadFile(filepath.Join(dir, csvfile.CutoffsFile))
	want, _ := os.ReadFile(filepath.Join(csvDir, csvfile.CutoffsFile))
	if len(got) == 0 || !bytes.Equal(got, want) {
		t.Errorf("%s differs between MySQL mode and CSV mode:\n%s\n%s", csvfile.CutoffsFile, got, want)
	}
	sums := checksums(t, db)
	files := snapshotFiles(t, dir)

	// Again, with another batch size and with INSERT instead of LOAD DATA:
	// nothing changes.
	for _, insert := range []bool{false, true} {
		o := opts
		o.BatchRows, o.forceInsert = 1000, insert
		if _, err := Run(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		if got := checksums(t, db); fmt.Sprint(got) != fmt.Sprint(sums) {
			t.Errorf("insert=%v: checksums %v, first run %v", insert, got, sums)
		}
		for name, b := range snapshotFiles(t, dir) {
			if !bytes.Equal(b, files[name]) {
				t.Errorf("insert=%v: %s changed", insert, name)
			}
		}
	}
	// A pool of two connections is enough (one loader); one is not. A DSN
	// with parseTime gives the same views.
	pcfg := cfg.Clone()
	pcfg.ParseTime = true
	small, err := sql.Open("mysql", pcfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	small.SetMaxOpenConns(2)
	o := opts
	o.DB = small
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if got := checksums(t, db); fmt.Sprint(got) != fmt.Sprint(sums) {
		t.Errorf("two connections: checksums %v, first run %v", got, sums)
	}
	small.SetMaxOpenConns(1)
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "needs 2") {
		t.Errorf("one connection: error %v", err)
	}

	runs := queryStrings(t, db, "SELECT run_id, status, rows_read, cutoff, IFNULL(`error`, '') FROM batch_runs ORDER BY run_id")
	if len(runs) != 4 {
		t.Fatalf("runs %q", runs)
	}
	for _, r := range runs {
		if r[1] != statusOK || r[2] != "400" || r[3] != sum.Cutoff || r[4] != "" {
			t.Errorf("run %q", r)
		}
	}
	if left := queryStrings(t, db, "SHOW TABLES LIKE '%\\_next'"); len(left) > 0 {
		t.Errorf("tables left: %q", left)
	}
}

// TestFailureKeepsViews fails runs at several points, in MySQL mode (which
// also writes the CSVs): the previous files and tables stay, and the run is
// recorded as failed.
func TestFailureKeepsViews(t *testing.T) {
	mem := checkedAlloc(t)
	db := newDB(t)
	s := runStream(t, reftest.Data(t), t.TempDir())
	loadMySQL(t, db, s)
	dir := t.TempDir()
	opts := Options{DB: db, ResultsDir: dir, Parquet: true, Alloc: mem, BatchRows: 50, Log: quiet}
	if _, err := Run(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	files, sums := snapshotFiles(t, dir), checksums(t, db)

	// New inputs, so that a run that got through would change the views.
	if _, err := db.Exec("UPDATE cards SET current_balance = current_balance + 1000"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("DELETE FROM stream_transactions WHERE transaction_id % 7 = 0"); err != nil {
		t.Fatal(err)
	}
	injected := errors.New("injected failure")
	cases := []struct {
		name   string
		insert bool
		hook   func(cancel context.CancelFunc) func(string, int64) error
		want   error
	}{
		{"error after 100 rows", false, func(context.CancelFunc) func(string, int64) error {
			return func(p string, rows int64) error {
				if rows >= 100 {
					return injected
				}
				return nil
			}
		}, injected},
		{"cancel after 150 rows", false, func(cancel context.CancelFunc) func(string, int64) error {
			return func(p string, rows int64) error {
				if rows >= 150 {
					cancel()
				}
				return nil
			}
		}, context.Canceled},
		{"cancel after 150 rows, INSERT", true, func(cancel context.CancelFunc) func(string, int64) error {
			return func(p string, rows int64) error {
				if rows >= 150 {
					cancel()
				}
				return nil
			}
		}, context.Canceled},
		{"error before commit", false, func(context.CancelFunc) func(string, int64) error {
			return func(p string, rows int64) error {
				if p == "commit" {
					return injected
				}
				return nil
			}
		}, injected},
	}
	for _, tc := range cases {
		ctx, cancel := context.WithCancel(context.Background())
		o := opts
		o.hook, o.forceInsert = tc.hook(cancel), tc.insert
		_, err := Run(ctx, o)
		cancel()
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: error %v, want %v", tc.name, err, tc.want)
		}
		if got := checksums(t, db); fmt.Sprint(got) != fmt.Sprint(sums) {
			t.Errorf("%s: tables changed: %v, before %v", tc.name, got, sums)
		}
		now := snapshotFiles(t, dir)
		for name, b := range files {
			if !bytes.Equal(b, now[name]) {
				t.Errorf("%s: %s changed", tc.name, name)
			}
		}
		if len(now) != len(files) {
			t.Errorf("%s: %d files, before %d", tc.name, len(now), len(files))
		}
		last := queryStrings(t, db, "SELECT status, IFNULL(`error`, ''), finished_at IS NOT NULL FROM batch_runs ORDER BY run_id DESC LIMIT 1")[0]
		if last[0] != statusFailed || !strings.Contains(last[1], tc.want.Error()) || last[2] != "1" {
			t.Errorf("%s: run recorded %q", tc.name, last)
		}
		if left := queryStrings(t, db, "SHOW TABLES LIKE '%\\_next'"); len(left) > 0 {
			t.Errorf("%s: tables left: %q", tc.name, left)
		}
	}

	// A run that gets through replaces them.
	sum, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := checksums(t, db); got[batchTable] == sums[batchTable] || got[cardsTable] == sums[cardsTable] {
		t.Errorf("tables unchanged after a good run")
	}
	if sum.Transactions >= 400 {
		t.Errorf("summary %v", sum)
	}
	assertTablesMatchCSV(t, db, dir)
}

func TestCSVModeFailureKeepsFiles(t *testing.T) {
	mem := checkedAlloc(t)
	dir, _ := csvRun(t, mem, 64)
	files := snapshotFiles(t, dir)
	// A changed stream file, so that a full run would change the views.
	p := filepath.Join(dir, csvfile.StreamFile)
	b := files[csvfile.StreamFile]
	os.WriteFile(p, b[:bytes.LastIndexByte(b[:len(b)-1], '\n')+1], 0o644)
	files[csvfile.StreamFile], _ = os.ReadFile(p)
	for _, point := range []string{"rows", "commit"} {
		_, err := Run(context.Background(), Options{DataDir: reftest.Data(t), ResultsDir: dir, Parquet: true, Alloc: mem, BatchRows: 64, Log: quiet,
			hook: func(p string, rows int64) error {
				if p == point && rows >= 128 {
					return errors.New("disk full")
				}
				return nil
			}})
		if err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("%s: error %v", point, err)
		}
		now := snapshotFiles(t, dir)
		for name, b := range files {
			if name != RunsFile && !bytes.Equal(b, now[name]) {
				t.Errorf("%s: %s changed", point, name)
			}
		}
		runs := readCSV(t, filepath.Join(dir, RunsFile))
		if last := runs[len(runs)-1]; last[5] != statusFailed || !strings.Contains(last[6], "disk full") {
			t.Errorf("%s: run recorded %q", point, last)
		}
	}
	assertNoTemp(t, dir)
}

// TestParquet reads the Parquet files back and compares them with the CSV
// files.
func TestParquet(t *testing.T) {
	mem := checkedAlloc(t)
	dir, _ := csvRun(t, mem, 64)
	for _, f := range viewFiles {
		want := readCSV(t, filepath.Join(dir, f))
		got := readParquet(t, mem, filepath.Join(dir, parquetName(f)))
		if len(got) != len(want) {
			t.Fatalf("%s: %d rows, CSV %d", f, len(got), len(want))
		}
		for i := range want {
			if strings.Join(got[i], "\x1f") != strings.Join(want[i][:len(got[i])], "\x1f") {
				t.Fatalf("%s row %d: parquet %q, CSV %q", f, i+1, got[i], want[i])
			}
		}
	}
}

// readParquet reads a file with pqarrow and formats its rows as the CSV
// files do (money in the _cents columns, timestamps as written).
func readParquet(t *testing.T, mem memory.Allocator, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pf, err := file.NewParquetReader(f)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 100}, mem)
	if err != nil {
		t.Fatal(err)
	}
	rr, err := fr.GetRecordReader(context.Background(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	var out [][]string
	for rr.Next() {
		rec := rr.Record()
		for i := 0; i < int(rec.NumRows()); i++ {
			var row []string
			for c, col := range rec.Columns() {
				name := rec.ColumnName(c)
				if name == "seq" {
					continue
				}
				if col.IsNull(i) {
					row = append(row, "")
					continue
				}
				switch a := col.(type) {
				case *array.Decimal128:
					scale := int(a.DataType().(*arrow.Decimal128Type).Scale)
					row = append(row, analytics.FormatFixed(int64(a.Value(i).LowBits()), scale)) // |v| < 2^63
				case *array.Date32:
					row = append(row, analytics.Day(a.Value(i)).String())
				case *array.Int64:
					if strings.HasSuffix(name, "_cents") {
						row = append(row, txpipe.Money(a.Value(i)).String())
					} else {
						row = append(row, strconv.FormatInt(a.Value(i), 10))
					}
				case *array.String:
					row = append(row, a.Value(i))
				case *array.Timestamp:
					if a.DataType().(*arrow.TimestampType).Unit != arrow.Microsecond {
						t.Fatalf("%s: %s is %s", path, name, a.DataType())
					}
					row = append(row, a.Value(i).ToTime(arrow.Microsecond).Format(txpipe.TimestampLayout))
				default:
					t.Fatalf("%s: column %s of type %s", path, name, col.DataType())
				}
			}
			out = append(out, row)
		}
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return out
}

func TestPublish(t *testing.T) {
	db := newDB(t)
	s := runStream(t, reftest.Data(t), t.TempDir())
	loadMySQL(t, db, s)
	limits := map[int64]txpipe.Money{}
	for _, c := range s.master.Cards {
		limits[c.ID] = c.CreditLimit
	}
	var got []txpipe.Card
	sum, err := Run(context.Background(), Options{DB: db, ResultsDir: t.TempDir(), Log: quiet,
		Publish: func(ctx context.Context, changed []txpipe.Card) error {
			got = changed
			// The views are in place when Publish is called.
			for _, c := range changed {
				var limit string
				if err := db.QueryRowContext(ctx, "SELECT credit_limit FROM cards_updated WHERE card_id = ?", c.ID).Scan(&limit); err != nil {
					return err
				}
				if limit != c.CreditLimit.String() {
					return fmt.Errorf("card %d: table has limit %s, published %s", c.ID, limit, c.CreditLimit)
				}
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || int64(len(got)) != sum.CardsRelimited {
		t.Fatalf("published %d cards, summary %v", len(got), sum)
	}
	for _, c := range got {
		if c.CreditLimit >= limits[c.ID] {
			t.Errorf("card %d: limit %s, was %s", c.ID, c.CreditLimit, limits[c.ID])
		}
	}

	// A failing Publish fails the run, after the views were swapped.
	_, err = Run(context.Background(), Options{DB: db, ResultsDir: t.TempDir(), Log: quiet,
		Publish: func(context.Context, []txpipe.Card) error { return errors.New("broker down") }})
	if err == nil || !strings.Contains(err.Error(), "broker down") {
		t.Errorf("error %v", err)
	}
}

func TestMySQLStreamErrors(t *testing.T) {
	db := newDB(t)
	s := runStream(t, reftest.Data(t), t.TempDir())
	loadMySQL(t, db, s)
	mem := checkedAlloc(t)
	if _, err := db.Exec("UPDATE stream_transactions SET status = 'maybe' WHERE transaction_id = 42"); err != nil {
		t.Fatal(err)
	}
	_, err := Run(context.Background(), Options{DB: db, ResultsDir: t.TempDir(), Alloc: mem, BatchRows: 16, Log: quiet})
	if err == nil || !strings.Contains(err.Error(), `stream_transactions row`) || !strings.Contains(err.Error(), `(transaction_id "42"): status "maybe"`) {
		t.Errorf("error %v", err)
	}
	// Two runs at once: the second is refused.
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := acquireLock(context.Background(), conn); err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), Options{DB: db, ResultsDir: t.TempDir(), Log: quiet})
	if err == nil || !strings.Contains(err.Error(), "another batch run") {
		t.Errorf("error %v", err)
	}
	releaseConn(conn)
}

func TestParsers(t *testing.T) {
	for _, s := range []string{"0.00", "-0.00", "131.76", "-232.74", "9999999999.99", "10000000000.00", "12", "12.5", "1e5", "", "-", "12.505", "12.500"} {
		want, werr := txpipe.ParseMoney(s)
		got, gerr := parseMoney([]byte(s))
		if got != want || (werr == nil) != (gerr == nil) {
			t.Errorf("parseMoney(%q) = %v, %v; ParseMoney %v, %v", s, got, gerr, want, werr)
		}
	}
	for _, s := range []string{"2025-04-01 01:21:09", "2024-02-29 23:59:59", "2025-02-29 00:00:00", "2025-13-01 00:00:00",
		"2025-04-31 00:00:00", "2025-04-01 24:00:00", "2025-04-01T01:21:09", "0000-01-01 00:00:00", "9999-12-31 23:59:59", "2025-4-01 01:21:09"} {
		want, wok := txpipe.ParseTimestamp(s)
		got, gok := parseTimestamp([]byte(s))
		if gok != wok || (gok && int64(got) != want.UnixMicro()) {
			t.Errorf("parseTimestamp(%q) = %v, %v; ParseTimestamp %v, %v", s, got, gok, want, wok)
		}
		if gok {
			if f := string(appendTimestamp(nil, got)); f != s {
				t.Errorf("appendTimestamp(%q) = %q", s, f)
			}
		}
	}
	for _, s := range []string{"1", "42", "123456789012345678", "1234567890123456789", "-5", "+5", "", "x"} {
		want, werr := strconv.ParseInt(s, 10, 64)
		got, ok := parseInt([]byte(s))
		if ok != (werr == nil) || got != want {
			t.Errorf("parseInt(%q) = %v, %v", s, got, ok)
		}
	}
}

func TestMigrationDownUp(t *testing.T) {
	db, err := sql.Open("mysql", mysqltest.NewDatabase(t).FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p, err := mysqlstore.NewMigrations(db)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 1); err != nil {
		t.Fatal(err)
	}
	for _, like := range []string{"batch%", "analytics%", "customer\\_demographics"} {
		if left := queryStrings(t, db, "SHOW TABLES LIKE '"+like+"'"); len(left) > 0 {
			t.Errorf("tables left after down: %q", left)
		}
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
}

// cutoffRows are the rows of batch_cutoffs for cut-offs of run.
func cutoffRows(cut map[int32]int64, run string) [][]string {
	var out [][]string
	for p := int32(0); p < reftest.Partitions; p++ {
		if n, ok := cut[p]; ok {
			row := []string{DefaultTopic, fmt.Sprint(p), fmt.Sprint(n)}
			if run != "" {
				row = append(row, run)
			}
			out = append(out, row)
		}
	}
	return out
}
