package bench

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/txpipe/txpipe/internal/mysqltest"
)

var built struct {
	once sync.Once
	dir  string
	path string
	err  error
	out  []byte
}

// buildBinary builds txpipe once per test binary run.
func buildBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "txpipe-bench-bin-")
		if built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "txpipe")
		cmd := exec.Command("go", "build", "-o", built.path, "./cmd/txpipe")
		cmd.Dir = ".." // the module root
		built.out, built.err = cmd.CombinedOutput()
	})
	if built.err != nil {
		t.Fatalf("go build: %v\n%s", built.err, built.out)
	}
	return built.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

var lineRE = regexp.MustCompile(`^bench: produce_ratio=(\d+\.\d\d) validate_ratio=(\d+\.\d\d) sink_ratio=(\d+\.\d\d) batch_ratio=(\d+\.\d\d) ` +
	`produce_rows_s=(\d+) validate_rows_s=(\d+) sink_rows_s=(\d+) batch_rows_s=(\d+) consume_rss_mib=(\d+) batch_rss_mib=(\d+) ` +
	`batch_load_ratio=(\d+\.\d\d) batch_csv_ratio=(\d+\.\d\d) batch_csv_rows_s=(\d+) batch_csv_analytics_ratio=(\d+\.\d\d) ` +
	`batch_csv_analytics_rows_s=(\d+) batch_csv_rss_mib=(\d+) alerts_ratio=(\d+\.\d\d) alerts_rows_s=(\d+)$`)

// lastLine checks the summary line and returns its values by name.
func lastLine(t *testing.T, out string) map[string]float64 {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	last := lines[len(lines)-1]
	m := lineRE.FindStringSubmatch(last)
	if m == nil {
		t.Fatalf("last line %q does not have the summary's format; output:\n%s", last, out)
	}
	names := []string{"produce_ratio", "validate_ratio", "sink_ratio", "batch_ratio", "produce_rows_s", "validate_rows_s",
		"sink_rows_s", "batch_rows_s", "consume_rss_mib", "batch_rss_mib", "batch_load_ratio", "batch_csv_ratio", "batch_csv_rows_s",
		"batch_csv_analytics_ratio", "batch_csv_analytics_rows_s", "batch_csv_rss_mib", "alerts_ratio", "alerts_rows_s"}
	v := map[string]float64{}
	for i, n := range names {
		f, err := strconv.ParseFloat(m[i+1], 64)
		if err != nil {
			t.Fatal(err)
		}
		v[n] = f
	}
	return v
}

func quietLog(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

func TestRunWithMySQL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds txpipe and runs every stage")
	}
	server := mysqltest.Server(t)
	bin := buildBinary(t)
	profiles := t.TempDir()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{Transactions: 3000, Cards: 200, MySQL: server, Binary: bin, Profile: profiles, Out: &out, Log: quietLog(t)})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Logf("\n%s", out.String())
	v := lastLine(t, out.String())
	for k, x := range v {
		if x <= 0 {
			t.Errorf("%s = %v, want > 0", k, x)
		}
	}
	for _, s := range rep.Stages() {
		if s.Skipped != "" || s.RawRate <= 0 || s.Rate <= 0 || s.Ratio <= 0 {
			t.Errorf("stage %+v: want every rate > 0", s)
		}
		if s.Rows != 3000 || s.RawRows != 3000 {
			t.Errorf("stage %s: %d raw rows, %d txpipe rows, want 3000", s.Name, s.RawRows, s.Rows)
		}
	}
	if rep.ConsumeRSSMiB <= 0 || rep.BatchRSSMiB <= 0 {
		t.Errorf("RSS consume %.1f MiB, batch %.1f MiB: want > 0", rep.ConsumeRSSMiB, rep.BatchRSSMiB)
	}
	if rep.Line() != strings.TrimRight(out.String(), "\n")[strings.LastIndex(strings.TrimRight(out.String(), "\n"), "\n")+1:] {
		t.Errorf("Report.Line() %q is not the printed last line", rep.Line())
	}
	if rep.AlertRecords == 0 || rep.StolenCards != 20 {
		t.Errorf("validate+alerts: %d records on the alerts topic, %d stolen cards: want alerts from the 20 stolen cards", rep.AlertRecords, rep.StolenCards)
	}
	for _, s := range []Stage{rep.BatchLoad, rep.BatchCSV, rep.BatchCSVAnalytics, rep.Alerts} {
		if s.RawRate <= 0 || s.Rate <= 0 || s.Ratio <= 0 || s.Rows != 3000 || s.RawRows != 3000 {
			t.Errorf("stage %+v: want every rate > 0 and 3000 rows", s)
		}
	}
	for _, name := range []string{"validate.pprof", "sink.pprof", "batch-csv.pprof", "batch-csv-analytics.pprof"} {
		if fi, err := os.Stat(filepath.Join(profiles, name)); err != nil || fi.Size() == 0 {
			t.Errorf("CPU profile %s: %v", name, err)
		}
	}
	// Other runs may share the server: look for this run's databases only.
	after := benchDatabases(t, server)
	if len(rep.Databases) == 0 {
		t.Error("the report names no database the run created")
	}
	for _, name := range rep.Databases {
		if after[name] {
			t.Errorf("database %s left behind", name)
		}
	}
}

func TestRunWithoutMySQL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds txpipe and runs every stage")
	}
	bin := buildBinary(t)
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{Transactions: 3000, Cards: 200, Binary: bin, Out: &out, Log: quietLog(t)})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Logf("\n%s", out.String())
	if n := strings.Count(out.String(), "skipped (no database)"); n != 2 {
		t.Errorf("%d stages say skipped (no database), want 2 (sink, batch)", n)
	}
	v := lastLine(t, out.String())
	for _, k := range []string{"produce_ratio", "validate_ratio", "produce_rows_s", "validate_rows_s", "consume_rss_mib",
		"batch_csv_ratio", "batch_csv_rows_s", "batch_csv_analytics_ratio", "batch_csv_analytics_rows_s", "batch_csv_rss_mib",
		"alerts_ratio", "alerts_rows_s"} {
		if v[k] <= 0 {
			t.Errorf("%s = %v, want > 0", k, v[k])
		}
	}
	for _, k := range []string{"sink_ratio", "batch_ratio", "sink_rows_s", "batch_rows_s", "batch_rss_mib", "batch_load_ratio"} {
		if v[k] != 0 {
			t.Errorf("%s = %v, want 0 (skipped)", k, v[k])
		}
	}
	if rep.Sink.Skipped == "" || rep.Batch.Skipped == "" {
		t.Errorf("sink and batch should be skipped: %+v %+v", rep.Sink, rep.Batch)
	}
}

// TestRunLarge is the real measurement, run only on request:
//
//	TXPIPE_BENCH_TRANSACTIONS=100000 TXPIPE_BENCH_CARDS=5000 TXPIPE_BENCH_PROFILE=/tmp/prof \
//	  go test -run TestRunLarge -v -timeout 60m ./bench/
func TestRunLarge(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("TXPIPE_BENCH_TRANSACTIONS"))
	if n <= 0 {
		t.Skip("set TXPIPE_BENCH_TRANSACTIONS (and TXPIPE_BENCH_CARDS, TXPIPE_BENCH_PROFILE) to run")
	}
	cards, _ := strconv.Atoi(os.Getenv("TXPIPE_BENCH_CARDS"))
	if cards <= 0 {
		cards = max(1, n/20)
	}
	o := Options{Transactions: n, Cards: cards, Binary: buildBinary(t), Profile: os.Getenv("TXPIPE_BENCH_PROFILE"),
		Out: os.Stdout, Log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	if os.Getenv("TXPIPE_BENCH_NO_MYSQL") == "" {
		o.MySQL = mysqltest.Server(t)
	}
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
}

// benchDatabases lists the server's txpipe_bench_ databases.
func benchDatabases(t *testing.T, server *mysql.Config) map[string]bool {
	t.Helper()
	db, err := sql.Open("mysql", server.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SHOW DATABASES LIKE 'txpipe\\_bench\\_%'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		out[name] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
