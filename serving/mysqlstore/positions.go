package mysqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/pressly/goose/v3"
)

// positionsMigration (version 3) adds to the stream views the Kafka
// position of each row's record: stream_transactions gets kafka_partition
// and kafka_offset (of the validated topic; -1 for rows written before),
// rejected_transactions gets kafka_topic, kafka_partition and kafka_offset
// and is keyed by them. Rows written before keep their source as their
// key's topic, so they stay unique.
//
// MySQL commits every ALTER on its own, and MySQL 8 has no ADD COLUMN IF
// NOT EXISTS: each step checks the schema first, so a migration killed
// halfway runs again to its end.
var positionsMigration = goose.NewGoMigration(3, &goose.GoFunc{RunDB: migratePositions}, &goose.GoFunc{RunDB: unmigratePositions})

// positionColumns are the columns version 3 adds, for the schema check.
var positionColumns = []migratedTable{
	{name: "stream_transactions", cols: []string{"kafka_partition", "kafka_offset"}},
	{name: "rejected_transactions", cols: []string{"kafka_topic", "kafka_partition", "kafka_offset"}},
}

func migratePositions(ctx context.Context, db *sql.DB) error {
	steps := []struct {
		table, column, ddl string
	}{
		{"stream_transactions", "kafka_partition", "ALTER TABLE stream_transactions ADD COLUMN kafka_partition INT NOT NULL DEFAULT -1, ADD COLUMN kafka_offset BIGINT NOT NULL DEFAULT -1, ADD KEY stream_position (kafka_partition, kafka_offset)"},
		{"rejected_transactions", "kafka_topic", "ALTER TABLE rejected_transactions ADD COLUMN kafka_topic VARCHAR(255) NOT NULL DEFAULT '', ADD COLUMN kafka_partition INT NOT NULL DEFAULT -1, ADD COLUMN kafka_offset BIGINT NOT NULL DEFAULT -1"},
	}
	for _, s := range steps {
		has, err := hasColumn(ctx, db, s.table, s.column)
		if err != nil {
			return err
		}
		if !has {
			if _, err := db.ExecContext(ctx, s.ddl); err != nil {
				return fmt.Errorf("add the Kafka position to %s: %w", s.table, err)
			}
		}
	}
	if _, err := db.ExecContext(ctx, "UPDATE rejected_transactions SET kafka_topic = source WHERE kafka_topic = ''"); err != nil {
		return fmt.Errorf("key the earlier rejected rows by their source: %w", err)
	}
	pk, err := primaryKey(ctx, db, "rejected_transactions")
	if err != nil {
		return err
	}
	if pk != "kafka_topic,kafka_partition,kafka_offset" {
		if _, err := db.ExecContext(ctx, "ALTER TABLE rejected_transactions DROP PRIMARY KEY, ADD PRIMARY KEY (kafka_topic, kafka_partition, kafka_offset)"); err != nil {
			return fmt.Errorf("key rejected_transactions by Kafka position: %w", err)
		}
	}
	return nil
}

func unmigratePositions(ctx context.Context, db *sql.DB) error {
	for _, q := range []string{
		"ALTER TABLE rejected_transactions DROP PRIMARY KEY, ADD PRIMARY KEY (source)",
		"ALTER TABLE rejected_transactions DROP COLUMN kafka_topic, DROP COLUMN kafka_partition, DROP COLUMN kafka_offset",
		"ALTER TABLE stream_transactions DROP KEY stream_position, DROP COLUMN kafka_partition, DROP COLUMN kafka_offset",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("undo the Kafka positions: %w", err)
		}
	}
	return nil
}

func hasColumn(ctx context.Context, db *sql.DB, table, column string) (bool, error) {
	var n int
	err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?", table, column).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("read the columns of %s: %w", table, err)
	}
	return n > 0, nil
}

// primaryKey returns the columns of a table's primary key, comma-separated
// in key order.
func primaryKey(ctx context.Context, db *sql.DB, table string) (string, error) {
	rows, err := db.QueryContext(ctx, "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION", table)
	if err != nil {
		return "", fmt.Errorf("read the primary key of %s: %w", table, err)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return "", fmt.Errorf("read the primary key of %s: %w", table, err)
		}
		cols = append(cols, strings.ToLower(c))
	}
	return strings.Join(cols, ","), rows.Err()
}
