package batch

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/dataset"
	"github.com/txpipe/txpipe/serving/csvfile"
)

// The CPU benchmarks of the batch's parts run over a generated dataset
// of passRows transactions (as `txpipe bench` generates them, smaller),
// judged by the stream's rules and written as stream_transactions.csv;
// or over the dataset (data/) and stream results
// (results/stream_transactions.csv) of the directory
// TXPIPE_BENCH_DATA names, as `txpipe bench` leaves them.
const (
	passRows  = 200_000
	passCards = 10_000
)

var pass struct {
	once    sync.Once
	dir     string // data/ and results/
	tmp     bool   // dir is ours
	rows    int
	master  *txpipe.Master
	settled []arrow.Record // the stream file's records, settled
	err     error
}

func passData(b *testing.B) {
	b.Helper()
	pass.once.Do(func() {
		if pass.dir = os.Getenv("TXPIPE_BENCH_DATA"); pass.dir != "" {
			pass.master, pass.err = csvfile.ReadMaster(filepath.Join(pass.dir, "data"))
		} else {
			if pass.dir, pass.err = os.MkdirTemp("", "txpipe-pass-"); pass.err != nil {
				return
			}
			pass.tmp = true
			data := filepath.Join(pass.dir, "data")
			_, pass.err = dataset.Generate(context.Background(), data, dataset.Options{Customers: passCards * 5 / 8, Cards: passCards,
				Transactions: passRows, Seed: 2026})
			if pass.err == nil {
				pass.master = runStream(b, data, filepath.Join(pass.dir, "results")).master
			}
		}
		if pass.err != nil {
			return
		}
		r := &run{o: Options{Alloc: memory.DefaultAllocator}, recs: newRecycler(memory.DefaultAllocator), cardIdx: newCardIndex(pass.master.Cards), sums: make([]txpipe.Money, len(pass.master.Cards))}
		bld := newTxBuilder(memory.DefaultAllocator, DefaultBatchRows)
		defer bld.release()
		pass.err = readStreamCSV(filepath.Join(pass.dir, "results", csvfile.StreamFile), bld, cutoffs{}, func(rec arrow.Record) error {
			defer rec.Release()
			out, err := r.settle(rec)
			if err == nil {
				pass.settled = append(pass.settled, out)
				pass.rows += int(out.NumRows())
			}
			return err
		})
	})
	if pass.err != nil {
		b.Fatal(pass.err)
	}
}

func passCleanup() {
	for _, rec := range pass.settled {
		rec.Release()
	}
	if pass.tmp {
		os.RemoveAll(pass.dir)
	}
}

func reportRows(b *testing.B, rows int) {
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(rows*b.N), "ns/row")
}

// BenchmarkReadStreamCSV is the CSV read: stream_transactions.csv into
// records.
func BenchmarkReadStreamCSV(b *testing.B) {
	passData(b)
	path := filepath.Join(pass.dir, "results", csvfile.StreamFile)
	b.ResetTimer()
	for range b.N {
		bld := newTxBuilder(memory.DefaultAllocator, DefaultBatchRows)
		err := readStreamCSV(path, bld, cutoffs{}, func(rec arrow.Record) error { rec.Release(); return nil })
		bld.release()
		if err != nil {
			b.Fatal(err)
		}
	}
	reportRows(b, pass.rows)
}

// BenchmarkWriteBatchCSV is the encoding of batch_transactions.csv (to a
// temporary file, not synced).
func BenchmarkWriteBatchCSV(b *testing.B) {
	passData(b)
	dir := b.TempDir()
	b.ResetTimer()
	for range b.N {
		w, err := csvfile.Create(filepath.Join(dir, csvfile.BatchFile), csvfile.ResultColumns)
		if err != nil {
			b.Fatal(err)
		}
		t := &txCSV{w: w}
		for _, rec := range pass.settled {
			if err := t.write(rec); err != nil {
				b.Fatal(err)
			}
		}
		w.Abort()
	}
	reportRows(b, pass.rows)
}

// BenchmarkAnalyticsPass is the analytics pass over the settled records,
// and the views computed from it (not written).
func BenchmarkAnalyticsPass(b *testing.B) {
	passData(b)
	idx := newCardIndex(pass.master.Cards)
	b.ResetTimer()
	for range b.N {
		a := newAnalyzer(pass.master, idx)
		a.mp.minWeekly = DefaultMinWeeklyVolume
		for _, rec := range pass.settled {
			a.add(rec)
		}
		var row []cell
		for _, v := range a.earlyViews() {
			for i := range v.n {
				row = v.row(i, row[:0])
			}
		}
	}
	reportRows(b, pass.rows)
}

// BenchmarkMerchantIDs is the merchant lookup of the analytics pass.
func BenchmarkMerchantIDs(b *testing.B) {
	passData(b)
	b.ResetTimer()
	for range b.N {
		var m merchants
		for _, rec := range pass.settled {
			c := columns(rec)
			for i := range c.n {
				m.id(c.merchant.Value(i))
			}
		}
	}
	reportRows(b, pass.rows)
}
