package mysqlstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/txpipe/txpipe"
)

// fillViews writes n stream results over cards cards and merchants
// merchants (partition = card mod 4, offsets in order), then a batch view
// of the first half (batch_transactions, cards_updated, batch_cutoffs),
// and analyzes the tables, so the optimizer sees realistic statistics.
func fillViews(t *testing.T, db *DB, n, cards, merchants int) (cut map[int32]int64) {
	t.Helper()
	ctx := context.Background()
	m := tinyMaster(cards)
	if err := db.LoadMaster(ctx, m); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
	next := map[int32]int64{}
	cut = map[int32]int64{}
	var results []txpipe.Result
	for i := range n {
		card := int64(i%cards + 1)
		p := int32(card % 4)
		r := txpipe.Result{Status: txpipe.StatusPending, PendingBalance: txpipe.Money(i), Pos: txpipe.Position{Partition: p, Offset: next[p]}}
		r.ID, r.CardID, r.Merchant, r.Timestamp = int64(i+1), card, fmt.Sprintf("Merchant %d", i%merchants), start.Add(time.Duration(i)*time.Minute)
		r.Amount, r.Location, r.Type, r.Seq = txpipe.Money(100+i%900), "1 Main St, NY 10001", "purchase", int64(i+1)
		next[p]++
		if i < n/2 {
			cut[p] = next[p]
		}
		results = append(results, r)
	}
	for at := 0; at < len(results); at += 5000 {
		if err := db.WriteStream(ctx, "test", results[at:min(at+5000, len(results))], nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{
		"INSERT INTO batch_transactions (" + txColumns + ") SELECT transaction_id, card_id, merchant_name, `timestamp`, amount, location, transaction_type, " +
			"related_transaction_id, 'approved', pending_balance, decline_reason, seq FROM stream_transactions WHERE transaction_id <= " + fmt.Sprint(n/2),
		"INSERT INTO cards_updated SELECT * FROM cards",
	} {
		if _, err := db.SQL.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for p, o := range cut {
		if _, err := db.SQL.ExecContext(ctx, "INSERT INTO batch_cutoffs (topic, `partition`, next_offset) VALUES ('t.validated', ?, ?)", p, o); err != nil {
			t.Fatal(err)
		}
	}
	for _, table := range []string{"stream_transactions", "batch_transactions", "cards", "cards_updated", "batch_cutoffs", "rejected_transactions"} {
		rows, err := db.SQL.QueryContext(ctx, "ANALYZE TABLE "+table)
		if err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return cut
}

// TestQueryIndexes shows with EXPLAIN that the answers' statements read
// through the indexes of migration 5, without sorting.
func TestQueryIndexes(t *testing.T) {
	db := openTest(t)
	fillViews(t, db, 40000, 2000, 500)
	q := db.Queries()
	ctx := context.Background()
	after := &txpipe.TxKey{Timestamp: time.Date(2025, 4, 2, 0, 0, 0, 0, time.UTC), ID: 1000}
	for _, tc := range []struct {
		q    txpipe.TxQuery
		want map[string]string
	}{
		{txpipe.TxQuery{CardID: 17, Limit: 100}, map[string]string{"batch_transactions": "batch_card_time", "s": "stream_card_time"}},
		{txpipe.TxQuery{CardID: 17, Limit: 100, After: after, To: time.Date(2025, 4, 20, 0, 0, 0, 0, time.UTC)}, map[string]string{"batch_transactions": "batch_card_time", "s": "stream_card_time"}},
		{txpipe.TxQuery{Merchant: "Merchant 7", Limit: 100}, map[string]string{"batch_transactions": "batch_merchant_time", "s": "stream_merchant_time"}},
		{txpipe.TxQuery{Merchant: "Merchant 7", Limit: 10, From: time.Date(2025, 4, 3, 0, 0, 0, 0, time.UTC)}, map[string]string{"batch_transactions": "batch_merchant_time", "s": "stream_merchant_time"}},
	} {
		got, err := q.ExplainTransactions(ctx, tc.q)
		if err != nil {
			t.Fatal(err)
		}
		for table, key := range tc.want {
			if got[table] != key {
				t.Errorf("%+v: %s reads through %q, want %q (plan %v)", tc.q, table, got[table], key, got)
			}
		}
	}
	if got, err := q.ExplainCardByNumber(ctx, "4000-0000-0000-0042"); err != nil || got["cards"] != "cards_number" {
		t.Errorf("card by number: %v, %v", got, err)
	}
	if got, err := q.ExplainRejected(ctx, txpipe.RejectUnknownCard); err != nil || !strings.HasPrefix(got["rejected_transactions"], "rejected_reason") || strings.Contains(got["rejected_transactions"], "filesort") {
		t.Errorf("rejected by reason: %v, %v", got, err)
	}
}

// TestQueriesMergeRule: the statements split the stream at the cut-off:
// rows below it come from the batch view, rows at or past it from the
// stream; without a batch view every stream row is pending.
func TestQueriesMergeRule(t *testing.T) {
	db := openTest(t)
	cut := fillViews(t, db, 2000, 50, 30)
	q := db.Queries()
	ctx := context.Background()
	cutoffs := txpipe.Cutoffs{Batch: true, Next: cut}
	check := func(cutoffs txpipe.Cutoffs) {
		t.Helper()
		for card := int64(1); card <= 50; card++ {
			page, err := q.Transactions(ctx, txpipe.TxQuery{CardID: card, Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Rows) != 40 || page.More {
				t.Fatalf("card %d: %d rows (more %v), want 40", card, len(page.Rows), page.More)
			}
			for _, r := range page.Rows {
				if r.Settled != (r.ID <= 1000) {
					t.Errorf("card %d: transaction %d settled %v", card, r.ID, r.Settled)
				}
				if !r.Settled && cutoffs.Settled(r.Pos) {
					t.Errorf("card %d: transaction %d at %+v listed pending below the cut-off", card, r.ID, r.Pos)
				}
			}
			v, info, err := q.Card(ctx, card)
			if err != nil {
				t.Fatal(err)
			}
			if v.SettledCounts[txpipe.StatusApproved]+v.PendingCounts[txpipe.StatusPending] != 40 || !info.Cutoffs.Batch {
				t.Errorf("card %d: counts %v %v, batch %v", card, v.SettledCounts, v.PendingCounts, info.Cutoffs.Batch)
			}
		}
	}
	check(cutoffs)
	// Without a batch view (no cards_updated rows): all 40 pending.
	if _, err := db.SQL.ExecContext(ctx, "DELETE FROM cards_updated"); err != nil {
		t.Fatal(err)
	}
	page, err := q.Transactions(ctx, txpipe.TxQuery{CardID: 3, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	pending := 0
	for _, r := range page.Rows {
		if !r.Settled {
			pending++
		}
	}
	if pending != 40 {
		t.Errorf("without a batch view: %d of card 3's stream rows pending, want 40", pending)
	}
	if _, _, err := q.Card(ctx, 999); !errors.Is(err, txpipe.ErrNotFound) {
		t.Errorf("unknown card: %v", err)
	}
	if _, err := q.Transactions(ctx, txpipe.TxQuery{Merchant: "Nobody", Limit: 10}); !errors.Is(err, txpipe.ErrNotFound) {
		t.Errorf("unknown merchant: %v", err)
	}
}

// TestQueriesRetryAfterSwap: a card answer whose transaction began before
// a batch swapped a view in gets MySQL's "table definition has changed"
// and is read again, from the new views.
func TestQueriesRetryAfterSwap(t *testing.T) {
	db := openTest(t)
	fillViews(t, db, 2000, 50, 30)
	ctx := context.Background()
	q := db.Queries()
	var swapped atomic.Bool
	var attempts atomic.Int64
	testHookAfterCutoffs = func() {
		attempts.Add(1)
		if swapped.Swap(true) {
			return
		}
		// Another connection swaps in a new batch_transactions (one the
		// reader has not opened yet) after the reader's snapshot began.
		for _, stmt := range []string{
			"CREATE TABLE batch_transactions_next LIKE batch_transactions",
			"INSERT INTO batch_transactions_next SELECT * FROM batch_transactions",
			"RENAME TABLE batch_transactions TO batch_transactions_old, batch_transactions_next TO batch_transactions",
			"DROP TABLE batch_transactions_old",
		} {
			if _, err := db.SQL.ExecContext(ctx, stmt); err != nil {
				t.Errorf("%s: %v", stmt, err)
			}
		}
	}
	defer func() { testHookAfterCutoffs = nil }()
	v, _, err := q.Card(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	if !swapped.Load() || attempts.Load() != 2 || v.SettledCounts[txpipe.StatusApproved] != 20 {
		t.Errorf("after the swap: swapped %v, %d attempts (want 2: the first fails on the swapped table), counts %v",
			swapped.Load(), attempts.Load(), v.SettledCounts)
	}
}
