package mysqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/pressly/goose/v3"
)

// serveMigration (version 5) adds the indexes the query side (txpipe
// serve) reads through:
//
//   - a card's transactions by time, in the batch view and in the stream
//     view: (card_id, timestamp), which replaces the index on card_id
//     alone (InnoDB appends the primary key, transaction_id, the answers'
//     second sort key);
//   - a merchant's transactions by time: (merchant_name, timestamp) on
//     both;
//   - a card by its number: cards (card_number);
//   - rejected rows by reason, in Kafka position order: (reason) (InnoDB
//     appends the primary key, the position).
//
// The batch creates its next views LIKE the current ones, so they get the
// same indexes. MySQL 8 has no CREATE INDEX IF NOT EXISTS and commits
// every ALTER on its own: each step checks information_schema first, so a
// migration interrupted halfway runs again to its end.
var serveMigration = goose.NewGoMigration(5, &goose.GoFunc{RunDB: migrateServe}, &goose.GoFunc{RunDB: unmigrateServe})

// serveIndex is an index version 5 adds (or drops, with drop).
type serveIndex struct {
	table, name, cols string
	drop              bool // an index the new ones make redundant
}

// serveIndexes are the indexes of version 5, for the schema check and
// the EXPLAIN tests.
var serveIndexes = []serveIndex{
	{table: "batch_transactions", name: "batch_card_time", cols: "card_id, `timestamp`"},
	{table: "batch_transactions", name: "batch_merchant_time", cols: "merchant_name, `timestamp`"},
	{table: "batch_transactions", name: "batch_card", cols: "card_id", drop: true},
	{table: "stream_transactions", name: "stream_card_time", cols: "card_id, `timestamp`"},
	{table: "stream_transactions", name: "stream_merchant_time", cols: "merchant_name, `timestamp`"},
	{table: "stream_transactions", name: "stream_card", cols: "card_id", drop: true},
	{table: "cards", name: "cards_number", cols: "card_number"},
	{table: "rejected_transactions", name: "rejected_reason", cols: "reason"},
}

func migrateServe(ctx context.Context, db *sql.DB) error {
	for _, ix := range serveIndexes {
		has, err := hasIndex(ctx, db, ix.table, ix.name)
		if err != nil {
			return err
		}
		switch {
		case !ix.drop && !has:
			_, err = db.ExecContext(ctx, "ALTER TABLE `"+ix.table+"` ADD INDEX `"+ix.name+"` ("+ix.cols+")")
		case ix.drop && has:
			_, err = db.ExecContext(ctx, "ALTER TABLE `"+ix.table+"` DROP INDEX `"+ix.name+"`")
		}
		if err != nil {
			return fmt.Errorf("index %s on %s: %w", ix.name, ix.table, err)
		}
	}
	return nil
}

func unmigrateServe(ctx context.Context, db *sql.DB) error {
	for i := len(serveIndexes) - 1; i >= 0; i-- {
		ix := serveIndexes[i]
		has, err := hasIndex(ctx, db, ix.table, ix.name)
		if err != nil {
			return err
		}
		switch {
		case ix.drop && !has:
			_, err = db.ExecContext(ctx, "ALTER TABLE `"+ix.table+"` ADD INDEX `"+ix.name+"` ("+ix.cols+")")
		case !ix.drop && has:
			_, err = db.ExecContext(ctx, "ALTER TABLE `"+ix.table+"` DROP INDEX `"+ix.name+"`")
		}
		if err != nil {
			return fmt.Errorf("undo index %s on %s: %w", ix.name, ix.table, err)
		}
	}
	return nil
}

func hasIndex(ctx context.Context, db *sql.DB, table, index string) (bool, error) {
	var n int
	err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND INDEX_NAME = ?", table, index).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("read the indexes of %s: %w", table, err)
	}
	return n > 0, nil
}

// verifyIndexes checks that the indexes of version 5 are there, once it
// is applied: a table of the same name that txpipe did not create passes
// the column check but would be read without them.
func verifyIndexes(ctx context.Context, db *sql.DB) error {
	var missing []string
	for _, ix := range serveIndexes {
		if ix.drop {
			continue
		}
		has, err := hasIndex(ctx, db, ix.table, ix.name)
		if err != nil {
			return fmt.Errorf("migrations: %w", err)
		}
		if !has {
			missing = append(missing, ix.table+"."+ix.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("migrations: the indexes %s are missing: were they dropped by hand? Run txpipe migrate on a database that txpipe created", strings.Join(missing, ", "))
	}
	return nil
}
