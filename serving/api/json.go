package api

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/internal/mask"
)

// The JSON of the answers. Transactions carry the result files' field
// names; money is a decimal string with two decimals ("-12.50"), exact;
// times are YYYY-MM-DD HH:MM:SS (transaction times, as written) or RFC
// 3339 in UTC (run times). Card numbers show their last four digits only,
// and every free text goes through mask.Digits.

// WriteJSON writes v as a JSON answer with status code.
func WriteJSON(w http.ResponseWriter, code int, v any) { writeJSON(w, code, v) }

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	writeBody(w, code, append(b, '\n'))
}

// writeBody writes a JSON answer's bytes.
func writeBody(w http.ResponseWriter, code int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	w.Write(b)
}

// bufs are the buffers of hand-written answers.
var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// appendTransactionPage appends the JSON of a page of transactions:
// {"items":[...],"next_cursor":"..."}. Written by hand (the answers read
// most often): each item carries the result files' field names,
// "layer" ("batch": settled in the last batch view; "stream": after its
// cut-off) and, for stream rows, kafka_partition and kafka_offset.
func appendTransactionPage(b []byte, rows []txpipe.TxRow, next string) []byte {
	b = append(b, `{"items":[`...)
	for i := range rows {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendTransaction(b, &rows[i])
	}
	b = append(b, ']')
	if next != "" {
		b = append(b, `,"next_cursor":`...)
		b = appendString(b, next)
	}
	return append(b, '}')
}

func appendTransaction(b []byte, r *txpipe.TxRow) []byte {
	b = append(b, `{"transaction_id":`...)
	b = strconv.AppendInt(b, r.ID, 10)
	b = append(b, `,"card_id":`...)
	b = strconv.AppendInt(b, r.CardID, 10)
	b = append(b, `,"merchant_name":`...)
	b = appendString(b, mask.Digits(r.Merchant))
	b = append(b, `,"timestamp":"`...)
	b = txpipe.AppendTimestamp(b, r.Timestamp)
	b = append(b, `","amount":"`...)
	b = r.Amount.Append(b)
	b = append(b, `","location":`...)
	b = appendString(b, mask.Digits(r.Location))
	b = append(b, `,"transaction_type":`...)
	b = appendString(b, mask.Digits(r.Type))
	b = append(b, `,"related_transaction_id":`...)
	if r.RelatedID == "" {
		b = append(b, "null"...)
	} else {
		b = appendString(b, mask.Digits(r.RelatedID))
	}
	b = append(b, `,"status":`...)
	b = appendString(b, string(r.Status))
	b = append(b, `,"pending_balance":"`...)
	b = r.PendingBalance.Append(b)
	b = append(b, `","decline_reason":`...)
	b = appendString(b, string(r.DeclineReason))
	if r.Settled {
		return append(b, `,"layer":"batch"}`...)
	}
	b = append(b, `,"layer":"stream"`...)
	if r.Pos.Offset >= 0 {
		b = append(b, `,"kafka_partition":`...)
		b = strconv.AppendInt(b, int64(r.Pos.Partition), 10)
		b = append(b, `,"kafka_offset":`...)
		b = strconv.AppendInt(b, r.Pos.Offset, 10)
	}
	return append(b, '}')
}

// appendString appends s as a JSON string, as encoding/json writes it
// (invalid UTF-8 as U+FFFD, <, > and & escaped).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

type batchJSON struct {
	RunID      int64            `json:"run_id,omitempty"`
	FinishedAt string           `json:"finished_at,omitempty"`
	Topic      string           `json:"topic"`
	Cutoffs    map[string]int64 `json:"cutoffs"`
}

// toBatch is nil without a batch view.
func toBatch(b txpipe.BatchInfo) *batchJSON {
	if !b.Cutoffs.Batch {
		return nil
	}
	out := &batchJSON{RunID: b.RunID, Topic: b.Cutoffs.Topic, Cutoffs: cutoffsJSON(b.Cutoffs.Next)}
	if !b.FinishedAt.IsZero() {
		out.FinishedAt = b.FinishedAt.UTC().Format(time.RFC3339Nano)
	}
	return out
}

func cutoffsJSON(next map[int32]int64) map[string]int64 {
	out := make(map[string]int64, len(next))
	for _, p := range slices.Sorted(maps.Keys(next)) {
		out[strconv.Itoa(int(p))] = next[p]
	}
	return out
}

type countsJSON struct {
	Settled map[string]int64 `json:"settled"`
	Pending map[string]int64 `json:"pending"`
}

type cardJSON struct {
	CardID          int64      `json:"card_id"`
	CustomerID      int64      `json:"customer_id"`
	CardNumber      string     `json:"card_number"`
	CreditLimit     string     `json:"credit_limit"`
	SettledBalance  string     `json:"settled_balance"`
	PendingAmount   string     `json:"pending_amount"`
	AvailableCredit string     `json:"available_credit"`
	Counts          countsJSON `json:"counts"`
	LastBatch       *batchJSON `json:"last_batch,omitempty"`
}

func toCard(c txpipe.CardView) cardJSON {
	counts := func(sc txpipe.StatusCounts, statuses ...txpipe.Status) map[string]int64 {
		out := map[string]int64{}
		for _, s := range statuses {
			out[string(s)] = sc[s]
		}
		return out
	}
	return cardJSON{
		CardID: c.Card.ID, CustomerID: c.Card.CustomerID, CardNumber: mask.Card(c.Card.Number),
		CreditLimit: c.CreditLimit.String(), SettledBalance: c.Settled.String(), PendingAmount: c.Pending.String(),
		AvailableCredit: c.Available().String(),
		Counts: countsJSON{
			Settled: counts(c.SettledCounts, txpipe.StatusApproved, txpipe.StatusDeclined),
			Pending: counts(c.PendingCounts, txpipe.StatusPending, txpipe.StatusDeclined),
		},
	}
}

type customerJSON struct {
	CustomerID        int64      `json:"customer_id"`
	Name              string     `json:"name"`
	CreditScoreBefore int64      `json:"credit_score_before"`
	CreditScoreAfter  int64      `json:"credit_score_after"`
	ScoreChange       int64      `json:"score_change"`
	UsagePercent      string     `json:"usage_percent"`
	UsageNowPercent   string     `json:"usage_now_percent"`
	Cards             []cardJSON `json:"cards"`
	LastBatch         *batchJSON `json:"last_batch,omitempty"`
}

// percent is 100 × num / den with two decimals, rounded half away from
// zero, exact ("0.00" when den is not positive).
func percent(num, den txpipe.Money) string {
	if den <= 0 {
		return "0.00"
	}
	// 100 × num / den, in hundredths of a percent.
	n, d := int64(num)*10000, int64(den)
	q, r := n/d, n%d
	if 2*abs(r) >= d {
		if n < 0 {
			q--
		} else {
			q++
		}
	}
	return txpipe.Money(q).String()
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

func toCustomer(c txpipe.CustomerView, b txpipe.BatchInfo) customerJSON {
	out := customerJSON{
		CustomerID: c.Customer.ID, Name: mask.Digits(c.Customer.Name),
		CreditScoreBefore: c.Customer.CreditScore, CreditScoreAfter: c.ScoreAfter,
		ScoreChange: c.ScoreAfter - c.Customer.CreditScore, Cards: []cardJSON{}, LastBatch: toBatch(b),
	}
	// Usage as the batch re-scored: settled balances over the limits it
	// started from; and now: with what is pending, over the limits now.
	var settled, before, now, pending txpipe.Money
	for _, card := range c.Cards {
		out.Cards = append(out.Cards, toCard(card))
		settled += card.Settled
		before += card.Card.CreditLimit
		now += card.CreditLimit
		pending += card.Pending
	}
	out.UsagePercent = percent(settled, before)
	out.UsageNowPercent = percent(settled+pending, now)
	return out
}

type rejectedJSON struct {
	TransactionID  string `json:"transaction_id"`
	Reason         string `json:"reason"`
	Source         string `json:"source"`
	CardID         string `json:"card_id"`
	Merchant       string `json:"merchant_name"`
	Timestamp      string `json:"timestamp"`
	Amount         string `json:"amount"`
	Location       string `json:"location"`
	Type           string `json:"transaction_type"`
	RelatedID      string `json:"related_transaction_id"`
	Detail         string `json:"detail"`
	KafkaTopic     string `json:"kafka_topic"`
	KafkaPartition int32  `json:"kafka_partition"`
	KafkaOffset    int64  `json:"kafka_offset"`
}

func toRejected(r txpipe.Rejected) rejectedJSON {
	m := mask.Digits
	return rejectedJSON{
		TransactionID: m(r.Raw.TransactionID), Reason: string(r.Reason), Source: m(r.Source), CardID: m(r.Raw.CardID),
		Merchant: m(r.Raw.Merchant), Timestamp: m(r.Raw.Timestamp), Amount: m(r.Raw.Amount), Location: m(r.Raw.Location),
		Type: m(r.Raw.Type), RelatedID: m(r.Raw.RelatedID), Detail: m(r.Detail),
		KafkaTopic: m(r.Pos.Topic), KafkaPartition: r.Pos.Partition, KafkaOffset: r.Pos.Offset,
	}
}

type rejectedPage struct {
	Items      []rejectedJSON `json:"items"`
	NextCursor string         `json:"next_cursor,omitempty"`
}

type runJSON struct {
	RunID      int64            `json:"run_id"`
	StartedAt  string           `json:"started_at"`
	FinishedAt string           `json:"finished_at,omitempty"`
	RowsRead   int64            `json:"rows_read"`
	Cutoff     string           `json:"cutoff"`
	Status     string           `json:"status"`
	Error      string           `json:"error,omitempty"`
	Topic      string           `json:"topic,omitempty"`
	Cutoffs    map[string]int64 `json:"cutoffs"`
}

func toRun(r txpipe.BatchRun) runJSON {
	out := runJSON{RunID: r.ID, StartedAt: r.StartedAt.UTC().Format(time.RFC3339Nano), RowsRead: r.RowsRead,
		Cutoff: r.Cutoff, Status: r.Status, Error: mask.Digits(r.Error), Topic: r.Topic, Cutoffs: cutoffsJSON(r.Cutoffs)}
	if !r.FinishedAt.IsZero() {
		out.FinishedAt = r.FinishedAt.UTC().Format(time.RFC3339Nano)
	}
	return out
}

type runPage struct {
	Items      []runJSON `json:"items"`
	NextCursor string    `json:"next_cursor,omitempty"`
}
