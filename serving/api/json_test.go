package api

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/txpipe/txpipe"
)

// appendString writes what encoding/json writes.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", `quote " back \ slash`, "tab\tnew\nline\r", "\x00\x1f", "<a href='x'>&</a>",
		"café ☕", "\xff\xfe bad", "line\u2028sep\u2029", "Shop 4111111111111111"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); string(got) != string(want) {
			t.Errorf("appendString(%q) = %s, encoding/json says %s", s, got, want)
		}
	})
}

func TestAppendTransactionPage(t *testing.T) {
	var rows []txpipe.TxRow
	for i, settled := range []bool{true, false} {
		r := txpipe.TxRow{Settled: settled}
		r.ID, r.CardID, r.Merchant, r.Timestamp = int64(i+1), 7, "Pay 6466-8783-6394-0621 \"x\"", time.Date(2025, 4, 1, 12, 0, 5, 0, time.UTC)
		r.Amount, r.PendingBalance, r.Location, r.Type, r.Status = -1250, 99, "1 Main St, NY 10001", "refund", txpipe.StatusPending
		r.Pos = txpipe.Position{Partition: 3, Offset: 42}
		if settled {
			r.RelatedID, r.Status, r.Pos = "17", txpipe.StatusApproved, txpipe.Unpositioned
		}
		rows = append(rows, r)
	}
	var page struct {
		Items []map[string]any `json:"items"`
		Next  string           `json:"next_cursor"`
	}
	b := appendTransactionPage(nil, rows, "abc")
	if err := json.Unmarshal(b, &page); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	a, s := page.Items[0], page.Items[1]
	if page.Next != "abc" || a["layer"] != "batch" || a["related_transaction_id"] != "17" || a["amount"] != "-12.50" ||
		a["timestamp"] != "2025-04-01 12:00:05" || a["merchant_name"] != `Pay ****-****-****-0621 "x"` || a["kafka_offset"] != nil {
		t.Errorf("batch row %v", a)
	}
	if s["layer"] != "stream" || s["related_transaction_id"] != nil || s["kafka_partition"] != float64(3) || s["kafka_offset"] != float64(42) ||
		s["pending_balance"] != "0.99" || s["status"] != "pending" {
		t.Errorf("stream row %v", s)
	}
	if b := appendTransactionPage(nil, nil, ""); string(b) != `{"items":[]}` {
		t.Errorf("empty page %s", b)
	}
}
