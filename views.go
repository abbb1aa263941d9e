package txpipe

import "fmt"

// The stream views (stream_transactions in MySQL and CSV) hold one row per
// transaction id. The validator catches a repeated id within its dedup
// horizon; a repeat beyond it is judged again, and the views catch it when
// they are written: of the rows with one id, the first in event order is
// kept and every other becomes a rejected row (duplicate_transaction_id).
// The next batch, which settles from the views, then corrects the card's
// balance: the batch layer repairing the speed layer.

// EventBefore reports whether a comes before b in event order: by event
// time, then input order, then Kafka position. It is a total order on the
// rows of a stream view, so every view keeps the same row of a repeated id
// whatever order it was written in.
func EventBefore(a, b *Result) bool {
	if c := a.Timestamp.Compare(b.Timestamp); c != 0 {
		return c < 0
	}
	if a.Seq != b.Seq {
		return a.Seq < b.Seq
	}
	if a.Pos.Partition != b.Pos.Partition {
		return a.Pos.Partition < b.Pos.Partition
	}
	return a.Pos.Offset < b.Pos.Offset
}

// Duplicate is the rejected row of a result a view does not keep because
// an earlier row (in event order) has its transaction id; source names the
// result's record on the validated topic.
func Duplicate(r *Result, source string) Rejected {
	return Rejected{
		Raw:    r.Transaction.Raw(),
		Reason: RejectDuplicate,
		Detail: fmt.Sprintf("transaction %d is already in the stream views (an earlier row in event order); this copy, judged %s with pending balance %s past the validator's dedup horizon, is not kept", r.ID, r.Status, r.PendingBalance),
		Source: source,
		Seq:    r.Seq,
		Pos:    r.Pos,
	}
}
