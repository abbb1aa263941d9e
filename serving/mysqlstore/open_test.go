package mysqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/txpipe/txpipe/internal/mysqltest"
)

func TestOpenMigratesIdempotently(t *testing.T) {
	cfg := mysqltest.NewDatabase(t)
	db := openCfg(t, cfg)
	for _, table := range []string{"customers", "credit_card_types", "cards", "transactions", "stream_transactions", "rejected_transactions", "sink_offsets"} {
		if n := count(t, db, table); n != 0 {
			t.Errorf("%s has %d rows", table, n)
		}
	}
	before := dump(t, db, "goose_db_version", "id")
	rec := &recorder{}
	db2, err := Open(context.Background(), cfg, slog.New(rec))
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	defer db2.Close()
	if n := rec.count("migration applied"); n != 0 {
		t.Errorf("second Open applied %d migrations", n)
	}
	after := dump(t, db, "goose_db_version", "id")
	if len(after) != len(before) {
		t.Errorf("goose_db_version: %d rows before the second Open, %d after", len(before), len(after))
	}
}

// TestOpenFinishesAnInterruptedMigration: MySQL commits each CREATE TABLE
// on its own, so a process killed while migrating leaves some tables of a
// migration without its version row. The next Open must finish it.
func TestOpenFinishesAnInterruptedMigration(t *testing.T) {
	cfg := mysqltest.NewDatabase(t)
	db := openCfg(t, cfg)
	// Undo the record of the last migrations but keep some of their
	// tables and columns: version 3 (Go) done halfway, version 4 partly.
	for _, q := range []string{
		"DROP TABLE load_rejected",
		"DROP TABLE batch_cutoffs",
		"ALTER TABLE rejected_transactions DROP PRIMARY KEY, ADD PRIMARY KEY (source)",
		"ALTER TABLE rejected_transactions DROP COLUMN kafka_topic, DROP COLUMN kafka_partition, DROP COLUMN kafka_offset",
		"DELETE FROM goose_db_version WHERE version_id >= 3",
	} {
		if _, err := db.SQL.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db2, err := Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Open after an interrupted migration: %v", err)
	}
	defer db2.Close()
	for _, table := range []string{"batch_transactions", "cards_updated", "customers_updated", "batch_runs", "load_rejected", "batch_cutoffs", "rejected_transactions"} {
		if n := count(t, db2, table); n != 0 {
			t.Errorf("%s has %d rows", table, n)
		}
	}
}

func TestMigrateConcurrently(t *testing.T) {
	cfg := mysqltest.NewDatabase(t)
	c := cfg.Clone()
	c.ParseTime = true
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := mysql.NewConnector(c)
			if err != nil {
				errs[i] = err
				return
			}
			db := sql.OpenDB(conn) // a pool each, as separate processes have
			defer db.Close()
			errs[i] = Migrate(context.Background(), db)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Migrate %d: %v", i, err)
		}
	}
	db := openCfg(t, cfg, WithMigrations(false))
	var applied, distinct int
	if err := db.SQL.QueryRow("SELECT COUNT(*), COUNT(DISTINCT version_id) FROM goose_db_version WHERE version_id > 0").Scan(&applied, &distinct); err != nil {
		t.Fatal(err)
	}
	if applied == 0 || applied != distinct {
		t.Errorf("goose_db_version holds %d applied rows for %d versions", applied, distinct)
	}
}

// TestMigrateRejectsAForeignTable: a table of a migration's name that was
// there before (the migrations create tables IF NOT EXISTS) is an error
// naming it and its missing columns.
func TestMigrateRejectsAForeignTable(t *testing.T) {
	cfg := mysqltest.NewDatabase(t)
	db := openCfg(t, cfg, WithMigrations(false))
	if _, err := db.SQL.Exec("CREATE TABLE customers (x INT)"); err != nil {
		t.Fatal(err)
	}
	err := Migrate(context.Background(), db.SQL)
	if err == nil || !strings.Contains(err.Error(), "table customers lacks the columns customer_id, name") {
		t.Fatalf("Migrate = %v, want an error naming customers and its missing columns", err)
	}
}

// TestMigrationColumns reads every table of the migrations with its
// columns, keys left out.
func TestMigrationColumns(t *testing.T) {
	tables, err := migrationColumns()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, tc := range tables {
		got[tc.name] = tc.cols
	}
	if len(got) < 14 {
		t.Errorf("%d tables, want at least 14: %v", len(got), got)
	}
	if c := got["rejected_transactions"]; !strings.HasSuffix(strings.Join(c, ","), ",seq,kafka_topic,kafka_partition,kafka_offset") {
		t.Errorf("rejected_transactions columns %v: the Go migration's columns are missing", c)
	}
	if c := got["sink_offsets"]; strings.Join(c, ",") != "consumer,topic,partition,next_offset,topic_id" {
		t.Errorf("sink_offsets columns %v", c)
	}
	if c := got["cards"]; len(c) != 8 || c[0] != "card_id" || c[7] != "issue_date" {
		t.Errorf("cards columns %v", c)
	}
}

func TestOpenCreatesDatabase(t *testing.T) {
	cfg := mysqltest.Server(t).Clone()
	var b [6]byte
	rand.Read(b[:])
	cfg.DBName = "txpipe_test_new_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		c := cfg.Clone()
		c.DBName = ""
		admin, err := sql.Open("mysql", c.FormatDSN())
		if err == nil {
			admin.Exec("DROP DATABASE IF EXISTS `" + cfg.DBName + "`")
			admin.Close()
		}
	})
	db := openCfg(t, cfg)
	var cs string
	if err := db.SQL.QueryRow("SELECT @@character_set_database").Scan(&cs); err != nil {
		t.Fatal(err)
	}
	if cs != "utf8mb4" {
		t.Errorf("database character set %s, want utf8mb4", cs)
	}
	if n := count(t, db, "stream_transactions"); n != 0 {
		t.Errorf("stream_transactions has %d rows", n)
	}
}

// TestOpenWaitsForServer starts Open against a port nobody listens on,
// then puts a proxy to the real server there: Open logs the outage once
// and the recovery once, and succeeds.
func TestOpenWaitsForServer(t *testing.T) {
	cfg := mysqltest.NewDatabase(t).Clone()
	target := cfg.Addr
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg.Addr = addr

	rec := &recorder{}
	done := make(chan error, 1)
	var db *DB
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var err error
		db, err = Open(ctx, cfg, slog.New(rec))
		done <- err
	}()
	time.Sleep(700 * time.Millisecond) // several retries
	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go proxy(l, target)
	if err := <-done; err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	if n := rec.count("unavailable, retrying with backoff"); n != 1 {
		t.Errorf("logged unreachable %d times, want once", n)
	}
	if n := rec.count("available again"); n != 1 {
		t.Errorf("logged reachable %d times, want once", n)
	}
}

func proxy(l net.Listener, target string) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			s, err := net.Dial("tcp", target)
			if err != nil {
				return
			}
			defer s.Close()
			go io.Copy(s, c)
			io.Copy(c, s)
		}()
	}
}

func TestOpenGivesUpWhenContextEnds(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr, cfg.DBName = "root", "tcp", addr, "txpipe"
	rec := &recorder{}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = Open(ctx, cfg, slog.New(rec))
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Open = %v, want the address and the deadline", err)
	}
	if n := rec.count("unavailable, retrying with backoff"); n != 1 {
		t.Errorf("logged unreachable %d times, want once", n)
	}
}

// TestPositionsMigrationKeepsRows: a database written before version 3
// keeps its rows: stream rows get unknown positions (-1), rejected rows
// are keyed by their source, so two with the same position stay apart.
func TestPositionsMigrationKeepsRows(t *testing.T) {
	cfg := mysqltest.NewDatabase(t)
	db := openCfg(t, cfg, WithMigrations(false))
	p, err := NewMigrations(db.SQL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"INSERT INTO stream_transactions (transaction_id, card_id, merchant_name, `timestamp`, amount, location, transaction_type, status, pending_balance, seq) VALUES (1, 1, 'M', '2025-01-01 00:00:00', 1.00, 'L 10001', 'purchase', 'pending', 1.00, 1)",
		"INSERT INTO rejected_transactions (source, transaction_id, reason, card_id, merchant_name, `timestamp`, amount, location, transaction_type, related_transaction_id, detail) VALUES ('transactions.csv:3', 'x', 'bad_transaction_id', '', '', '', '', '', '', '', ''), ('transactions/0/7', 'y', 'bad_json', '', '', '', '', '', '', '', '')",
	} {
		if _, err := db.SQL.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db2 := openCfg(t, cfg)
	if got := dump(t, db2, "stream_transactions", "transaction_id"); len(got) != 1 || got[0][12] != "-1" || got[0][13] != "-1" {
		t.Errorf("stream_transactions after the migration: %q", got)
	}
	got := dump(t, db2, "rejected_transactions", "source")
	if len(got) != 2 || got[0][12] != "transactions.csv:3" || got[1][12] != "transactions/0/7" || got[0][13] != "-1" {
		t.Errorf("rejected_transactions after the migration: %q", got)
	}
	pk, err := primaryKey(context.Background(), db2.SQL, "rejected_transactions")
	if err != nil || pk != "kafka_topic,kafka_partition,kafka_offset" {
		t.Errorf("primary key of rejected_transactions = %q, %v", pk, err)
	}
}
