package batch

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/txpipe/txpipe"
)

// emitFunc takes a full record of txSchema; it owns (releases) it.
type emitFunc func(rec arrow.Record) error

var (
	pendingBytes  = []byte(txpipe.StatusPending)
	declinedBytes = []byte(txpipe.StatusDeclined)
	approvedBytes = []byte(txpipe.StatusApproved)
)

// statusBytes returns the bytes of a valid status, nil for anything else.
func statusBytes(b []byte) []byte {
	switch string(b) {
	case string(txpipe.StatusPending):
		return pendingBytes
	case string(txpipe.StatusDeclined):
		return declinedBytes
	case string(txpipe.StatusApproved):
		return approvedBytes
	}
	return nil
}

// streamQuery reads the stream results in event order: by timestamp, ties
// in input order.
const streamQuery = "SELECT transaction_id, card_id, merchant_name, `timestamp`, amount, location, " +
	"transaction_type, related_transaction_id, status, pending_balance, decline_reason, seq, kafka_partition, kafka_offset " +
	"FROM stream_transactions ORDER BY `timestamp`, seq"

// readStreamMySQL streams stream_transactions into records of b's
// capacity; rows are never held beyond the record being built.
func readStreamMySQL(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, b *txBuilder, cut cutoffs, emit emitFunc) error {
	rows, err := q.QueryContext(ctx, streamQuery)
	if err != nil {
		return fmt.Errorf("read stream_transactions: %w", err)
	}
	defer rows.Close()
	var raw [numTxCols]sql.RawBytes
	var ts timestampScanner
	var pos txpipe.Position
	dest := make([]any, numTxCols, numTxCols+2)
	for i := range raw {
		dest[i] = &raw[i]
	}
	dest[colTimestamp] = &ts
	dest = append(dest, &pos.Partition, &pos.Offset)
	var n int64
	for rows.Next() {
		n++
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("read stream_transactions row %d: %w", n, err)
		}
		if err := b.appendRaw(&raw, ts.v); err != nil {
			return fmt.Errorf("read stream_transactions row %d (transaction_id %q): %w", n, raw[colID], err)
		}
		cut.add(pos)
		if b.full() {
			if err := emit(b.newRecord()); err != nil {
				return err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read stream_transactions after row %d: %w", n, err)
	}
	if rec := b.newRecord(); rec != nil {
		return emit(rec)
	}
	return nil
}

// appendRaw checks and appends a row of stream_transactions as the MySQL
// text protocol returns it (ts scanned apart). Nothing is appended when a
// field is bad.
func (b *txBuilder) appendRaw(raw *[numTxCols]sql.RawBytes, ts arrow.Timestamp) error {
	id, ok := parseInt(raw[colID])
	if !ok || id <= 0 {
		return fmt.Errorf("transaction_id %q is not a positive integer", raw[colID])
	}
	card, ok := parseInt(raw[colCard])
	if !ok || card <= 0 {
		return fmt.Errorf("card_id %q is not a positive integer", raw[colCard])
	}
	amount, err := parseMoney(raw[colAmount])
	if err != nil {
		return fmt.Errorf("amount: %w", err)
	}
	pending, err := parseMoney(raw[colPending])
	if err != nil {
		return fmt.Errorf("pending_balance: %w", err)
	}
	status := statusBytes(raw[colStatus])
	if status == nil {
		return fmt.Errorf("status %q is not pending, declined or approved", raw[colStatus])
	}
	seq, ok := parseInt(raw[colSeq])
	if !ok {
		return fmt.Errorf("seq %q is not an integer", raw[colSeq])
	}
	b.id.append(id)
	b.card.append(card)
	b.merchant.append(raw[colMerchant])
	b.ts.append(int64(ts))
	b.amount.append(int64(amount))
	b.location.append(raw[colLocation])
	b.typ.append(raw[colType])
	if len(raw[colRelated]) == 0 { // NULL or '': no related transaction
		b.related.appendNull()
	} else {
		b.related.append(raw[colRelated])
	}
	b.status.append(status)
	b.pending.append(int64(pending))
	b.decl.append(raw[colDecline])
	b.seq.append(seq)
	b.rows++
	return nil
}

// timestampScanner scans a DATETIME whether the DSN has parseTime (a
// time.Time, whose wall clock is taken) or not (its text).
type timestampScanner struct{ v arrow.Timestamp }

func (s *timestampScanner) Scan(src any) error {
	switch x := src.(type) {
	case []byte:
		ts, ok := parseTimestamp(x)
		if !ok {
			return fmt.Errorf("timestamp %q is not YYYY-MM-DD HH:MM:SS", x)
		}
		s.v = ts
	case time.Time:
		y, mo, d := x.Date()
		h, mi, sec := x.Clock()
		s.v = arrow.Timestamp(time.Date(y, mo, d, h, mi, sec, 0, time.UTC).UnixMicro())
	default:
		return fmt.Errorf("timestamp: unexpected %T", src)
	}
	return nil
}

// cutoffs are, per partition of the validated topic, the offset after the
// last stream row a run read: the boundary between the batch views and
// what the stream judged after them. Every row of a partition below it is
// in the views (a sink writes a partition in offset order), none at or
// above it.
type cutoffs map[int32]int64

func (c cutoffs) add(p txpipe.Position) {
	if p.Offset >= 0 && p.Offset+1 > c[p.Partition] {
		c[p.Partition] = p.Offset + 1
	}
}

// String lists the cut-offs as "partition:offset" in partition order.
func (c cutoffs) String() string {
	parts := slices.Sorted(maps.Keys(c))
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d:%d", p, c[p])
	}
	return b.String()
}
