package mysqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/serving/csvfile"
)

var transactionColumns = append(append([]string{}, txpipe.TransactionColumns...), "seq")

// LoadTransactions replaces the transactions table with the rows of a
// transactions.csv, in one transaction. Rows that cannot be judged are not
// loaded: a wrong field count (field_count), broken CSV quoting (bad_csv:
// the row's first line only, see csvfile.TransactionReader), a field
// ParseTransaction refuses, a card that is not in the cards table
// (unknown_card) or a transaction id already loaded from an earlier line
// (duplicate_transaction_id; the first accepted row wins). They are
// returned and upserted into load_rejected, with Source
// "transactions.csv:line" (the file's base name), replacing the rejects of
// an earlier load of a file of that name. seq is the line number. (The
// stream's own rejected rows, rejected_transactions, come from Kafka.)
//
// A text field longer than its column, or not UTF-8, fails the whole load
// with an error naming the file, line and column.
func (db *DB) LoadTransactions(ctx context.Context, path string) (loaded int, rejected []txpipe.Rejected, err error) {
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		loaded, rejected, err = db.loadTransactions(ctx, tx, path)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	return loaded, rejected, nil
}

func (db *DB) loadTransactions(ctx context.Context, tx *sql.Tx, path string) (loaded int, rejected []txpipe.Rejected, err error) {
	r, err := csvfile.OpenTransactions(path)
	if err != nil {
		return 0, nil, err
	}
	defer r.Close()
	file := filepath.Base(path)
	var n int64
	err = func() error {
		cols, err := tableColumns(ctx, tx, "transactions")
		if err != nil {
			return err
		}
		width := widths(cols)
		cards, err := cardIDs(ctx, tx)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM transactions"); err != nil {
			return fmt.Errorf("empty transactions: %w", err)
		}
		seen := map[int64]int{} // transaction id → line
		reject := func(raw txpipe.RawTransaction, line int, reason txpipe.RejectReason, detail string) {
			rejected = append(rejected, txpipe.Rejected{Raw: raw, Reason: reason, Detail: detail, Source: file + ":" + strconv.Itoa(line)})
		}
		src := func(out []any) ([]any, error) {
			for {
				row, err := r.Next()
				if err == io.EOF {
					return out, io.EOF
				}
				if err != nil {
					return out, err
				}
				raw, line := row.Raw, row.Line
				if row.Reject != "" {
					reject(raw, line, row.Reject, row.Detail)
					continue
				}
				t, reason, detail := txpipe.ParseTransaction(raw)
				if reason != "" {
					reject(raw, line, reason, detail)
					continue
				}
				if _, ok := cards[t.CardID]; !ok {
					reject(raw, line, txpipe.RejectUnknownCard, fmt.Sprintf("card %d is not in the cards table", t.CardID))
					continue
				}
				if first, dup := seen[t.ID]; dup {
					reject(raw, line, txpipe.RejectDuplicate, fmt.Sprintf("transaction %d was already loaded from line %d", t.ID, first))
					continue
				}
				for _, f := range [...]struct{ col, v string }{
					{"merchant_name", t.Merchant}, {"location", t.Location}, {"transaction_type", t.Type}, {"related_transaction_id", t.RelatedID},
				} {
					if msg := fitErr(f.v, width[f.col]); msg != "" {
						return out, &csvfile.Error{File: path, Line: line, Column: f.col, Err: errors.New(msg)}
					}
				}
				seen[t.ID] = line
				return append(out, t.ID, t.CardID, t.Merchant, raw.Timestamp, t.Amount, t.Location, t.Type,
					nullIfEmpty(t.RelatedID), int64(line)), nil
			}
		}
		if n, err = db.load(ctx, tx, bulkTable{name: "transactions", cols: transactionColumns}, src); err != nil {
			return fmt.Errorf("load %s: %w", path, err)
		}
		prefix := file + ":"
		if _, err := tx.ExecContext(ctx, "DELETE FROM load_rejected WHERE LEFT(source, ?) = ?", len([]rune(prefix)), prefix); err != nil {
			return fmt.Errorf("drop the earlier rejects of %s: %w", file, err)
		}
		if err := db.writeRejected(ctx, tx, loadRejectedTable, rejected); err != nil {
			return fmt.Errorf("load %s: %w", path, err)
		}
		return nil
	}()
	if err != nil {
		return 0, nil, err
	}
	return int(n), rejected, nil
}

// writeRejected upserts rejected rows into t (rejectedTable, keyed by
// Kafka position, or loadRejectedTable, keyed by source).
func (db *DB) writeRejected(ctx context.Context, tx *sql.Tx, t bulkTable, rejected []txpipe.Rejected) error {
	if len(rejected) == 0 {
		return nil
	}
	_, err := db.insertRows(ctx, tx, t, sliceSource(len(rejected), func(i int, row []any) []any {
		return rejectedRow(row, &rejected[i], seqOf(rejected[i].Source))[:len(t.cols)]
	}), 500)
	return err
}

// seqOf is the number a rejected row's source ends with: the line of
// "file:line", the offset of "topic/partition/offset".
func seqOf(source string) int64 {
	i := strings.LastIndexAny(source, ":/@")
	n, err := strconv.ParseInt(source[i+1:], 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// cardIDs reads the ids of the cards table.
func cardIDs(ctx context.Context, tx *sql.Tx) (map[int64]struct{}, error) {
	rows, err := tx.QueryContext(ctx, "SELECT card_id FROM cards")
	if err != nil {
		return nil, fmt.Errorf("read card ids: %w", err)
	}
	defer rows.Close()
	ids := map[int64]struct{}{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("read card ids: %w", err)
		}
		ids[id] = struct{}{}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read card ids: %w", err)
	}
	return ids, nil
}

// scanChunk is how many rows ScanTransactions reads per query (a
// variable for the tests).
var scanChunk = 5000

// ScanTransactions streams the transactions table to fn in event order
// (timestamp, then seq), with the fields written as in transactions.csv:
// money with two decimals, timestamps as YYYY-MM-DD HH:MM:SS, "" for no
// related transaction. An error from fn stops it.
//
// It reads the table in chunks of scanChunk rows by keyset (timestamp,
// seq, transaction_id) inside one read-only transaction: memory stays
// bounded, every chunk sees the same snapshot, and a slow fn (a producer
// waiting for its broker) never leaves a half-read result set on the
// connection for the server to time out.
//
// after, when not empty, is a position fn was given before: the scan
// continues after that row. fn gets each row's position.
func (db *DB) ScanTransactions(ctx context.Context, after string, fn func(raw txpipe.RawTransaction, seq int64, position string) error) error {
	var from *scanKey
	if after != "" {
		k, err := parseScanKey(after)
		if err != nil {
			return fmt.Errorf("scan transactions: %w", err)
		}
		from = &k
	}
	tx, err := db.SQL.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("scan transactions: %w", err)
	}
	defer tx.Rollback()
	const cols = "SELECT transaction_id, card_id, merchant_name, `timestamp`, amount, location, " +
		"transaction_type, related_transaction_id, seq FROM transactions "
	order := " ORDER BY `timestamp`, seq, transaction_id LIMIT " + strconv.Itoa(scanChunk)
	type row struct {
		raw     txpipe.RawTransaction
		id, seq int64
		ts      time.Time
	}
	chunk := make([]row, 0, scanChunk)
	for first := true; ; first = false {
		var rows *sql.Rows
		if !first {
			last := chunk[len(chunk)-1]
			from = &scanKey{ts: last.ts, seq: last.seq, id: last.id}
		}
		if from == nil {
			rows, err = tx.QueryContext(ctx, cols+order)
		} else {
			rows, err = tx.QueryContext(ctx, cols+"WHERE `timestamp` > ? OR (`timestamp` = ? AND (seq > ? OR (seq = ? AND transaction_id > ?)))"+order,
				from.ts, from.ts, from.seq, from.seq, from.id)
		}
		if err != nil {
			return fmt.Errorf("scan transactions: %w", err)
		}
		chunk = chunk[:0]
		for rows.Next() {
			var (
				r       row
				card    int64
				amount  []byte
				related sql.NullString
			)
			if err := rows.Scan(&r.id, &card, &r.raw.Merchant, &r.ts, &amount, &r.raw.Location, &r.raw.Type, &related, &r.seq); err != nil {
				rows.Close()
				return fmt.Errorf("scan transactions: %w", err)
			}
			m, err := txpipe.ParseMoney(string(amount))
			if err != nil {
				rows.Close()
				return fmt.Errorf("scan transactions: transaction %d: %w", r.id, err)
			}
			r.raw.TransactionID = strconv.FormatInt(r.id, 10)
			r.raw.CardID = strconv.FormatInt(card, 10)
			r.raw.Timestamp = r.ts.Format(txpipe.TimestampLayout)
			r.raw.Amount = m.String()
			r.raw.RelatedID = related.String
			chunk = append(chunk, r)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("scan transactions: %w", err)
		}
		for i := range chunk {
			c := &chunk[i]
			if err := fn(c.raw, c.seq, scanKey{ts: c.ts, seq: c.seq, id: c.id}.String()); err != nil {
				return err
			}
		}
		if len(chunk) < scanChunk {
			return nil
		}
	}
}

// scanKey is a row's place in ScanTransactions' order, as a position:
// "timestamp|seq|transaction_id".
type scanKey struct {
	ts      time.Time
	seq, id int64
}

func (k scanKey) String() string {
	return k.ts.Format(txpipe.TimestampLayout) + "|" + strconv.FormatInt(k.seq, 10) + "|" + strconv.FormatInt(k.id, 10)
}

func parseScanKey(s string) (scanKey, error) {
	parts := strings.Split(s, "|")
	if len(parts) != 3 {
		return scanKey{}, fmt.Errorf("position %q is not timestamp|seq|transaction_id", s)
	}
	ts, ok := txpipe.ParseTimestamp(parts[0])
	seq, err1 := strconv.ParseInt(parts[1], 10, 64)
	id, err2 := strconv.ParseInt(parts[2], 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return scanKey{}, fmt.Errorf("position %q is not timestamp|seq|transaction_id", s)
	}
	return scanKey{ts: ts, seq: seq, id: id}, nil
}
