package mysqlstore

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/internal/mysqltest"
)

// openTest opens a fresh, migrated database.
func openTest(tb testing.TB, opts ...Option) *DB {
	tb.Helper()
	return openCfg(tb, mysqltest.NewDatabase(tb), opts...)
}

func openCfg(tb testing.TB, cfg *mysql.Config, opts ...Option) *DB {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := Open(ctx, cfg, testLogger(tb), opts...)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func testLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// recorder is a slog handler that keeps the messages.
type recorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.msgs = append(r.msgs, rec.Message)
	r.mu.Unlock()
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }
func (r *recorder) count(msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

// dump returns a table's rows as text, NULL as "<NULL>", in the given order.
func dump(tb testing.TB, db *DB, table, orderBy string) [][]string {
	tb.Helper()
	rows, err := db.SQL.Query("SELECT * FROM `" + table + "` ORDER BY " + orderBy)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			tb.Fatal(err)
		}
		rec := make([]string, len(cols))
		for i, v := range vals {
			switch v := v.(type) {
			case nil:
				rec[i] = "<NULL>"
			case time.Time:
				rec[i] = v.Format(txpipe.TimestampLayout)
			case []byte:
				rec[i] = string(v)
			default:
				rec[i] = fmt.Sprint(v)
			}
		}
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

func count(tb testing.TB, db *DB, table string) int64 {
	tb.Helper()
	n, err := db.CountRows(context.Background(), table)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// trickyStrings round-trip through both load paths.
var trickyStrings = []string{
	"plain", "", "tab\there", "new\nline", "cr\r\nlf", `back\slash`, `\N`, `trailing\`, `"double" 'single' quotes`,
	"comma, separated, \"quoted\"", "ünïcödé 日本語 😀", "nul\x00byte", `\t not a tab`, "  spaces  ", "ctrl-z \x1a",
}

func money(s string) txpipe.Money {
	m, err := txpipe.ParseMoney(s)
	if err != nil {
		panic(err)
	}
	return m
}

// tinyMaster builds master data whose text fields hold trickyStrings.
func tinyMaster(n int) *txpipe.Master {
	m := &txpipe.Master{
		CardTypes: []txpipe.CardType{
			{ID: 1, Name: "Basic", ScoreMin: 580, ScoreMax: 669, LimitMin: money("1000"), LimitMax: money("5000"), AnnualFee: 0, RewardsRate: "0.005"},
			{ID: 2, Name: "Gold, \"shiny\"", ScoreMin: 670, ScoreMax: 739, LimitMin: money("5000"), LimitMax: money("10000"), AnnualFee: money("95"), RewardsRate: "0.01"},
		},
	}
	for i := range n {
		s := trickyStrings[i%len(trickyStrings)]
		m.Customers = append(m.Customers, txpipe.Customer{
			ID: int64(i + 1), Name: s, Phone: fmt.Sprintf("555-%04d", i), Address: s + " Main St, NY 10001",
			Email: fmt.Sprintf("c%d@example.com", i), CreditScore: int64(600 + i%200), AnnualIncome: txpipe.Money(int64(i)*12345 + 7),
		})
		m.Cards = append(m.Cards, txpipe.Card{
			ID: int64(i + 1), CustomerID: int64(i + 1), CardTypeID: int64(1 + i%2), Number: fmt.Sprintf("4000-0000-0000-%04d", i),
			Expiration: "06/27", CreditLimit: money("2500.00"), CurrentBalance: txpipe.Money(-int64(i) * 101), IssueDate: "2022-11-18",
		})
	}
	return m
}

// writeRows writes results, rejected rows and offsets as a sink does.
func (db *DB) writeRows(ctx context.Context, mode streamMode, consumer string, results []txpipe.Result, rejected []txpipe.Rejected, offsets []txpipe.Offset) error {
	return db.writeStream(ctx, mode, consumer, &txpipe.ViewBatch{Results: results, Rejected: rejected, Next: offsets})
}
