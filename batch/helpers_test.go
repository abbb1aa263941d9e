package batch

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/go-sql-driver/mysql"
	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/internal/mysqltest"
	"github.com/txpipe/txpipe/internal/reftest"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/serving/mysqlstore"
)

// streamRun is the naive stream layer over a dataset: its master data and
// its judged transactions in event order.
type streamRun struct {
	master  *txpipe.Master
	results []txpipe.Result
}

// runStream judges the dataset's transactions with txpipe.Ledger, as the
// stream layer does, and writes resultsDir/stream_transactions.csv.
func runStream(tb testing.TB, dataDir, resultsDir string) streamRun {
	tb.Helper()
	master, results := reftest.Judge(tb, dataDir)
	reftest.WriteResults(tb, filepath.Join(resultsDir, csvfile.StreamFile), results)
	return streamRun{master: master, results: results}
}

// newDB returns a fresh database with the migrations applied.
func newDB(tb testing.TB) *sql.DB {
	tb.Helper()
	db, _ := newDBWithConfig(tb)
	return db
}

func newDBWithConfig(tb testing.TB) (*sql.DB, *mysql.Config) {
	tb.Helper()
	cfg := mysqltest.NewDatabase(tb)
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	p, err := mysqlstore.NewMigrations(db)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := p.Up(context.Background()); err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	return db, cfg
}

// insertAll writes rows with plain multi-row INSERTs.
func insertAll(tb testing.TB, db *sql.DB, table string, cols []string, rows [][]any) {
	tb.Helper()
	const per = 500
	for len(rows) > 0 {
		n := min(per, len(rows))
		var args []any
		var q strings.Builder
		q.WriteString("INSERT INTO " + table + " (`" + strings.Join(cols, "`, `") + "`) VALUES ")
		ph := "(" + strings.Repeat("?,", len(cols)-1) + "?)"
		for i, r := range rows[:n] {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString(ph)
			args = append(args, r...)
		}
		if _, err := db.Exec(q.String(), args...); err != nil {
			tb.Fatalf("insert into %s: %v", table, err)
		}
		rows = rows[n:]
	}
}

var streamColumns = append(append([]string{}, csvfile.ResultColumns...), "seq", "kafka_partition", "kafka_offset")

// loadMySQL loads the master tables and stream_transactions.
func loadMySQL(tb testing.TB, db *sql.DB, s streamRun) {
	tb.Helper()
	var rows [][]any
	for _, c := range s.master.Customers {
		rows = append(rows, []any{c.ID, c.Name, c.Phone, c.Address, c.Email, c.CreditScore, c.AnnualIncome.String()})
	}
	insertAll(tb, db, "customers", csvfile.CustomerColumns, rows)
	rows = nil
	for _, c := range s.master.CardTypes {
		rows = append(rows, []any{c.ID, c.Name, c.ScoreMin, c.ScoreMax, c.LimitMin.String(), c.LimitMax.String(), c.AnnualFee.String(), c.RewardsRate})
	}
	insertAll(tb, db, "credit_card_types", csvfile.CardTypeColumns, rows)
	rows = nil
	for _, c := range s.master.Cards {
		rows = append(rows, []any{c.ID, c.CustomerID, c.CardTypeID, c.Number, c.Expiration, c.CreditLimit.String(), c.CurrentBalance.String(), c.IssueDate})
	}
	insertAll(tb, db, "cards", csvfile.CardColumns, rows)
	rows = nil
	for _, r := range s.results {
		var related any
		if r.RelatedID != "" {
			related = r.RelatedID
		}
		rows = append(rows, []any{r.ID, r.CardID, r.Merchant, r.Timestamp.Format(txpipe.TimestampLayout), r.Amount.String(),
			r.Location, r.Type, related, string(r.Status), r.PendingBalance.String(), string(r.DeclineReason), r.Seq,
			r.Pos.Partition, r.Pos.Offset})
	}
	insertAll(tb, db, "stream_transactions", streamColumns, rows)
}

// queryStrings returns the rows of a query as strings, NULL as "".
func queryStrings(tb testing.TB, db *sql.DB, query string) [][]string {
	tb.Helper()
	rows, err := db.Query(query)
	if err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			tb.Fatal(err)
		}
		rec := make([]string, len(cols))
		for i, v := range vals {
			rec[i] = v.String
		}
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// readCSV returns the records of a CSV file after its header.
func readCSV(tb testing.TB, path string) [][]string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return recs[1:]
}

func backtick(cols []string) string { return "`" + strings.Join(cols, "`, `") + "`" }

// viewQueries read each view table in the order and columns of its CSV.
var viewQueries = map[string]string{
	csvfile.BatchFile:        "SELECT " + backtick(csvfile.ResultColumns) + " FROM batch_transactions ORDER BY `timestamp`, seq",
	csvfile.CardsUpdatedFile: "SELECT " + backtick(csvfile.CardColumns) + " FROM cards_updated ORDER BY card_id",
	csvfile.CustomersUpdFile: "SELECT " + backtick(csvfile.CustomerColumns) + " FROM customers_updated ORDER BY customer_id",
}

var viewFiles = []string{csvfile.BatchFile, csvfile.CardsUpdatedFile, csvfile.CustomersUpdFile}

// assertTablesMatchCSV checks that the view tables hold the rows of the
// CSV files in dir.
func assertTablesMatchCSV(tb testing.TB, db *sql.DB, dir string) {
	tb.Helper()
	for _, f := range viewFiles {
		want := readCSV(tb, filepath.Join(dir, f))
		got := queryStrings(tb, db, viewQueries[f])
		if len(got) != len(want) {
			tb.Fatalf("%s: table has %d rows, CSV %d", f, len(got), len(want))
		}
		for i := range want {
			if strings.Join(got[i], "\x1f") != strings.Join(want[i], "\x1f") {
				tb.Fatalf("%s row %d: table %q, CSV %q", f, i+1, got[i], want[i])
			}
		}
	}
}

// checksums returns CHECKSUM TABLE of the view tables.
func checksums(tb testing.TB, db *sql.DB) map[string]string {
	tb.Helper()
	out := map[string]string{}
	for _, r := range queryStrings(tb, db, "CHECKSUM TABLE batch_transactions, cards_updated, customers_updated") {
		out[r[0][strings.LastIndexByte(r[0], '.')+1:]] = r[1]
	}
	return out
}

// snapshotFiles reads every file of dir but the manifest, which names
// the run that wrote it.
func snapshotFiles(tb testing.TB, dir string) map[string][]byte {
	tb.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range ents {
		if e.Name() == ManifestFile {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

func checkedAlloc(tb testing.TB) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	tb.Cleanup(func() { mem.AssertSize(tb, 0) })
	return mem
}

// wantCutoffs are the cut-offs of a run over all of s's results.
func (s streamRun) wantCutoffs() map[int32]int64 {
	out := map[int32]int64{}
	for _, r := range s.results {
		out[r.Pos.Partition] = max(out[r.Pos.Partition], r.Pos.Offset+1)
	}
	return out
}
