package batch

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/internal/mysqltest"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/serving/mysqlstore"
)

// Size of the generated benchmark data.
const (
	benchRows      = 200_000
	benchCards     = 10_000
	benchCustomers = 5_000
)

var bench struct {
	once  sync.Once
	db    *sql.DB
	admin *sql.DB
	name  string
	err   error
}

func TestMain(m *testing.M) {
	code := m.Run()
	passCleanup()
	if bench.admin != nil {
		bench.db.Close()
		if _, err := bench.admin.Exec("DROP DATABASE IF EXISTS `" + bench.name + "`"); err != nil {
			fmt.Fprintln(os.Stderr, "drop benchmark database:", err)
		}
		bench.admin.Close()
	}
	os.Exit(code)
}

// benchDB returns a database, shared by the benchmarks, holding generated
// master data and benchRows stream results.
func benchDB(b *testing.B) *sql.DB {
	b.Helper()
	cfg := mysqltest.Server(b)
	bench.once.Do(func() {
		bench.err = setupBench(cfg.FormatDSN(), func(name string) string {
			c := cfg.Clone()
			c.DBName = name
			return c.FormatDSN()
		})
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.db
}

func setupBench(adminDSN string, dsn func(string) string) error {
	var rb [6]byte
	rand.Read(rb[:])
	bench.name = "txpipe_bench_" + hex.EncodeToString(rb[:])
	admin, err := sql.Open("mysql", adminDSN)
	if err != nil {
		return err
	}
	if _, err := admin.Exec("CREATE DATABASE `" + bench.name + "`"); err != nil {
		admin.Close()
		return err
	}
	bench.admin = admin
	if bench.db, err = sql.Open("mysql", dsn(bench.name)); err != nil {
		return err
	}
	db := bench.db
	p, err := mysqlstore.NewMigrations(db)
	if err != nil {
		return err
	}
	if _, err := p.Up(context.Background()); err != nil {
		return err
	}
	rng := mrand.New(mrand.NewPCG(22, 2026))
	ins := func(table string, cols []string, n int, gen func(i int) []any) error {
		const per = 1000
		tx, err := db.Begin()
		if err != nil {
			return err
		}
		defer tx.Rollback()
		i := 0
		rows := func(row []any) ([]any, error) {
			if i >= n {
				return row, io.EOF
			}
			i++
			return append(row, gen(i-1)...), nil
		}
		if _, _, err := mysqlstore.BulkLoad(context.Background(), tx, table, cols, false, per, mysqlstore.BulkSource{Rows: rows}); err != nil {
			return err
		}
		return tx.Commit()
	}
	err = ins("credit_card_types", csvfile.CardTypeColumns, 3, func(i int) []any {
		return []any{i + 1, fmt.Sprintf("Type %d", i+1), 300, 850, "500.00", "50000.00", "0.00", "0.01"}
	})
	if err != nil {
		return err
	}
	err = ins("customers", csvfile.CustomerColumns, benchCustomers, func(i int) []any {
		return []any{i + 1, fmt.Sprintf("Customer %d", i+1), "555-0100", fmt.Sprintf("%d Main St, Springfield, NY %05d", i, 10000+rng.IntN(89999)),
			fmt.Sprintf("c%d@example.com", i+1), 300 + rng.IntN(550), txpipe.Money(rng.Int64N(20_000_000) * 100).String()}
	})
	if err != nil {
		return err
	}
	err = ins("cards", csvfile.CardColumns, benchCards, func(i int) []any {
		return []any{i + 1, 1 + i%benchCustomers, 1 + i%3, fmt.Sprintf("4000-0000-0000-%04d", i%10000), "12/29",
			txpipe.Money((10 + rng.Int64N(190)) * 10000).String(), txpipe.Money(rng.Int64N(100000)).String(), "2024-01-01"}
	})
	if err != nil {
		return err
	}
	merchants := []string{"Barrett LLC", "Davidson-Moreno", "Smith, Jones and Co", "Acme \"Stores\"", "Café Ñandú"}
	types := []string{"purchase", "refund", "bill_payment", "cash_advance"}
	ts := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
	return ins("stream_transactions", streamColumns, benchRows, func(i int) []any {
		ts = ts.Add(time.Duration(rng.IntN(3)) * time.Second)
		status, reason := txpipe.StatusPending, ""
		if rng.IntN(100) < 15 {
			status, reason = txpipe.StatusDeclined, string(txpipe.DeclineLocation)
		}
		var related any
		if rng.IntN(20) == 0 {
			related = fmt.Sprint(rng.IntN(i + 1))
		}
		return []any{i + 1, 1 + rng.IntN(benchCards), merchants[rng.IntN(len(merchants))], ts.Format(txpipe.TimestampLayout),
			txpipe.Money(rng.Int64N(200000) - 20000).String(), fmt.Sprintf("%d Lake Rd, Queens, NY %05d", rng.IntN(9999), 10000+rng.IntN(89999)),
			types[rng.IntN(len(types))], related, string(status), txpipe.Money(rng.Int64N(1_000_000)).String(), reason, i + 1}
	})
}

// rawSelect reads stream_transactions as the batch does, doing nothing
// with the rows.
func rawSelect(db *sql.DB) (int64, error) {
	rows, err := db.Query(streamQuery)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var raw [numTxCols]sql.RawBytes
	dest := make([]any, numTxCols)
	for i := range raw {
		dest[i] = &raw[i]
	}
	var n int64
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return n, err
		}
		n++
	}
	return n, rows.Err()
}

// peakHeap samples HeapInuse until stop is called and returns the maximum.
func peakHeap() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	finished := make(chan struct{})
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.HeapInuse > peak.Load() {
			peak.Store(ms.HeapInuse)
		}
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				sample()
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-finished
		sample()
		return peak.Load()
	}
}

func BenchmarkRawSelect(b *testing.B) {
	db := benchDB(b)
	if _, err := rawSelect(db); err != nil { // warm the buffer pool
		b.Fatal(err)
	}
	runtime.GC()
	stop := peakHeap()
	b.ResetTimer()
	var rows int64
	for range b.N {
		n, err := rawSelect(db)
		if err != nil {
			b.Fatal(err)
		}
		rows += n
	}
	b.StopTimer()
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(stop())/(1<<20), "peak-heap-MB")
}

func benchBatch(b *testing.B, parquet bool) {
	db := benchDB(b)
	dir := b.TempDir()
	o := Options{DB: db, ResultsDir: dir, Parquet: parquet, Log: quiet}
	if _, err := Run(context.Background(), o); err != nil { // warm up
		b.Fatal(err)
	}
	runtime.GC()
	stop := peakHeap()
	b.ResetTimer()
	var rows int64
	for range b.N {
		sum, err := Run(context.Background(), o)
		if err != nil {
			b.Fatal(err)
		}
		rows += sum.Transactions
	}
	b.StopTimer()
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(stop())/(1<<20), "peak-heap-MB")
}

// BenchmarkBatchMySQL is the whole batch in MySQL mode: stream read, CSV
// and table written, cards and customers re-scored, views swapped.
func BenchmarkBatchMySQL(b *testing.B) { benchBatch(b, false) }

// BenchmarkBatchMySQLParquet also writes the Parquet files.
func BenchmarkBatchMySQLParquet(b *testing.B) { benchBatch(b, true) }

// BenchmarkBatchVsRaw alternates a raw SELECT and a batch run and reports
// the ratio of their rates (batch rows/s ÷ raw rows/s).
func BenchmarkBatchVsRaw(b *testing.B) {
	db := benchDB(b)
	o := Options{DB: db, ResultsDir: b.TempDir(), Log: quiet}
	if _, err := Run(context.Background(), o); err != nil {
		b.Fatal(err)
	}
	var raw, batch time.Duration
	b.ResetTimer()
	for range b.N {
		t := time.Now()
		if _, err := rawSelect(db); err != nil {
			b.Fatal(err)
		}
		raw += time.Since(t)
		t = time.Now()
		if _, err := Run(context.Background(), o); err != nil {
			b.Fatal(err)
		}
		batch += time.Since(t)
	}
	b.ReportMetric(raw.Seconds()/batch.Seconds(), "batch/raw-rate")
	b.ReportMetric(float64(benchRows*b.N)/raw.Seconds(), "raw-rows/s")
	b.ReportMetric(float64(benchRows*b.N)/batch.Seconds(), "batch-rows/s")
}
