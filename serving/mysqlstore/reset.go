package mysqlstore

import (
	"context"
	"fmt"
)

// Reset empties every table of the database (the schema and its version
// stay): the dev state starts over. It returns the tables it emptied.
func (db *DB) Reset(ctx context.Context) ([]string, error) {
	rows, err := db.SQL.QueryContext(ctx, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' AND TABLE_NAME <> 'goose_db_version' ORDER BY TABLE_NAME")
	if err != nil {
		return nil, fmt.Errorf("reset: list tables: %w", err)
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reset: list tables: %w", err)
		}
		tables = append(tables, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reset: list tables: %w", err)
	}
	for _, t := range tables {
		q, err := quoteIdent(t)
		if err != nil {
			return nil, err
		}
		if _, err := db.SQL.ExecContext(ctx, "TRUNCATE TABLE "+q); err != nil {
			return nil, fmt.Errorf("reset: empty %s: %w", t, err)
		}
	}
	return tables, nil
}
