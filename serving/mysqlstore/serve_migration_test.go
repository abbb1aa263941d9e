package mysqlstore

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/txpipe/txpipe/internal/mysqltest"
)

func indexState(t *testing.T, db *DB) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, ix := range serveIndexes {
		has, err := hasIndex(context.Background(), db.SQL, ix.table, ix.name)
		if err != nil {
			t.Fatal(err)
		}
		out[ix.name] = has
	}
	return out
}

func wantServeIndexes(t *testing.T, db *DB, applied bool) {
	t.Helper()
	got := indexState(t, db)
	for _, ix := range serveIndexes {
		if want := applied != ix.drop; got[ix.name] != want {
			t.Errorf("index %s on %s: present %v, want %v", ix.name, ix.table, got[ix.name], want)
		}
	}
}

// TestServeMigration: version 5 adds the query indexes and drops the ones
// they replace; interrupted halfway it runs again to its end; it can be
// undone and redone; and a database whose indexes were dropped by hand
// fails the schema check, naming them.
func TestServeMigration(t *testing.T) {
	cfg := mysqltest.NewDatabase(t)
	db := openCfg(t, cfg)
	wantServeIndexes(t, db, true)

	// Interrupted: one index added, the old one still there, no version row.
	for _, q := range []string{
		"ALTER TABLE stream_transactions DROP INDEX stream_merchant_time, ADD INDEX stream_card (card_id)",
		"ALTER TABLE cards DROP INDEX cards_number",
		"DELETE FROM goose_db_version WHERE version_id >= 5",
	} {
		if _, err := db.SQL.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db2 := openCfg(t, cfg)
	wantServeIndexes(t, db2, true)

	p, err := NewMigrations(db2.SQL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(context.Background(), 4); err != nil {
		t.Fatal(err)
	}
	wantServeIndexes(t, db2, false)
	if _, err := p.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantServeIndexes(t, db2, true)

	if _, err := db2.SQL.Exec("ALTER TABLE batch_transactions DROP INDEX batch_merchant_time"); err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "batch_transactions.batch_merchant_time") {
		t.Fatalf("Open with an index dropped by hand: %v", err)
	}
}
