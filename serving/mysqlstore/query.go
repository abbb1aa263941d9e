package mysqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/internal/retry"
)

// Queries answers the query side (txpipe.QueryStore) from the tables:
// the batch views (batch_transactions, cards_updated, customers_updated,
// batch_cutoffs, swapped in by one RENAME) and stream_transactions after
// their cut-off.
//
// Each answer reads one consistent state: a transactions page is one
// statement (one read view, its tables opened together, so a RENAME of
// the views waits for it), and the card and customer answers read in one
// REPEATABLE READ transaction that opens batch_cutoffs first. MySQL
// answers "table definition has changed" to a transaction whose read view
// predates a table swapped in: the read is retried, within a bound.
type Queries struct {
	db *sql.DB
}

// Queries returns the query side of db.
func (db *DB) Queries() *Queries { return &Queries{db: db.SQL} }

var _ txpipe.QueryStore = (*Queries)(nil)

// readBound bounds the retries of one answer.
const readBound = 5 * time.Second

// errTableChanged is MySQL's "table definition has changed, please retry
// transaction" (ER_TABLE_DEF_CHANGED).
const errTableChanged = 1412

func retryable(err error) bool { return mysqlErrNo(err) == errTableChanged || IsTransient(err) }

// read runs fn until it succeeds, fails for good, or readBound runs out.
// An error the database caused (down, retries exhausted) wraps
// txpipe.ErrUnavailable; fn's own errors (not found) come back as they
// are.
func (q *Queries) read(ctx context.Context, what string, fn func(ctx context.Context) error) error {
	var final error
	err := retry.Do(ctx, retry.Policy{What: what, Initial: 20 * time.Millisecond, Max: time.Second, Bound: readBound, Transient: retryable},
		func(ctx context.Context) error {
			err := fn(ctx)
			if errors.Is(err, txpipe.ErrNotFound) {
				final = err
				return nil
			}
			return err
		})
	if final != nil {
		return final
	}
	if err != nil && (retryable(err) || errors.Is(err, retry.ErrBound)) {
		return fmt.Errorf("%w: %w", txpipe.ErrUnavailable, err)
	}
	return err
}

// inTx runs fn in a read-only REPEATABLE READ transaction whose first read
// is the cut-off (so the views it reads later are those of the same run).
func (q *Queries) inTx(ctx context.Context, what string, fn func(ctx context.Context, tx *sql.Tx, cut txpipe.Cutoffs) error) error {
	return q.read(ctx, what, func(ctx context.Context) error {
		tx, err := q.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
		if err != nil {
			return err
		}
		defer tx.Rollback()
		cut, err := readCutoffs(ctx, tx)
		if err != nil {
			return err
		}
		if testHookAfterCutoffs != nil {
			testHookAfterCutoffs()
		}
		return fn(ctx, tx, cut)
	})
}

// testHookAfterCutoffs, for tests, runs in a card or customer answer's
// transaction after its first read.
var testHookAfterCutoffs func()

type rowQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// cutoffsSQL reads the cut-off and, in the same statement, whether there
// is a batch view at all (a row of cards_updated: every run writes every
// card).
const cutoffsSQL = "SELECT topic, `partition`, next_offset FROM batch_cutoffs " +
	"UNION ALL (SELECT '', -1, -1 FROM cards_updated LIMIT 1)"

func readCutoffs(ctx context.Context, q rowQuerier) (txpipe.Cutoffs, error) {
	cut := txpipe.Cutoffs{Next: map[int32]int64{}}
	rows, err := q.QueryContext(ctx, cutoffsSQL)
	if err != nil {
		return cut, fmt.Errorf("read batch_cutoffs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var topic string
		var p int32
		var next int64
		if err := rows.Scan(&topic, &p, &next); err != nil {
			return cut, fmt.Errorf("read batch_cutoffs: %w", err)
		}
		if p < 0 {
			cut.Batch = true
			continue
		}
		cut.Topic, cut.Next[p] = topic, next
	}
	if err := rows.Err(); err != nil {
		return cut, fmt.Errorf("read batch_cutoffs: %w", err)
	}
	return cut, nil
}

// pendingSQL is the merge rule (txpipe.Cutoffs.Settled) for a row s of
// stream_transactions: pending without a batch view, else at or past its
// partition's cut-off (0 for a partition without one), so never a row
// written before positions (-1). The subqueries read the views of the
// same statement.
const pendingSQL = "(NOT EXISTS (SELECT 1 FROM cards_updated) OR s.kafka_offset >= " +
	"COALESCE((SELECT c.next_offset FROM batch_cutoffs c WHERE c.`partition` = s.kafka_partition), 0))"

// txColumns are the columns of a transaction row, in the order scanTx
// reads them.
const txColumns = "transaction_id, card_id, merchant_name, `timestamp`, amount, location, transaction_type, " +
	"related_transaction_id, status, pending_balance, decline_reason, seq"

// TransactionsSQL is the one statement that answers a transactions page:
// the batch view's rows and the stream's pending rows of a card or a
// merchant, by timestamp and id, after the cursor, one more than the page
// (which says whether there is more). Exported for the benchmark, which
// issues it bare.
func TransactionsSQL(q txpipe.TxQuery) (string, []any) {
	var where []string
	var args []any
	if q.CardID != 0 {
		where, args = append(where, "card_id = ?"), append(args, q.CardID)
	} else {
		where, args = append(where, "merchant_name = ?"), append(args, q.Merchant)
	}
	from := q.From
	if q.After != nil && q.After.Timestamp.After(from) {
		from = q.After.Timestamp
	}
	if !from.IsZero() {
		where, args = append(where, "`timestamp` >= ?"), append(args, from.UTC().Format(txpipe.TimestampLayout))
	}
	if !q.To.IsZero() {
		where, args = append(where, "`timestamp` <= ?"), append(args, q.To.UTC().Format(txpipe.TimestampLayout))
	}
	if k := q.After; k != nil {
		ts := k.Timestamp.UTC().Format(txpipe.TimestampLayout)
		where = append(where, "(`timestamp` > ? OR (`timestamp` = ? AND transaction_id > ?))")
		args = append(args, ts, ts, k.ID)
	}
	cond := strings.Join(where, " AND ")
	n := q.Limit + 1
	order := " ORDER BY `timestamp`, transaction_id LIMIT ?"
	query := "(SELECT 1 AS settled, " + txColumns + ", -1 AS kafka_partition, -1 AS kafka_offset FROM batch_transactions WHERE " + cond + order + ")" +
		" UNION ALL (SELECT 0, " + txColumns + ", kafka_partition, kafka_offset FROM stream_transactions s WHERE " + cond + " AND " + pendingSQL + order + ")" +
		order
	all := append(append(append(slices.Clone(args), n), args...), n, n)
	return query, all
}

// txScanner reads rows of TransactionsSQL: raw bytes for every column
// but the timestamp, parsed here rather than by database/sql's
// conversions.
type txScanner struct {
	raw  [15]sql.RawBytes
	ts   time.Time
	dest []any
}

func newTxScanner() *txScanner {
	s := &txScanner{dest: make([]any, 15)}
	for i := range s.raw {
		s.dest[i] = &s.raw[i]
	}
	s.dest[4] = &s.ts
	return s
}

// atoi parses a decimal integer of a column.
func atoi(b []byte, col string) (int64, error) {
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s %q: not an integer", col, b)
	}
	return n, nil
}

func (s *txScanner) scan(rows *sql.Rows) (txpipe.TxRow, error) {
	var r txpipe.TxRow
	if err := rows.Scan(s.dest...); err != nil {
		return r, err
	}
	raw := &s.raw
	var err error
	if r.ID, err = atoi(raw[1], "transaction_id"); err != nil {
		return r, err
	}
	if r.CardID, err = atoi(raw[2], "card_id"); err != nil {
		return r, err
	}
	var part, off int64
	if part, err = atoi(raw[13], "kafka_partition"); err != nil {
		return r, err
	}
	if off, err = atoi(raw[14], "kafka_offset"); err != nil {
		return r, err
	}
	r.Settled, r.Timestamp, r.Pos = string(raw[0]) == "1", s.ts, txpipe.Position{Partition: int32(part), Offset: off}
	r.Merchant, r.Location, r.Type, r.RelatedID = string(raw[3]), string(raw[6]), string(raw[7]), string(raw[8])
	r.Status, r.DeclineReason = txpipe.Status(raw[9]), txpipe.DeclineReason(raw[11])
	if r.Amount, err = txpipe.ParseMoney(string(raw[5])); err != nil {
		return r, fmt.Errorf("transaction %d: amount: %w", r.ID, err)
	}
	if r.PendingBalance, err = txpipe.ParseMoney(string(raw[10])); err != nil {
		return r, fmt.Errorf("transaction %d: pending_balance: %w", r.ID, err)
	}
	return r, nil
}

// Transactions returns a page of a card's or a merchant's transactions;
// ErrNotFound for a card or a merchant that has none at all.
func (q *Queries) Transactions(ctx context.Context, tq txpipe.TxQuery) (txpipe.TxPage, error) {
	var page txpipe.TxPage
	query, args := TransactionsSQL(tq)
	err := q.read(ctx, "read transactions", func(ctx context.Context) error {
		page = txpipe.TxPage{}
		rows, err := q.db.QueryContext(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("read transactions: %w", err)
		}
		defer rows.Close()
		sc := newTxScanner()
		for rows.Next() {
			r, err := sc.scan(rows)
			if err != nil {
				return fmt.Errorf("read transactions: %w", err)
			}
			page.Rows = append(page.Rows, r)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read transactions: %w", err)
		}
		if len(page.Rows) > tq.Limit {
			page.Rows, page.More = page.Rows[:tq.Limit], true
		}
		if len(page.Rows) > 0 || tq.After != nil {
			return nil
		}
		return q.exists(ctx, tq)
	})
	return page, err
}

// exists says ErrNotFound for a card that is not in the master data, or a
// merchant without any transaction.
func (q *Queries) exists(ctx context.Context, tq txpipe.TxQuery) error {
	var n int
	var err error
	if tq.CardID != 0 {
		err = q.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM cards WHERE card_id = ?", tq.CardID).Scan(&n)
	} else {
		err = q.db.QueryRowContext(ctx, "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM batch_transactions WHERE merchant_name = ? LIMIT 1) b) + "+
			"(SELECT COUNT(*) FROM (SELECT 1 FROM stream_transactions WHERE merchant_name = ? LIMIT 1) s)", tq.Merchant, tq.Merchant).Scan(&n)
	}
	if err != nil {
		return fmt.Errorf("read transactions: %w", err)
	}
	if n > 0 {
		return nil
	}
	if tq.CardID != 0 {
		return fmt.Errorf("card %d: %w", tq.CardID, txpipe.ErrNotFound)
	}
	return fmt.Errorf("merchant: no transaction: %w", txpipe.ErrNotFound)
}

// CardByNumber returns the id of the card with this number.
func (q *Queries) CardByNumber(ctx context.Context, number string) (int64, error) {
	var id int64
	err := q.read(ctx, "find a card by number", func(ctx context.Context) error {
		err := q.db.QueryRowContext(ctx, "SELECT card_id FROM cards WHERE card_number = ? ORDER BY card_id LIMIT 1", number).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("card_number: no card has this number: %w", txpipe.ErrNotFound)
		}
		return err
	})
	return id, err
}

const cardColumns = "card_id, customer_id, card_type_id, card_number, expiration_date, credit_limit, current_balance, issue_date"

func scanCard(s interface{ Scan(...any) error }) (txpipe.Card, error) {
	var c txpipe.Card
	var limit, balance string
	if err := s.Scan(&c.ID, &c.CustomerID, &c.CardTypeID, &c.Number, &c.Expiration, &limit, &balance, &c.IssueDate); err != nil {
		return c, err
	}
	var err error
	if c.CreditLimit, err = txpipe.ParseMoney(limit); err != nil {
		return c, fmt.Errorf("card %d: credit_limit: %w", c.ID, err)
	}
	if c.CurrentBalance, err = txpipe.ParseMoney(balance); err != nil {
		return c, fmt.Errorf("card %d: current_balance: %w", c.ID, err)
	}
	return c, nil
}

// cardViews builds the views of cards: the batch's limits and balances,
// the batch view's counts and the pending rows after the cut-off.
func cardViews(ctx context.Context, tx *sql.Tx, cut txpipe.Cutoffs, cards []txpipe.Card) ([]txpipe.CardView, error) {
	if len(cards) == 0 {
		return nil, nil
	}
	views := make([]txpipe.CardView, len(cards))
	idx := map[int64]int{}
	ids := make([]any, len(cards))
	for i, c := range cards {
		views[i] = txpipe.CardView{Card: c, CreditLimit: c.CreditLimit, Settled: c.CurrentBalance,
			SettledCounts: txpipe.StatusCounts{}, PendingCounts: txpipe.StatusCounts{}}
		idx[c.ID] = i
		ids[i] = c.ID
	}
	in := "(" + strings.TrimSuffix(strings.Repeat("?,", len(ids)), ",") + ")"
	if cut.Batch {
		rows, err := tx.QueryContext(ctx, "SELECT "+cardColumns+" FROM cards_updated WHERE card_id IN "+in, ids...)
		if err != nil {
			return nil, fmt.Errorf("read cards_updated: %w", err)
		}
		for rows.Next() {
			c, err := scanCard(rows)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("read cards_updated: %w", err)
			}
			v := &views[idx[c.ID]]
			v.CreditLimit, v.Settled = c.CreditLimit, c.CurrentBalance
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read cards_updated: %w", err)
		}
		if err := countStatuses(ctx, tx, "SELECT card_id, status, COUNT(*), 0 FROM batch_transactions WHERE card_id IN "+in+" GROUP BY card_id, status",
			ids, func(card int64, s txpipe.Status, n int64, _ txpipe.Money) {
				views[idx[card]].SettledCounts[s] += n
			}); err != nil {
			return nil, err
		}
	}
	err := countStatuses(ctx, tx, "SELECT card_id, status, COUNT(*), COALESCE(SUM(amount), 0) FROM stream_transactions s WHERE card_id IN "+in+
		" AND "+pendingSQL+" GROUP BY card_id, status", ids, func(card int64, s txpipe.Status, n int64, sum txpipe.Money) {
		v := &views[idx[card]]
		v.PendingCounts[s] += n
		if s == txpipe.StatusPending {
			v.Pending += sum
		}
	})
	return views, err
}

func countStatuses(ctx context.Context, tx *sql.Tx, query string, args []any, fn func(card int64, s txpipe.Status, n int64, sum txpipe.Money)) error {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("count transactions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var card, n int64
		var status, sum string
		if err := rows.Scan(&card, &status, &n, &sum); err != nil {
			return fmt.Errorf("count transactions: %w", err)
		}
		m, err := txpipe.ParseMoney(sum)
		if err != nil {
			return fmt.Errorf("count transactions: card %d: sum %q: %w", card, sum, err)
		}
		fn(card, txpipe.Status(status), n, m)
	}
	return rows.Err()
}

// batchInfo names the run whose views are in place: the last successful
// run, when its recorded cut-offs are those of the views (a run records
// its end just after its swap: until then the views are of a run not
// yet named).
func batchInfo(ctx context.Context, tx *sql.Tx, cut txpipe.Cutoffs) (txpipe.BatchInfo, error) {
	b := txpipe.BatchInfo{Cutoffs: cut}
	if !cut.Batch {
		return b, nil
	}
	var id int64
	var finished sql.NullTime
	err := tx.QueryRowContext(ctx, "SELECT run_id, finished_at FROM batch_runs WHERE status = 'ok' ORDER BY run_id DESC LIMIT 1").Scan(&id, &finished)
	if errors.Is(err, sql.ErrNoRows) {
		return b, nil
	}
	if err != nil {
		return b, fmt.Errorf("read batch_runs: %w", err)
	}
	recorded, err := runCutoffs(ctx, tx, []any{id})
	if err != nil {
		return b, err
	}
	if maps.Equal(recorded[id], cut.Next) {
		b.RunID, b.FinishedAt = id, finished.Time
	}
	return b, nil
}

// runCutoffs reads the recorded cut-offs of runs.
func runCutoffs(ctx context.Context, q rowQuerier, ids []any) (map[int64]map[int32]int64, error) {
	out := map[int64]map[int32]int64{}
	if len(ids) == 0 {
		return out, nil
	}
	in := "(" + strings.TrimSuffix(strings.Repeat("?,", len(ids)), ",") + ")"
	rows, err := q.QueryContext(ctx, "SELECT run_id, `partition`, next_offset FROM batch_run_cutoffs WHERE run_id IN "+in, ids...)
	if err != nil {
		return nil, fmt.Errorf("read batch_run_cutoffs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, next int64
		var p int32
		if err := rows.Scan(&id, &p, &next); err != nil {
			return nil, fmt.Errorf("read batch_run_cutoffs: %w", err)
		}
		if out[id] == nil {
			out[id] = map[int32]int64{}
		}
		out[id][p] = next
	}
	return out, rows.Err()
}

// Card returns a card as of the views in place.
func (q *Queries) Card(ctx context.Context, id int64) (txpipe.CardView, txpipe.BatchInfo, error) {
	var view txpipe.CardView
	var info txpipe.BatchInfo
	err := q.inTx(ctx, "read a card", func(ctx context.Context, tx *sql.Tx, cut txpipe.Cutoffs) error {
		c, err := scanCard(tx.QueryRowContext(ctx, "SELECT "+cardColumns+" FROM cards WHERE card_id = ?", id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("card %d: %w", id, txpipe.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("read cards: %w", err)
		}
		views, err := cardViews(ctx, tx, cut, []txpipe.Card{c})
		if err != nil {
			return err
		}
		view = views[0]
		info, err = batchInfo(ctx, tx, cut)
		return err
	})
	return view, info, err
}

// Customer returns a customer with its cards.
func (q *Queries) Customer(ctx context.Context, id int64) (txpipe.CustomerView, txpipe.BatchInfo, error) {
	var view txpipe.CustomerView
	var info txpipe.BatchInfo
	err := q.inTx(ctx, "read a customer", func(ctx context.Context, tx *sql.Tx, cut txpipe.Cutoffs) error {
		view = txpipe.CustomerView{}
		c := &view.Customer
		var income string
		err := tx.QueryRowContext(ctx, "SELECT customer_id, name, phone_number, address, email, credit_score, annual_income FROM customers WHERE customer_id = ?", id).
			Scan(&c.ID, &c.Name, &c.Phone, &c.Address, &c.Email, &c.CreditScore, &income)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("customer %d: %w", id, txpipe.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("read customers: %w", err)
		}
		if c.AnnualIncome, err = txpipe.ParseMoney(income); err != nil {
			return fmt.Errorf("customer %d: annual_income: %w", id, err)
		}
		view.ScoreAfter = c.CreditScore
		if cut.Batch {
			err := tx.QueryRowContext(ctx, "SELECT credit_score FROM customers_updated WHERE customer_id = ?", id).Scan(&view.ScoreAfter)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("read customers_updated: %w", err)
			}
		}
		rows, err := tx.QueryContext(ctx, "SELECT "+cardColumns+" FROM cards WHERE customer_id = ? ORDER BY card_id", id)
		if err != nil {
			return fmt.Errorf("read cards: %w", err)
		}
		var cards []txpipe.Card
		for rows.Next() {
			card, err := scanCard(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("read cards: %w", err)
			}
			cards = append(cards, card)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read cards: %w", err)
		}
		if view.Cards, err = cardViews(ctx, tx, cut, cards); err != nil {
			return err
		}
		info, err = batchInfo(ctx, tx, cut)
		return err
	})
	return view, info, err
}

// Rejected returns a page of rejected_transactions in position order.
func (q *Queries) Rejected(ctx context.Context, rq txpipe.RejectedQuery) (txpipe.RejectedPage, error) {
	var where []string
	var args []any
	if rq.Reason != "" {
		where, args = append(where, "reason = ?"), append(args, string(rq.Reason))
	}
	if !rq.From.IsZero() {
		where, args = append(where, "`timestamp` COLLATE utf8mb4_bin >= ?"), append(args, rq.From.UTC().Format(txpipe.TimestampLayout))
	}
	if !rq.To.IsZero() {
		where, args = append(where, "`timestamp` COLLATE utf8mb4_bin <= ?"), append(args, rq.To.UTC().Format(txpipe.TimestampLayout))
	}
	if a := rq.After; a != nil {
		where = append(where, "kafka_topic >= ? AND (kafka_topic > ? OR (kafka_partition > ? OR (kafka_partition = ? AND kafka_offset > ?)))")
		args = append(args, a.Topic, a.Topic, a.Partition, a.Partition, a.Offset)
	}
	query := "SELECT transaction_id, reason, source, card_id, merchant_name, `timestamp`, amount, location, transaction_type, " +
		"related_transaction_id, detail, seq, kafka_topic, kafka_partition, kafka_offset FROM rejected_transactions"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY kafka_topic, kafka_partition, kafka_offset LIMIT ?"
	args = append(args, rq.Limit+1)
	var page txpipe.RejectedPage
	err := q.read(ctx, "read rejected rows", func(ctx context.Context) error {
		page = txpipe.RejectedPage{}
		rows, err := q.db.QueryContext(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("read rejected_transactions: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var r txpipe.Rejected
			var reason string
			if err := rows.Scan(&r.Raw.TransactionID, &reason, &r.Source, &r.Raw.CardID, &r.Raw.Merchant, &r.Raw.Timestamp, &r.Raw.Amount,
				&r.Raw.Location, &r.Raw.Type, &r.Raw.RelatedID, &r.Detail, &r.Seq, &r.Pos.Topic, &r.Pos.Partition, &r.Pos.Offset); err != nil {
				return fmt.Errorf("read rejected_transactions: %w", err)
			}
			r.Reason = txpipe.RejectReason(reason)
			page.Rows = append(page.Rows, r)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read rejected_transactions: %w", err)
		}
		if len(page.Rows) > rq.Limit {
			page.Rows, page.More = page.Rows[:rq.Limit], true
		}
		return nil
	})
	return page, err
}

// BatchRuns returns a page of batch_runs, newest first, with their
// recorded cut-offs.
func (q *Queries) BatchRuns(ctx context.Context, rq txpipe.RunQuery) (txpipe.RunPage, error) {
	var page txpipe.RunPage
	err := q.read(ctx, "read batch runs", func(ctx context.Context) error {
		page = txpipe.RunPage{}
		query, args := "SELECT run_id, started_at, finished_at, rows_read, cutoff, status, `error` FROM batch_runs", []any{}
		if rq.Before > 0 {
			query, args = query+" WHERE run_id < ?", append(args, rq.Before)
		}
		query, args = query+" ORDER BY run_id DESC LIMIT ?", append(args, rq.Limit+1)
		rows, err := q.db.QueryContext(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("read batch_runs: %w", err)
		}
		defer rows.Close()
		var ids []any
		for rows.Next() {
			var r txpipe.BatchRun
			var finished sql.NullTime
			var errText sql.NullString
			if err := rows.Scan(&r.ID, &r.StartedAt, &finished, &r.RowsRead, &r.Cutoff, &r.Status, &errText); err != nil {
				return fmt.Errorf("read batch_runs: %w", err)
			}
			r.FinishedAt, r.Error = finished.Time, errText.String
			page.Runs = append(page.Runs, r)
			ids = append(ids, r.ID)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read batch_runs: %w", err)
		}
		rows.Close()
		if len(page.Runs) > rq.Limit {
			page.Runs, page.More = page.Runs[:rq.Limit], true
			ids = ids[:rq.Limit]
		}
		cuts, err := runCutoffs(ctx, q.db, ids)
		if err != nil {
			return err
		}
		var topics map[int64]string
		if len(ids) > 0 {
			if topics, err = runTopics(ctx, q.db, ids); err != nil {
				return err
			}
		}
		for i := range page.Runs {
			r := &page.Runs[i]
			r.Cutoffs, r.Topic = cuts[r.ID], topics[r.ID]
			if r.Cutoffs == nil {
				r.Cutoffs = map[int32]int64{}
			}
		}
		return nil
	})
	return page, err
}

func runTopics(ctx context.Context, q rowQuerier, ids []any) (map[int64]string, error) {
	in := "(" + strings.TrimSuffix(strings.Repeat("?,", len(ids)), ",") + ")"
	rows, err := q.QueryContext(ctx, "SELECT run_id, MIN(topic) FROM batch_run_cutoffs WHERE run_id IN "+in+" GROUP BY run_id", ids...)
	if err != nil {
		return nil, fmt.Errorf("read batch_run_cutoffs: %w", err)
	}
	defer rows.Close()
	out := map[int64]string{}
	for rows.Next() {
		var id int64
		var topic string
		if err := rows.Scan(&id, &topic); err != nil {
			return nil, fmt.Errorf("read batch_run_cutoffs: %w", err)
		}
		out[id] = topic
	}
	return out, rows.Err()
}

// ExplainTransactions returns, for each table the transactions statement
// reads, the index MySQL chooses (EXPLAIN's key column), for tests.
func (q *Queries) ExplainTransactions(ctx context.Context, tq txpipe.TxQuery) (map[string]string, error) {
	query, args := TransactionsSQL(tq)
	return explain(ctx, q.db, query, args)
}

// ExplainRejected returns the indexes of the rejected rows statement.
func (q *Queries) ExplainRejected(ctx context.Context, reason txpipe.RejectReason) (map[string]string, error) {
	return explain(ctx, q.db, "SELECT transaction_id FROM rejected_transactions WHERE reason = ? ORDER BY kafka_topic, kafka_partition, kafka_offset LIMIT 101", []any{string(reason)})
}

// ExplainCardByNumber returns the indexes of the card number lookup.
func (q *Queries) ExplainCardByNumber(ctx context.Context, number string) (map[string]string, error) {
	return explain(ctx, q.db, "SELECT card_id FROM cards WHERE card_number = ? ORDER BY card_id LIMIT 1", []any{number})
}

// explain maps each table of EXPLAIN's rows to its key, with ", filesort"
// added where the row says Using filesort.
func explain(ctx context.Context, db *sql.DB, query string, args []any) (map[string]string, error) {
	rows, err := db.QueryContext(ctx, "EXPLAIN "+query, args...)
	if err != nil {
		return nil, fmt.Errorf("explain: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := map[string]string{}
		for i, c := range cols {
			row[strings.ToLower(c)] = vals[i].String
		}
		if row["table"] == "" || strings.HasPrefix(row["table"], "<") {
			continue
		}
		key := row["key"]
		if strings.Contains(row["extra"], "filesort") {
			key += ", filesort"
		}
		if prev, ok := out[row["table"]]; ok && prev != key {
			key = prev + "; " + key
		}
		out[row["table"]] = key
	}
	return out, rows.Err()
}
