// Package txpipe holds the domain of the pipeline: its types and the pure
// business rules every layer shares. Nothing here does I/O.
package txpipe

import "time"

// TimestampLayout is the only accepted form of a transaction timestamp.
const TimestampLayout = "2006-01-02 15:04:05"

// Customer is a row of customers.csv.
type Customer struct {
	ID           int64
	Name         string
	Phone        string
	Address      string
	Email        string
	CreditScore  int64
	AnnualIncome Money
}

// CardType is a row of credit_card_types.csv.
type CardType struct {
	ID          int64
	Name        string
	ScoreMin    int64
	ScoreMax    int64
	LimitMin    Money
	LimitMax    Money
	AnnualFee   Money
	RewardsRate string // a plain decimal fraction such as "0.005"; not money
}

// Card is a row of cards.csv.
type Card struct {
	ID             int64
	CustomerID     int64
	CardTypeID     int64
	Number         string
	Expiration     string // MM/YY as written
	CreditLimit    Money
	CurrentBalance Money
	IssueDate      string // YYYY-MM-DD as written
}

// Transaction is a row of transactions.csv, parsed.
type Transaction struct {
	ID        int64
	CardID    int64
	Merchant  string
	Timestamp time.Time
	Amount    Money
	Location  string
	Type      string
	RelatedID string // as written; empty when there is none
	Seq       int64  // input order (line or offset), breaks timestamp ties
	// Origin is when the payment happened, to the millisecond, when its
	// producer says (event_date_origin); zero otherwise.
	Origin time.Time
}

// EventTime is when the payment happened: Origin when known, else its
// timestamp.
func (t *Transaction) EventTime() time.Time {
	if !t.Origin.IsZero() {
		return t.Origin
	}
	return t.Timestamp
}

// Status is the state of a judged transaction.
type Status string

// Statuses.
const (
	StatusPending  Status = "pending"
	StatusDeclined Status = "declined"
	StatusApproved Status = "approved"
)

// DeclineReason says why a transaction was declined; empty when it was not.
type DeclineReason string

// Decline reasons, in the order the rules are applied.
const (
	DeclineNone      DeclineReason = ""
	DeclineOverHalf  DeclineReason = "amount_over_half_limit"
	DeclineLocation  DeclineReason = "location_mismatch"
	DeclineOverLimit DeclineReason = "over_credit_limit"
	// DeclineStolen: the card was reported stolen at or before the
	// payment's event time (checked before the other rules).
	DeclineStolen DeclineReason = "stolen_card"
)

// Result is a judged transaction: a row of stream_transactions and, with
// its status settled, of batch_transactions.
type Result struct {
	Transaction
	Status         Status
	PendingBalance Money // the card's pending balance after this transaction
	DeclineReason  DeclineReason
	Pos            Position // the result's record on the validated topic, when known
}

// Position is where a record sits in Kafka. It identifies a row of the
// stream views: the serving layer compares it with a batch's cut-off, and
// rejected rows are keyed by it. Files that do not say (older results)
// read as Unpositioned.
type Position struct {
	Topic     string // empty where the topic is implied (a stream view's rows)
	Partition int32
	Offset    int64
}

// Unpositioned is the position of a row whose record is not known.
var Unpositioned = Position{Partition: -1, Offset: -1}

// RejectReason says why a transaction row could not be judged at all.
type RejectReason string

// Reject reasons, in the order they are checked.
const (
	RejectFieldCount    RejectReason = "field_count"
	RejectBadCSV        RejectReason = "bad_csv"
	RejectBadJSON       RejectReason = "bad_json"
	RejectTransactionID RejectReason = "bad_transaction_id"
	RejectCardID        RejectReason = "bad_card_id"
	RejectAmount        RejectReason = "bad_amount"
	RejectTimestamp     RejectReason = "bad_timestamp"
	RejectText          RejectReason = "bad_text"
	RejectUnknownCard   RejectReason = "unknown_card"
	RejectDuplicate     RejectReason = "duplicate_transaction_id"
)

// RawTransaction is a transaction as it arrived, every field a string, so
// that a row that cannot be judged is kept exactly as written.
type RawTransaction struct {
	TransactionID string
	CardID        string
	Merchant      string
	Timestamp     string
	Amount        string
	Location      string
	Type          string
	RelatedID     string
	Origin        string // event_date_origin, RFC 3339; not a CSV column
}

// Master is the master data: customers, card types and cards, each sorted
// by id.
type Master struct {
	Customers []Customer
	CardTypes []CardType
	Cards     []Card
}

// Offset is the next offset to consume from a topic partition: what the
// sinks store with the rows they write.
type Offset struct {
	Topic     string
	Partition int32
	Next      int64
	TopicID   string // the topic's incarnation; a topic created anew restarts at 0
}

// Rejected is a transaction row that could not be judged.
type Rejected struct {
	Raw    RawTransaction
	Reason RejectReason
	Detail string   // what exactly was wrong, for people
	Source string   // file:line, or topic/partition/offset
	Seq    int64    // input order
	Pos    Position // the rejected row's record (dead-letter or validated topic), when known
}

// Event types: in every record of the stream topics (the event_type
// header, and the event_type field of alerts) and in the event staging
// view.
const (
	EventPayment      = "PAYMENT_EVENT"         // a judged payment (a result)
	EventAlert        = "PAYMENT_ALERT"         // payments on a stolen card in one window of event time
	EventAlertSummary = "PAYMENT_ALERT_SUMMARY" // a stolen card's payments of the last hour
)

// Alert is a row of the alerts view: one PAYMENT_ALERT or
// PAYMENT_ALERT_SUMMARY as the stream emitted it.
type Alert struct {
	Type   string // EventAlert or EventAlertSummary
	CardID int64
	// From and To bound the event time the alert covers: a window
	// [From, To) of a PAYMENT_ALERT, the last hour (From, To] of a summary.
	From, To time.Time
	Late     bool // a PAYMENT_ALERT of a payment that came after its window closed
	Count    int64
	Total    Money
	// First and Last are the first and last payment's event times.
	First, Last time.Time
	// Origin is when the alert's event happened: its last payment's event
	// time for a PAYMENT_ALERT, the end of the hour for a summary.
	Origin time.Time
	JSON   string // the alert record as emitted
	Pos    Position
}

// Event is a row of the event staging view: every payment and alert,
// with when it happened and when the view stored it.
type Event struct {
	Type       string
	CardID     int64
	Origin     time.Time // event_date_origin
	Registered time.Time // event_dw_regdate: set by the writer of the view
	JSON       string    // the record's value
	Pos        Position
}

// ViewBatch is what a stream sink writes to a view at once: the rows it
// consumed and, per topic partition, the offset after them.
type ViewBatch struct {
	Results  []Result
	Rejected []Rejected
	Alerts   []Alert
	Events   []Event
	Next     []Offset
}
