package stream

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/dataset"
	"github.com/txpipe/txpipe/serving/csvfile"
)

// BenchmarkLedgerProcess measures the ledger task's work per record,
// without a broker: decode, route, judge, encode, emit.
func BenchmarkLedgerProcess(b *testing.B) {
	data := b.TempDir()
	if _, err := dataset.Generate(context.Background(), data, dataset.Options{Customers: 3000, Cards: 5000, Transactions: 100000, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	m, err := csvfile.ReadMaster(data)
	if err != nil {
		b.Fatal(err)
	}
	src, err := CSVRows(filepath.Join(data, csvfile.TransactionsFile))
	if err != nil {
		b.Fatal(err)
	}
	t := TopicsFor("bench")
	op := newLedgerOp(t, &masterView{}, 0, DefaultCheckpointEvery, 1)
	op.master.cur.Store(txpipe.NewMasterIndex(m))
	var recs []*kgo.Record
	src.Rows("", func(r Row) error {
		recs = append(recs, &kgo.Record{Topic: t.Input, Partition: 0, Key: []byte(r.Raw.CardID), Value: EncodeTransaction(nil, r.Raw)})
		return nil
	})
	e := &Engine{downstream: map[string][]int{}, produced: map[int32]map[string]int64{}}
	e.sink = func(*kgo.Record) {}
	b.ResetTimer()
	b.ReportAllocs()
	n := 0
	for i := 0; i < b.N; i++ {
		task := op.NewTask(0).(*ledgerTask)
		w := &batchWorker{}
		out := &Emitter{e: e, w: w, ctx: context.Background()}
		task.Begin()
		for _, r := range recs {
			task.Process(r, out)
			n++
			if n%10000 == 0 {
				task.Commit(nil)
				task.Begin()
				w.buf = nil
			}
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}
