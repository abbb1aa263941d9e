package mysqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/txpipe/txpipe"
)

// column is what the loaders need to know of a table's column.
type column struct {
	name       string
	dataType   string // lower case: varchar, decimal, bigint, datetime...
	nullable   bool
	hasDefault bool
	maxChars   int // characters a char/text column holds; 0 otherwise
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// tableColumns reads a table's columns, in order, from information_schema.
func tableColumns(ctx context.Context, q querier, table string) ([]column, error) {
	rows, err := q.QueryContext(ctx, `SELECT COLUMN_NAME, DATA_TYPE, IS_NULLABLE, COLUMN_DEFAULT IS NOT NULL OR EXTRA LIKE '%auto_increment%',
	COALESCE(CHARACTER_MAXIMUM_LENGTH, 0) FROM information_schema.COLUMNS
	WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, table)
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", table, err)
	}
	defer rows.Close()
	var cols []column
	for rows.Next() {
		var c column
		var nullable string
		var maxChars int64
		if err := rows.Scan(&c.name, &c.dataType, &nullable, &c.hasDefault, &maxChars); err != nil {
			return nil, fmt.Errorf("columns of %s: %w", table, err)
		}
		c.dataType = strings.ToLower(c.dataType)
		c.nullable = nullable == "YES"
		if c.nullable {
			c.hasDefault = true // NULL
		}
		if strings.Contains(c.dataType, "char") || strings.Contains(c.dataType, "text") {
			c.maxChars = int(min(maxChars, 1<<31-1))
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("columns of %s: %w", table, err)
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("table %s does not exist (are the migrations applied?)", table)
	}
	return cols, nil
}

// widths maps a table's character columns to the characters they hold.
func widths(cols []column) map[string]int {
	w := make(map[string]int, len(cols))
	for _, c := range cols {
		if c.maxChars > 0 {
			w[c.name] = c.maxChars
		}
	}
	return w
}

// fitErr says why s does not fit a column of limit characters, or "".
func fitErr(s string, limit int) string {
	if !utf8.ValidString(s) {
		return "not valid UTF-8"
	}
	if limit > 0 && len(s) > limit { // bytes ≥ characters: count only when it may matter
		if n := utf8.RuneCountInString(s); n > limit {
			return fmt.Sprintf("%d characters, the column holds %d", n, limit)
		}
	}
	return ""
}

// clamp makes s fit a column of limit characters: invalid UTF-8 becomes
// U+FFFD and the end is cut. It is used for rejected rows only, which
// keep as much of the bad input as the table can hold.
func clamp(s string, limit int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if limit <= 0 || len(s) <= limit {
		return s
	}
	n := 0
	for i := range s {
		if n == limit {
			return s[:i]
		}
		n++
	}
	return s
}

// rejectedColumns are the columns of rejected_transactions as the loaders
// write them; rejectedRow gives the values.
var rejectedColumns = []string{"source", "transaction_id", "reason", "card_id", "merchant_name", "timestamp", "amount",
	"location", "transaction_type", "related_transaction_id", "detail", "seq", "kafka_topic", "kafka_partition", "kafka_offset"}

// rejectedWidths are the widths of rejected_transactions (00001_schema.sql).
var rejectedWidths = []int{255, 255, 64, 255, 255, 64, 64, 512, 64, 255, 1024, 0}

// rejectedRow gives the values of rejectedColumns; the rows of load_rejected
// are the first 12 of them.
func rejectedRow(row []any, r *txpipe.Rejected, seq int64) []any {
	x := &r.Raw
	vals := [...]string{r.Source, x.TransactionID, string(r.Reason), x.CardID, x.Merchant, x.Timestamp, x.Amount,
		x.Location, x.Type, x.RelatedID, r.Detail}
	for i, v := range vals {
		row = append(row, clamp(v, rejectedWidths[i]))
	}
	return append(row, seq, clamp(r.Pos.Topic, 255), int64(r.Pos.Partition), r.Pos.Offset)
}

// rejectedTable is keyed by the rows' Kafka positions, which are unique.
var rejectedTable = bulkTable{name: "rejected_transactions", cols: rejectedColumns, upsert: true, update: rejectedColumns[:12]}

// loadRejectedTable holds the rows `load initial` could not load, by source.
var loadRejectedTable = bulkTable{name: "load_rejected", cols: rejectedColumns[:12], upsert: true, update: rejectedColumns[1:12]}

// nullIfEmpty maps "" to NULL.
func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
