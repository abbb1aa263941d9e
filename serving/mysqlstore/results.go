package mysqlstore

import (
	"context"
	"database/sql"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/serving/csvfile"
)

// LoadResults replaces the contents of table with the rows of a result CSV
// file (stream_transactions.csv into stream_transactions, and in the same
// way batch_transactions, cards_updated and customers_updated), in one
// transaction, and returns the number of rows loaded.
//
// The file's header names the columns: each must be a column of the table
// (a column the table lacks is skipped with a warning in the log), and
// every column of the table that has no default must be in the file —
// except seq, which, when the file has none, is the row's line number. An
// empty field of a nullable column is NULL. The server converts the text
// to the column's type, rounding decimals to the column's scale (the
// reference's 439.12999999999994 is 439.13); a value it cannot convert
// fails the load.
func (db *DB) LoadResults(ctx context.Context, table, path string) (int, error) {
	if _, err := quoteIdent(table); err != nil {
		return 0, err
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("load %s: %w", table, err)
	}
	defer f.Close()
	cr := csv.NewReader(f)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("empty file, expected a header")
		}
		return 0, &csvfile.Error{File: path, Line: 1, Err: err}
	}
	header = slices.Clone(header)
	for i, h := range header {
		header[i] = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
	}
	var n int64
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		cols, err := tableColumns(ctx, tx, table)
		if err != nil {
			return err
		}
		byName := map[string]column{}
		for _, c := range cols {
			byName[c.name] = c
		}
		// fields[i] is the header index of the i-th loaded column; -1 is
		// the line number (seq).
		var (
			names   []string
			fields  []int
			inFile  = map[string]bool{}
			skipped []string
		)
		for i, h := range header {
			if inFile[h] {
				return &csvfile.Error{File: path, Line: 1, Column: h, Err: errors.New("column named twice")}
			}
			inFile[h] = true
			if _, ok := byName[h]; !ok {
				skipped = append(skipped, h)
				continue
			}
			names, fields = append(names, h), append(fields, i)
		}
		if len(skipped) > 0 {
			db.log.Warn("columns of the file that the table does not have are not loaded", "file", path, "table", table, "columns", skipped)
		}
		for _, c := range cols {
			switch {
			case inFile[c.name]:
			case c.name == "seq":
				names, fields = append(names, c.name), append(fields, -1)
			case !c.hasDefault:
				return &csvfile.Error{File: path, Line: 1, Column: c.name, Err: fmt.Errorf("missing column: table %s needs it", table)}
			}
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM `"+table+"`"); err != nil {
			return fmt.Errorf("empty %s: %w", table, err)
		}
		src := func(row []any) ([]any, error) {
			rec, err := cr.Read()
			if err == io.EOF {
				return row, io.EOF
			}
			line, _ := cr.FieldPos(0)
			if err != nil {
				var pe *csv.ParseError
				if errors.As(err, &pe) {
					return row, &csvfile.Error{File: path, Line: pe.StartLine, Err: pe.Err}
				}
				return row, &csvfile.Error{File: path, Line: line, Err: err}
			}
			for i, fi := range fields {
				if fi < 0 {
					row = append(row, int64(line))
					continue
				}
				c := byName[names[i]]
				v := rec[fi]
				if v == "" && c.nullable {
					row = append(row, nil)
					continue
				}
				if msg := fitErr(v, c.maxChars); msg != "" {
					return row, &csvfile.Error{File: path, Line: line, Column: c.name, Err: errors.New(msg)}
				}
				row = append(row, v)
			}
			return row, nil
		}
		n, err = db.load(ctx, tx, bulkTable{name: table, cols: names}, src)
		if err != nil {
			return fmt.Errorf("load %s into %s: %w", path, table, err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return int(n), nil
}

// StreamRows reads stream_transactions in event order (timestamp, seq).
func (db *DB) StreamRows(ctx context.Context) ([]txpipe.Result, error) {
	return db.streamRows(ctx, db.SQL, "ORDER BY `timestamp`, seq")
}

// streamRows reads the rows of stream_transactions that where (a WHERE
// and/or ORDER BY clause with args) selects; Pos.Topic is left empty.
func (db *DB) streamRows(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, where string, args ...any) ([]txpipe.Result, error) {
	rows, err := q.QueryContext(ctx, "SELECT transaction_id, card_id, merchant_name, `timestamp`, amount, location, "+
		"transaction_type, related_transaction_id, status, pending_balance, decline_reason, seq, kafka_partition, kafka_offset "+
		"FROM stream_transactions "+where, args...)
	if err != nil {
		return nil, fmt.Errorf("read stream_transactions: %w", err)
	}
	defer rows.Close()
	var out []txpipe.Result
	for rows.Next() {
		var (
			r               txpipe.Result
			ts              time.Time
			amount, pending string
			related         sql.NullString
			status, reason  string
		)
		if err := rows.Scan(&r.ID, &r.CardID, &r.Merchant, &ts, &amount, &r.Location, &r.Type, &related,
			&status, &pending, &reason, &r.Seq, &r.Pos.Partition, &r.Pos.Offset); err != nil {
			return nil, fmt.Errorf("read stream_transactions: %w", err)
		}
		if r.Amount, err = txpipe.ParseMoney(amount); err != nil {
			return nil, fmt.Errorf("read stream_transactions: transaction %d: %w", r.ID, err)
		}
		if r.PendingBalance, err = txpipe.ParseMoney(pending); err != nil {
			return nil, fmt.Errorf("read stream_transactions: transaction %d: %w", r.ID, err)
		}
		r.Timestamp = ts
		r.RelatedID = related.String
		r.Status = txpipe.Status(status)
		r.DeclineReason = txpipe.DeclineReason(reason)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read stream_transactions: %w", err)
	}
	return out, nil
}
