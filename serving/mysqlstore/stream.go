package mysqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/serving/csvfile"
)

// StreamColumns are the columns of stream_transactions that WriteStream
// writes, in the order of streamArgs.
var StreamColumns = []string{"transaction_id", "card_id", "merchant_name", "timestamp", "amount", "location",
	"transaction_type", "related_transaction_id", "status", "pending_balance", "decline_reason", "seq", "kafka_partition", "kafka_offset"}

var streamTable = bulkTable{name: "stream_transactions", cols: StreamColumns, keepFirst: true}

var offsetsTable = bulkTable{name: "sink_offsets", cols: []string{"consumer", "topic", "partition", "next_offset", "topic_id"},
	upsert: true, update: []string{"next_offset", "topic_id"}}

// streamInsertMode is how WriteStream writes when LOAD DATA is not allowed.
const streamInsertMode = streamPrepared

// streamMode is how WriteStream writes the results.
type streamMode int

const (
	streamPrepared    streamMode = iota // multi-row INSERT … ON DUPLICATE KEY UPDATE (a no-op), prepared once per batch size
	streamInterpolate                   // the same statements, parameters interpolated by the driver
	streamLoadData                      // LOAD DATA LOCAL (which skips a duplicate key)
)

// WriteStream writes what a stream sink consumed in ONE transaction: the
// results into stream_transactions, the rejected rows into
// rejected_transactions (by Kafka position), and the consumer's next
// offsets into sink_offsets. On any error nothing is written; IsTransient
// says whether to retry. (A sink never writes a row twice: it stores its
// offsets with the rows.)
//
// stream_transactions holds one row per transaction id and never
// overwrites a row: of the rows with one id (in the batch, or one stored
// already), the first in event order is kept (txpipe.EventBefore) and the
// others become rejected rows (txpipe.Duplicate), exactly as the CSV view
// does, so both views hold the same rows.
//
// The results go in with LOAD DATA LOCAL from rows formatted in memory
// where the server allows it (measured at about 0.9× a raw LOAD DATA of
// the same rows, against about 0.6× for multi-row INSERT on MariaDB
// 10.11), otherwise with multi-row INSERT statements of WithBatchRows
// rows, prepared once for full batches. Both skip a row whose id is
// stored already: when the count of rows inserted says that happened, the
// batch's rows are taken back (to a savepoint) and the duplicates settled
// against the stored rows first.
func (db *DB) WriteStream(ctx context.Context, consumer string, results []txpipe.Result, rejected []txpipe.Rejected, offsets []txpipe.Offset) error {
	return db.writeStream(ctx, streamLoadData, consumer, &txpipe.ViewBatch{Results: results, Rejected: rejected, Next: offsets})
}

// WriteViews is WriteStream for every view a sink writes: also the alerts
// (alerts, by Kafka position) and the staged events (event_staging), in
// the same transaction.
func (db *DB) WriteViews(ctx context.Context, consumer string, b *txpipe.ViewBatch) error {
	return db.writeStream(ctx, streamLoadData, consumer, b)
}

var alertsTable = bulkTable{name: "alerts", upsert: true, cols: []string{"kafka_topic", "kafka_partition", "kafka_offset", "alert_type", "card_id",
	"window_from", "window_to", "late", "payments", "total", "first_seen", "last_seen", "event_date_origin", "alert_json"}}

var stagingTable = bulkTable{name: "event_staging", upsert: true, cols: []string{"kafka_topic", "kafka_partition", "kafka_offset", "event_type", "card_id",
	"event_date_origin", "event_dw_regdate", "event_json_data"}}

func init() {
	alertsTable.update = alertsTable.cols[3:]
	stagingTable.update = stagingTable.cols[3:]
}

const (
	msLayout = "2006-01-02 15:04:05.000"
	usLayout = "2006-01-02 15:04:05.000000"
)

// writeAlertsAndEvents upserts alerts and staged events by position.
func (db *DB) writeAlertsAndEvents(ctx context.Context, tx *sql.Tx, b *txpipe.ViewBatch) error {
	if len(b.Alerts) > 0 {
		_, err := db.insertRows(ctx, tx, alertsTable, sliceSource(len(b.Alerts), func(i int, row []any) []any {
			a := &b.Alerts[i]
			late := int64(0)
			if a.Late {
				late = 1
			}
			return append(row, a.Pos.Topic, int64(a.Pos.Partition), a.Pos.Offset, a.Type, a.CardID, a.From.UTC().Format(msLayout), a.To.UTC().Format(msLayout),
				late, a.Count, a.Total.String(), a.First.UTC().Format(msLayout), a.Last.UTC().Format(msLayout), a.Origin.UTC().Format(msLayout), a.JSON)
		}), 200)
		if err != nil {
			return fmt.Errorf("write alerts: %w", err)
		}
	}
	if len(b.Events) > 0 {
		_, err := db.insertRows(ctx, tx, stagingTable, sliceSource(len(b.Events), func(i int, row []any) []any {
			e := &b.Events[i]
			return append(row, e.Pos.Topic, int64(e.Pos.Partition), e.Pos.Offset, e.Type, e.CardID, e.Origin.UTC().Format(msLayout),
				e.Registered.UTC().Format(usLayout), e.JSON)
		}), 500)
		if err != nil {
			return fmt.Errorf("write event_staging: %w", err)
		}
	}
	return nil
}

// errRaced says that rows with the batch's ids appeared while it was
// written (another sink writing another partition); the write is retried.
var errRaced = errors.New("rows with the same transaction ids were written concurrently")

func (db *DB) writeStream(ctx context.Context, mode streamMode, consumer string, b *txpipe.ViewBatch) error {
	results, rejected, offsets := b.Results, b.Rejected, b.Next
	return db.inTx(ctx, func(tx *sql.Tx) error {
		kept, dups := firstOfEachID(results)
		if len(kept) > 0 {
			if _, err := tx.ExecContext(ctx, "SAVEPOINT stream_rows"); err != nil {
				return fmt.Errorf("write stream_transactions: %w", err)
			}
			n, err := db.writeResults(ctx, tx, mode, kept)
			if err != nil {
				return fmt.Errorf("write stream_transactions: %w", err)
			}
			if n != int64(len(kept)) {
				if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT stream_rows"); err != nil {
					return fmt.Errorf("write stream_transactions: %w", err)
				}
				var more []txpipe.Rejected
				if kept, more, err = db.settleStored(ctx, tx, kept); err != nil {
					return fmt.Errorf("write stream_transactions: %w", err)
				}
				dups = append(dups, more...)
				if n, err = db.writeResults(ctx, tx, mode, kept); err != nil {
					return fmt.Errorf("write stream_transactions: %w", err)
				}
				if n != int64(len(kept)) {
					return fmt.Errorf("write stream_transactions: %w", errRaced)
				}
			}
		}
		if err := db.writeRejected(ctx, tx, rejectedTable, append(rejected, dups...)); err != nil {
			return fmt.Errorf("write rejected_transactions: %w", err)
		}
		if err := db.writeAlertsAndEvents(ctx, tx, b); err != nil {
			return err
		}
		if len(offsets) > 0 {
			_, err := db.insertRows(ctx, tx, offsetsTable, sliceSource(len(offsets), func(i int, row []any) []any {
				o := &offsets[i]
				return append(row, consumer, o.Topic, int64(o.Partition), o.Next, o.TopicID)
			}), 1000)
			if err != nil {
				return fmt.Errorf("write sink_offsets: %w", err)
			}
		}
		return nil
	})
}

// streamArgs appends a result's values for StreamColumns.
func streamArgs(args []any, r *txpipe.Result) []any {
	return append(args, r.ID, r.CardID, r.Merchant, r.Timestamp.Format(txpipe.TimestampLayout), r.Amount.String(),
		r.Location, r.Type, nullIfEmpty(r.RelatedID), string(r.Status), r.PendingBalance.String(), string(r.DeclineReason), r.Seq,
		int64(r.Pos.Partition), r.Pos.Offset)
}

// AppendStreamRow appends a result as a LOAD DATA text line (the
// columns of StreamColumns, tab separated, backslash escapes, \N for NULL).
func AppendStreamRow(b []byte, r *txpipe.Result) []byte {
	b = strconv.AppendInt(b, r.ID, 10)
	b = append(b, '\t')
	b = strconv.AppendInt(b, r.CardID, 10)
	b = append(b, '\t')
	b = AppendLoadText(b, r.Merchant)
	b = append(b, '\t')
	b = r.Timestamp.AppendFormat(b, txpipe.TimestampLayout)
	b = append(b, '\t')
	b = r.Amount.Append(b)
	b = append(b, '\t')
	b = AppendLoadText(b, r.Location)
	b = append(b, '\t')
	b = AppendLoadText(b, r.Type)
	b = append(b, '\t')
	if r.RelatedID == "" {
		b = append(b, '\\', 'N')
	} else {
		b = AppendLoadText(b, r.RelatedID)
	}
	b = append(b, '\t')
	b = AppendLoadText(b, string(r.Status))
	b = append(b, '\t')
	b = r.PendingBalance.Append(b)
	b = append(b, '\t')
	b = AppendLoadText(b, string(r.DeclineReason))
	b = append(b, '\t')
	b = strconv.AppendInt(b, r.Seq, 10)
	b = append(b, '\t')
	b = strconv.AppendInt(b, int64(r.Pos.Partition), 10)
	b = append(b, '\t')
	b = strconv.AppendInt(b, r.Pos.Offset, 10)
	return append(b, '\n')
}

// writeResults inserts results and returns how many went in: those whose
// id is not stored yet.
func (db *DB) writeResults(ctx context.Context, tx *sql.Tx, mode streamMode, results []txpipe.Result) (int64, error) {
	if len(results) == 0 {
		return 0, nil
	}
	if mode == streamLoadData {
		if db.opts.loadData && !db.noLoadData.Load() {
			n, refused, err := db.loadStreamText(ctx, tx, results)
			if !refused {
				return n, err
			}
			db.noteRefused(err)
		}
		mode = streamInsertMode
	}
	var inserted int64
	batch := db.opts.streamBatch
	args := make([]any, 0, min(batch, len(results))*len(StreamColumns))
	for start := 0; start < len(results); start += batch {
		end := min(start+batch, len(results))
		args = args[:0]
		for i := start; i < end; i++ {
			args = streamArgs(args, &results[i])
		}
		var err error
		var res sql.Result
		if mode == streamPrepared && end-start == batch && batch*len(StreamColumns) <= maxPlaceholders {
			var stmt *sql.Stmt
			if stmt, err = db.prepared(ctx, streamTable, batch); err == nil {
				res, err = tx.StmtContext(ctx, stmt).ExecContext(ctx, args...)
			}
		} else {
			var q string
			if q, err = insertSQL(streamTable, end-start); err == nil {
				res, err = tx.ExecContext(ctx, q, args...)
			}
		}
		if err != nil {
			return 0, err
		}
		// ON DUPLICATE KEY UPDATE id=id counts 1 per row inserted, 0 per
		// row skipped.
		n, err := res.RowsAffected()
		if err != nil {
			return 0, err
		}
		inserted += n
		if db.testHookRows != nil {
			db.testHookRows(end)
		}
	}
	return inserted, nil
}

// maxPlaceholders is the most parameters a prepared statement may have.
const maxPlaceholders = 65535

// prepared returns the pool-wide prepared multi-row INSERT of rows rows
// into t; database/sql prepares it again on each connection that uses it.
func (db *DB) prepared(ctx context.Context, t bulkTable, rows int) (*sql.Stmt, error) {
	key := t.name + ":" + strconv.Itoa(rows)
	db.stmtMu.Lock()
	defer db.stmtMu.Unlock()
	if s := db.stmts[key]; s != nil {
		return s, nil
	}
	q, err := insertSQL(t, rows)
	if err != nil {
		return nil, err
	}
	s, err := db.SQL.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	db.stmts[key] = s
	return s, nil
}

var textBufs = sync.Pool{New: func() any { return new([]byte) }}

// loadStreamText writes results with LOAD DATA LOCAL … REPLACE, from the
// rows formatted in memory (they are in memory already).
func (db *DB) loadStreamText(ctx context.Context, tx *sql.Tx, results []txpipe.Result) (int64, bool, error) {
	if db.testRefuse {
		return 0, true, errTestRefused
	}
	stmt, err := loadDataStmt(streamTable, "")
	if err != nil {
		return 0, false, err
	}
	bp := textBufs.Get().(*[]byte)
	buf := (*bp)[:0]
	defer func() {
		if cap(buf) <= 8<<20 { // keep the buffers of ordinary batches only
			*bp = buf[:0]
			textBufs.Put(bp)
		}
	}()
	for i := range results {
		buf = AppendStreamRow(buf, &results[i])
		if i%1024 == 1023 {
			if err := ctx.Err(); err != nil {
				return 0, false, err
			}
			if db.testHookRows != nil {
				db.testHookRows(i + 1)
			}
		}
	}
	started, res, err := execLoadData(ctx, tx, stmt, func() io.Reader { return bytes.NewReader(buf) })
	if !started {
		return 0, err != nil && loadDataRefused(err), loadErr(err)
	}
	if err != nil {
		return 0, false, fmt.Errorf("load data: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, false, err
	}
	if n == int64(len(results)) { // else duplicates were skipped: the caller takes the rows back
		if err := checkWarnings(ctx, tx); err != nil {
			return 0, false, err
		}
	}
	return n, false, nil
}

// firstOfEachID keeps, of the results with one transaction id, the first
// in event order; the others are rejected as duplicates.
func firstOfEachID(results []txpipe.Result) ([]txpipe.Result, []txpipe.Rejected) {
	first := make(map[int64]int, len(results))
	dup := false
	for i := range results {
		j, ok := first[results[i].ID]
		if !ok {
			first[results[i].ID] = i
			continue
		}
		dup = true
		if txpipe.EventBefore(&results[i], &results[j]) {
			first[results[i].ID] = i
		}
	}
	if !dup {
		return results, nil
	}
	var kept []txpipe.Result
	var dups []txpipe.Rejected
	for i := range results {
		if first[results[i].ID] == i {
			kept = append(kept, results[i])
		} else {
			dups = append(dups, txpipe.Duplicate(&results[i], csvfile.PositionSource(results[i].Pos)))
		}
	}
	return kept, dups
}

// settleStored settles results (one per id) against the rows stored with
// their ids: a stored row that comes first stays and the result is
// rejected; a result that comes first replaces the stored row, which is
// deleted and rejected.
func (db *DB) settleStored(ctx context.Context, tx *sql.Tx, results []txpipe.Result) ([]txpipe.Result, []txpipe.Rejected, error) {
	byID := make(map[int64]int, len(results))
	ids := make([]any, 0, len(results))
	for i := range results {
		byID[results[i].ID] = i
		ids = append(ids, results[i].ID)
	}
	topic := results[0].Pos.Topic
	lose := map[int64]bool{} // results that lose to a stored row
	var dups []txpipe.Rejected
	var drop []any
	for start := 0; start < len(ids); start += 1000 {
		chunk := ids[start:min(start+1000, len(ids))]
		stored, err := db.streamRows(ctx, tx, "WHERE transaction_id IN ("+strings.Repeat("?,", len(chunk)-1)+"?) FOR UPDATE", chunk...)
		if err != nil {
			return nil, nil, err
		}
		for k := range stored {
			s := &stored[k]
			s.Pos.Topic = topic
			r := &results[byID[s.ID]]
			if s.Pos.Partition == r.Pos.Partition && s.Pos.Offset == r.Pos.Offset {
				lose[r.ID] = true // the very record, written before: nothing to do
				continue
			}
			if txpipe.EventBefore(s, r) {
				lose[r.ID] = true
				dups = append(dups, txpipe.Duplicate(r, csvfile.PositionSource(r.Pos)))
			} else {
				drop = append(drop, s.ID)
				dups = append(dups, txpipe.Duplicate(s, csvfile.PositionSource(s.Pos)))
			}
		}
	}
	for start := 0; start < len(drop); start += 1000 {
		chunk := drop[start:min(start+1000, len(drop))]
		if _, err := tx.ExecContext(ctx, "DELETE FROM stream_transactions WHERE transaction_id IN ("+strings.Repeat("?,", len(chunk)-1)+"?)", chunk...); err != nil {
			return nil, nil, fmt.Errorf("drop the later stored copies: %w", err)
		}
	}
	kept := results[:0:0]
	for i := range results {
		if !lose[results[i].ID] {
			kept = append(kept, results[i])
		}
	}
	return kept, dups, nil
}

// ResetPartition drops the rows of a topic partition and the consumer's
// offset of it, in one transaction: the topic was created anew, and its
// rows are written again from its start.
func (db *DB) ResetPartition(ctx context.Context, consumer, topic string, partition int32, streamRows bool) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		if streamRows {
			if _, err := tx.ExecContext(ctx, "DELETE FROM stream_transactions WHERE kafka_partition = ?", partition); err != nil {
				return fmt.Errorf("reset %s/%d: %w", topic, partition, err)
			}
		}
		for _, table := range []string{"rejected_transactions", "alerts", "event_staging"} {
			if _, err := tx.ExecContext(ctx, "DELETE FROM "+table+" WHERE kafka_topic = ? AND kafka_partition = ?", topic, partition); err != nil {
				return fmt.Errorf("reset %s/%d in %s: %w", topic, partition, table, err)
			}
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM sink_offsets WHERE consumer = ? AND topic = ? AND `partition` = ?", consumer, topic, partition); err != nil {
			return fmt.Errorf("reset %s/%d: %w", topic, partition, err)
		}
		return nil
	})
}

// Offsets returns the next offsets a consumer recorded for a topic, by
// partition.
func (db *DB) Offsets(ctx context.Context, consumer, topic string) (map[int32]txpipe.Offset, error) {
	rows, err := db.SQL.QueryContext(ctx, "SELECT `partition`, next_offset, topic_id FROM sink_offsets WHERE consumer = ? AND topic = ?", consumer, topic)
	if err != nil {
		return nil, fmt.Errorf("read sink offsets: %w", err)
	}
	defer rows.Close()
	out := map[int32]txpipe.Offset{}
	for rows.Next() {
		o := txpipe.Offset{Topic: topic}
		if err := rows.Scan(&o.Partition, &o.Next, &o.TopicID); err != nil {
			return nil, fmt.Errorf("read sink offsets: %w", err)
		}
		out[o.Partition] = o
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read sink offsets: %w", err)
	}
	return out, nil
}
