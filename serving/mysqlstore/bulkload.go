package mysqlstore

import (
	"bufio"
	"context"
	"database/sql"
)

// BulkSource is what BulkLoad writes. Text writes every row in LOAD DATA's
// text form (fields separated by tabs, each row ended by a newline, text
// escaped with AppendLoadText, NULL as \N) and returns how many rows it
// wrote; Rows yields the same rows as values (nil for NULL, string, int64
// or txpipe.Money), one per call, and io.EOF after the last. BulkLoad
// calls only one of them.
type BulkSource struct {
	Text func(w *bufio.Writer) (int64, error)
	Rows func(row []any) ([]any, error)
}

// BulkLoad writes src into table (its columns cols, in the order of the
// source's fields) inside tx, with the same loader as the dataset loads:
// LOAD DATA LOCAL INFILE when useLoadData is set and the server allows it,
// else multi-row INSERT statements of insertBatch rows. A server warning
// or a row count other than the rows sent fails the load. refused reports
// that the server refused LOAD DATA LOCAL (the rows then went in with
// INSERT): a caller passes useLoadData false from then on.
func BulkLoad(ctx context.Context, tx *sql.Tx, table string, cols []string, useLoadData bool, insertBatch int, src BulkSource) (n int64, refused bool, err error) {
	t := bulkTable{name: table, cols: cols}
	if useLoadData {
		stmt, err := loadDataStmt(t, "")
		if err != nil {
			return 0, false, err
		}
		n, refused, err = runLoadData(ctx, tx, stmt, false, src.Text)
		if !refused {
			return n, false, err
		}
	}
	var plain DB // no test hooks
	n, err = plain.insertRows(ctx, tx, t, src.Rows, max(insertBatch, 1))
	return n, refused, err
}
