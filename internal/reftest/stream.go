package reftest

import (
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/serving/csvfile"
)

// Judge is the stream layer without Kafka, for tests: it reads a
// dataset, judges its transactions in event order with txpipe.Ledger and
// returns the master data and the results. Every row must be judgeable.
func Judge(tb testing.TB, dataDir string) (*txpipe.Master, []txpipe.Result) {
	tb.Helper()
	master, err := csvfile.ReadMaster(dataDir)
	if err != nil {
		tb.Fatal(err)
	}
	r, err := csvfile.OpenTransactions(filepath.Join(dataDir, csvfile.TransactionsFile))
	if err != nil {
		tb.Fatal(err)
	}
	defer r.Close()
	var txs []txpipe.Transaction
	for {
		row, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		line := row.Line
		if err != nil || row.Reject != "" {
			tb.Fatalf("line %d: %v %s %s", line, err, row.Reject, row.Detail)
		}
		tx, reason, detail := txpipe.ParseTransaction(row.Raw)
		if reason != "" {
			tb.Fatalf("line %d: %s: %s", line, reason, detail)
		}
		tx.Seq = int64(line)
		txs = append(txs, tx)
	}
	txpipe.SortByEvent(txs)
	ledger := txpipe.NewLedger(txpipe.NewMasterIndex(master), 0)
	results := make([]txpipe.Result, 0, len(txs))
	next := map[int32]int64{}
	for _, tx := range txs {
		res, reason, detail := ledger.JudgeParsed(tx)
		if reason != "" {
			tb.Fatalf("transaction %d: %s: %s", tx.ID, reason, detail)
		}
		// Placed as the stream would: a card's results in one partition
		// (of Partitions), in order.
		p := int32(tx.CardID % Partitions)
		res.Pos = txpipe.Position{Partition: p, Offset: next[p]}
		next[p]++
		results = append(results, res)
	}
	return master, results
}

// Partitions is the number of partitions Judge spreads its results over.
const Partitions = 4

// WriteResults writes result rows to path with csvfile's writer, as the
// stream sink writes stream_transactions.csv (with the rows' positions).
func WriteResults(tb testing.TB, path string, results []txpipe.Result) {
	tb.Helper()
	w, err := csvfile.Create(path, csvfile.StreamColumns)
	if err != nil {
		tb.Fatal(err)
	}
	var rec []string
	for _, r := range results {
		rec = csvfile.AppendStreamResult(rec[:0], r)
		if err := w.Write(rec); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		tb.Fatal(err)
	}
}
