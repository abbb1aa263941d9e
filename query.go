package txpipe

import (
	"context"
	"errors"
	"time"
)

// The query side (txpipe serve) answers from two views: the batch view of
// the last batch run, and the stream's results after that run's cut-off.
// This file holds what it answers with and the one rule that merges the
// two; serving/mysqlstore and serving/memory implement QueryStore, and
// serving/api serves it over HTTP.

// Errors of a QueryStore. Callers test them with errors.Is; serving/api
// turns them into status codes.
var (
	// ErrNotFound: the card, customer or other thing asked for does not
	// exist.
	ErrNotFound = errors.New("not found")
	// ErrUnavailable: the store cannot answer now (its database is down,
	// its data not loaded yet); asking again later may work.
	ErrUnavailable = errors.New("unavailable")
)

// Cutoffs are the cut-off of a batch view: per partition of the
// validated topic, the offset after the last stream row it holds.
type Cutoffs struct {
	// Batch says whether there is a batch view at all. Without one every
	// stream row is pending.
	Batch bool
	Topic string
	Next  map[int32]int64
}

// Settled is the merge rule. It reports whether the stream row whose
// record is at pos is in the batch view (settled) rather than after it
// (pending): with a batch view, a row whose offset is below its
// partition's cut-off is settled, one at or above it pending (a partition
// without a cut-off had no row in the batch). Rows written before the
// stream recorded positions (offset -1) precede every batch that recorded
// cut-offs, so they are settled once there is a batch view. Each row is
// thus in exactly one of the two.
func (c Cutoffs) Settled(pos Position) bool {
	if !c.Batch {
		return false
	}
	if pos.Offset < 0 {
		return true
	}
	return pos.Offset < c.Next[pos.Partition]
}

// BatchInfo is the batch run whose views an answer used.
type BatchInfo struct {
	RunID      int64     // 0 when the run record is not known (yet)
	FinishedAt time.Time // zero when not known
	Cutoffs    Cutoffs
}

// TxKey orders the transactions of an answer: by timestamp, then id (the
// same order in every view, whatever input order each recorded). Pages of
// transactions continue after a key.
type TxKey struct {
	Timestamp time.Time
	ID        int64
}

// Compare returns -1, 0 or +1 as k sorts before, with or after o.
func (k TxKey) Compare(o TxKey) int {
	if c := k.Timestamp.Compare(o.Timestamp); c != 0 {
		return c
	}
	switch {
	case k.ID < o.ID:
		return -1
	case k.ID > o.ID:
		return 1
	}
	return 0
}

// Key is the answer-order key of a transaction.
func (t Transaction) Key() TxKey { return TxKey{Timestamp: t.Timestamp, ID: t.ID} }

// TxQuery asks for one card's or one merchant's transactions.
type TxQuery struct {
	CardID   int64  // the card's transactions, when non-zero
	Merchant string // else the merchant's
	// From and To bound the timestamps, both included (zero: open).
	From, To time.Time
	After    *TxKey // continue after this key (nil: from the start)
	Limit    int
}

// TxRow is a transaction of an answer: from the batch view (Settled,
// status approved or declined) or from the stream after the cut-off
// (status pending or declined, with its record's position).
type TxRow struct {
	Result
	Settled bool
}

// TxPage is a page of transactions in TxKey order; More says whether
// there are more after the last one.
type TxPage struct {
	Rows []TxRow
	More bool
}

// StatusCounts counts transactions by status.
type StatusCounts map[Status]int64

// CardView is a card as the query side sees it.
type CardView struct {
	Card Card // the master data's card: number, customer, limit before the batch
	// CreditLimit is the limit now: the batch's new limit, or the master
	// data's without a batch.
	CreditLimit Money
	// Settled is the balance as of the batch: the batch's settled balance,
	// or the master data's current balance without a batch.
	Settled Money
	// Pending is the sum of the pending transactions after the cut-off.
	Pending Money
	// SettledCounts count the batch view's rows (approved, declined);
	// PendingCounts the stream's rows after the cut-off (pending,
	// declined).
	SettledCounts, PendingCounts StatusCounts
}

// Available is the credit left: the limit now, less the settled balance
// and the pending amount.
func (c CardView) Available() Money { return c.CreditLimit - c.Settled - c.Pending }

// CustomerView is a customer with its cards.
type CustomerView struct {
	Customer Customer // the master data's, with the score before the batch
	// ScoreAfter is the score the last batch gave (the score before
	// without a batch).
	ScoreAfter int64
	Cards      []CardView
}

// RejectedQuery asks for rejected rows.
type RejectedQuery struct {
	Reason RejectReason // "" for every reason
	// From and To bound the rows' timestamps as written, compared as text
	// with the YYYY-MM-DD HH:MM:SS form of the bounds, both included.
	From, To time.Time
	After    *Position // continue after this position (nil: from the start)
	Limit    int
}

// RejectedPage is a page of rejected rows in position order.
type RejectedPage struct {
	Rows []Rejected
	More bool
}

// BatchRun is a line of the runs record.
type BatchRun struct {
	ID                    int64
	StartedAt, FinishedAt time.Time // FinishedAt zero while running
	RowsRead              int64
	Cutoff                string // the transaction id of the last row read
	Status                string // running, ok or failed
	Error                 string
	Topic                 string
	Cutoffs               map[int32]int64
}

// RunQuery asks for batch runs, newest first.
type RunQuery struct {
	Before int64 // runs with a smaller id (0: from the newest)
	Limit  int
}

// RunPage is a page of batch runs, newest first.
type RunPage struct {
	Runs []BatchRun
	More bool
}

// QueryStore answers the query side's questions, each from one
// consistent state of the views: the batch view and cut-off of one run
// and the stream rows after that cut-off.
type QueryStore interface {
	// Card returns a card and the batch it was answered from.
	Card(ctx context.Context, id int64) (CardView, BatchInfo, error)
	// CardByNumber returns the id of the card with this number, matched
	// exactly.
	CardByNumber(ctx context.Context, number string) (int64, error)
	// Transactions returns a page of a card's or a merchant's
	// transactions; ErrNotFound for an unknown card.
	Transactions(ctx context.Context, q TxQuery) (TxPage, error)
	// Customer returns a customer with its cards.
	Customer(ctx context.Context, id int64) (CustomerView, BatchInfo, error)
	// Rejected returns a page of rejected rows.
	Rejected(ctx context.Context, q RejectedQuery) (RejectedPage, error)
	// BatchRuns returns a page of the runs record.
	BatchRuns(ctx context.Context, q RunQuery) (RunPage, error)
}

// AlertQuery asks for stolen-card alerts, ordered by the end of their
// window, then by Kafka position.
type AlertQuery struct {
	CardID int64  // 0 for every card
	Type   string // EventAlert, EventAlertSummary, or "" for both
	// From and To bound the end of the alerts' windows, both included;
	// a zero bound is open.
	From, To time.Time
	After    *AlertKey // continue after this alert (nil: from the start)
	Limit    int
}

// AlertKey is the order of alerts: the end of the window, then the
// record's position.
type AlertKey struct {
	To  time.Time
	Pos Position
}

// Key returns the alert's place in the order of AlertQuery.
func (a Alert) Key() AlertKey { return AlertKey{To: a.To, Pos: a.Pos} }

// Compare orders alert keys.
func (k AlertKey) Compare(o AlertKey) int {
	if c := k.To.Compare(o.To); c != 0 {
		return c
	}
	if k.Pos.Topic != o.Pos.Topic {
		if k.Pos.Topic < o.Pos.Topic {
			return -1
		}
		return 1
	}
	if k.Pos.Partition != o.Pos.Partition {
		if k.Pos.Partition < o.Pos.Partition {
			return -1
		}
		return 1
	}
	switch {
	case k.Pos.Offset < o.Pos.Offset:
		return -1
	case k.Pos.Offset > o.Pos.Offset:
		return 1
	}
	return 0
}

// AlertPage is a page of alerts.
type AlertPage struct {
	Rows []Alert
	More bool
}

// LatencyStats are the latencies of one event type: from when an event
// happened (event_date_origin) to when the staging view stored it
// (event_dw_regdate).
type LatencyStats struct {
	Type  string
	Count int64
	// Quantiles by nearest rank (Max is the 100th), each the lower bound
	// of its bucket in analytics.LatencyHist (0.2 % wide at most): what
	// the batch's KPI view computes over the same events.
	P50, P95, P99, Max time.Duration
}

// EventStore answers questions about the stream's alerts and staged
// events.
type EventStore interface {
	// Alerts returns a page of alerts.
	Alerts(ctx context.Context, q AlertQuery) (AlertPage, error)
	// Latency returns the latency of each event type over the events that
	// happened between from and to (both included; a zero bound is open),
	// in event-type order; types without events are left out.
	Latency(ctx context.Context, from, to time.Time) ([]LatencyStats, error)
}
