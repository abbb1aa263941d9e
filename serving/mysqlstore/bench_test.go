package mysqlstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/txpipe/txpipe"
)

// benchRows is the number of rows per benchmark operation
// (TXPIPE_BENCH_ROWS overrides it).
func benchRows() int {
	if n, err := strconv.Atoi(os.Getenv("TXPIPE_BENCH_ROWS")); err == nil && n > 0 {
		return n
	}
	return 100_000
}

func truncateStream(b *testing.B, db *DB) {
	b.Helper()
	if _, err := db.SQL.Exec("TRUNCATE TABLE stream_transactions"); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkLoadDataRaw is the yardstick: one LOAD DATA LOCAL of
// pre-formatted rows into the empty stream_transactions, in a transaction.
func BenchmarkLoadDataRaw(b *testing.B) {
	db := openTest(b)
	n := benchRows()
	results := makeResults(n, 1)
	var data []byte
	for i := range results {
		data = AppendStreamRow(data, &results[i])
	}
	stmt, err := loadDataStmt(bulkTable{name: "stream_transactions", cols: StreamColumns}, "bench-raw")
	if err != nil {
		b.Fatal(err)
	}
	mysql.RegisterReaderHandler("bench-raw", func() io.Reader { return bytes.NewReader(data) })
	defer mysql.DeregisterReaderHandler("bench-raw")
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		truncateStream(b, db)
		b.StartTimer()
		tx, err := db.SQL.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		res, err := tx.ExecContext(ctx, stmt)
		if err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
		if got, _ := res.RowsAffected(); got != int64(n) {
			b.Fatalf("loaded %d rows, want %d", got, n)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkWriteStream writes the same rows with WriteStream (one call,
// one transaction, with offsets) into the empty table, by each method.
func BenchmarkWriteStream(b *testing.B) {
	n := benchRows()
	results := makeResults(n, 1)
	offsets := []txpipe.Offset{{Topic: "validated", Partition: 0, Next: int64(n)}}
	b.Run("default", func(b *testing.B) { // what the sink gets: LOAD DATA … REPLACE where allowed
		db := openTest(b)
		ctx := context.Background()
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			truncateStream(b, db)
			b.StartTimer()
			if err := db.WriteStream(ctx, "bench", results, nil, offsets); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	for _, m := range streamModes {
		if m.mode == streamLoadData {
			continue // = default
		}
		batches := []int{500, 1000, 2000, 5000}
		for _, batch := range batches {
			b.Run(fmt.Sprintf("%s/batch=%d", m.name, batch), func(b *testing.B) {
				db := openTest(b, WithBatchRows(batch))
				ctx := context.Background()
				b.ResetTimer()
				for range b.N {
					b.StopTimer()
					truncateStream(b, db)
					b.StartTimer()
					if err := db.writeRows(ctx, m.mode, "bench", results, nil, offsets); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
			})
		}
	}
}

// BenchmarkWriteStreamVsRaw runs the raw LOAD DATA and WriteStream in
// turns on the same rows and reports both rates and their ratio, so that
// a busy machine affects both alike.
func BenchmarkWriteStreamVsRaw(b *testing.B) {
	n := benchRows()
	results := makeResults(n, 1)
	var data []byte
	for i := range results {
		data = AppendStreamRow(data, &results[i])
	}
	offsets := []txpipe.Offset{{Topic: "validated", Partition: 0, Next: int64(n)}}
	rawStmt, err := loadDataStmt(bulkTable{name: "stream_transactions", cols: StreamColumns}, "bench-pair")
	if err != nil {
		b.Fatal(err)
	}
	mysql.RegisterReaderHandler("bench-pair", func() io.Reader { return bytes.NewReader(data) })
	defer mysql.DeregisterReaderHandler("bench-pair")
	for _, m := range streamModes {
		for _, batch := range []int{1000, 2000} {
			if m.mode == streamLoadData && batch != 1000 {
				continue
			}
			b.Run(fmt.Sprintf("%s/batch=%d", m.name, batch), func(b *testing.B) {
				db := openTest(b, WithBatchRows(batch))
				ctx := context.Background()
				raw := func() time.Duration {
					truncateStream(b, db)
					start := time.Now()
					tx, err := db.SQL.BeginTx(ctx, nil)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := tx.ExecContext(ctx, rawStmt); err != nil {
						b.Fatal(err)
					}
					if err := tx.Commit(); err != nil {
						b.Fatal(err)
					}
					return time.Since(start)
				}
				write := func() time.Duration {
					truncateStream(b, db)
					start := time.Now()
					if err := db.writeRows(ctx, m.mode, "bench", results, nil, offsets); err != nil {
						b.Fatal(err)
					}
					return time.Since(start)
				}
				raw() // warm up
				write()
				var tRaw, tWrite time.Duration
				b.ResetTimer()
				for i := range b.N {
					if i%2 == 0 {
						tRaw += raw()
						tWrite += write()
					} else {
						tWrite += write()
						tRaw += raw()
					}
				}
				b.ReportMetric(float64(n*b.N)/tRaw.Seconds(), "raw-rows/s")
				b.ReportMetric(float64(n*b.N)/tWrite.Seconds(), "rows/s")
				b.ReportMetric(tRaw.Seconds()/tWrite.Seconds(), "ratio")
			})
		}
	}
}

// BenchmarkLoadTransactions loads a generated transactions.csv of
// benchRows rows, by each bulk path.
func BenchmarkLoadTransactions(b *testing.B) {
	n := benchRows()
	var buf bytes.Buffer
	buf.WriteString(txHeader)
	for _, r := range makeResults(n, 1) {
		r.CardID = 1 + r.CardID%50
		raw := r.Raw()
		fmt.Fprintf(&buf, "%s,%s,\"%s\",%s,%s,\"%s\",%s,%s\n", raw.TransactionID, raw.CardID,
			bytes.ReplaceAll([]byte(raw.Merchant), []byte(`"`), []byte(`""`)), raw.Timestamp, raw.Amount, raw.Location, raw.Type, raw.RelatedID)
	}
	path := writeFile(b, "transactions.csv", buf.String())
	for _, mode := range loadModes {
		b.Run(mode.name, func(b *testing.B) {
			db := openTest(b, mode.opt)
			ctx := context.Background()
			if err := db.LoadMaster(ctx, tinyMaster(50)); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				loaded, rejected, err := db.LoadTransactions(ctx, path)
				if err != nil {
					b.Fatal(err)
				}
				if loaded+len(rejected) != n {
					b.Fatalf("loaded %d + rejected %d != %d", loaded, len(rejected), n)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
