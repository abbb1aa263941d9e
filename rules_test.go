package txpipe

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func m(t *testing.T, s string) Money {
	t.Helper()
	v, err := ParseMoney(s)
	if err != nil {
		t.Fatalf("ParseMoney(%q): %v", s, err)
	}
	return v
}

func TestParseMoney(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Money
		err  error
	}{
		{"2500.0", 250000, nil},
		{"120.67", 12067, nil},
		{"12", 1200, nil},
		{"-232.74", -23274, nil},
		{"+5.5", 550, nil},
		{"12.500", 1250, nil},
		{".5", 50, nil},
		{"7.", 700, nil},
		{"9999999999.99", 999999999999, nil},
		{"-9999999999.99", -999999999999, nil},
		{"10000000000", 0, ErrMoneyRange},
		{"-10000000000.00", 0, ErrMoneyRange},
		{"99999999999999999999999", 0, ErrMoneyRange},
		{"12.505", 0, ErrMoneyPrecision},
		{"12.001", 0, ErrMoneyPrecision},
		{"1e3", 0, ErrMoneySyntax},
		{"NaN", 0, ErrMoneySyntax},
		{"", 0, ErrMoneySyntax},
		{" ", 0, ErrMoneySyntax},
		{" 12", 0, ErrMoneySyntax},
		{"-", 0, ErrMoneySyntax},
		{".", 0, ErrMoneySyntax},
		{"1,000", 0, ErrMoneySyntax},
		{"0x10", 0, ErrMoneySyntax},
		{"Inf", 0, ErrMoneySyntax},
	} {
		got, err := ParseMoney(tc.in)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("ParseMoney(%q) = %d, %v; want %d, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestMoneyString(t *testing.T) {
	for _, tc := range []struct {
		in   Money
		want string
	}{
		{0, "0.00"}, {5, "0.05"}, {-5, "-0.05"}, {-100, "-1.00"}, {12067, "120.67"}, {250000, "2500.00"},
	} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("Money(%d).String() = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzParseMoney(f *testing.F) {
	for _, s := range []string{"2500.0", "-12.50", "1e3", "", "12.505", "9999999999.99"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseMoney(s)
		if err != nil {
			return
		}
		if v >= MaxMoney || v <= -MaxMoney {
			t.Fatalf("ParseMoney(%q) = %d out of range", s, v)
		}
		back, err := ParseMoney(v.String())
		if err != nil || back != v {
			t.Fatalf("round trip of %q: %q → %d, %v", s, v.String(), back, err)
		}
	})
}

func TestNearHome(t *testing.T) {
	home := "7326 John Ridge, Buffalo, NY 11513"
	for _, tc := range []struct {
		loc, addr string
		want      bool
	}{
		{"4395 Brenda Lake, Queens, NY 10859", home, true},
		{"6779 Christina Ports, Tammystad, CT 09935", home, false},
		{"1 Main St, Town, NY 12345-6789", home, true}, // ZIP+4 is an ordinary ZIP
		{"1 Main St, Town, NY 1234", home, false},      // 4 characters
		{"1 Main St, Town, NY", home, false},           // "NY" is the last token
		{"", home, false},
		{"   ", home, false},
		{"4395 Brenda Lake, Queens, NY 10859", "", false},
		{"1 A, B, XX 1abcd", home, true}, // no digit check: first characters agree
		{"4395 Brenda Lake, Queens, NY 10859", "7326 John Ridge, Buffalo, NY 1151", false},
		{"x\t10859\n", "y 19999", true},         // any whitespace separates
		{"Main St\u00a010859", "y 19999", true}, // Unicode spaces too
		{"Main St 1085\u00e9", "y 19999", true}, // 5 characters, not 5 bytes
	} {
		if got := NearHome(tc.loc, tc.addr); got != tc.want {
			t.Errorf("NearHome(%q, %q) = %v, want %v", tc.loc, tc.addr, got, tc.want)
		}
	}
}

func TestDecide(t *testing.T) {
	const home = "1 Home St, Albany, NY 12207"
	const near = "9 Shop Rd, Troy, NY 12180"
	const far = "9 Shop Rd, Austin, TX 78701"
	for _, tc := range []struct {
		name          string
		amount, limit string
		loc           string
		pending       string
		status        Status
		reason        DeclineReason
		pendingAfter  string
	}{
		{"accepted", "100.00", "1000", near, "50", StatusPending, DeclineNone, "150.00"},
		{"exactly half declines", "500.00", "1000", near, "0", StatusDeclined, DeclineOverHalf, "0.00"},
		{"just below half", "499.99", "1000", near, "0", StatusPending, DeclineNone, "499.99"},
		{"refund of exactly half declines", "-500.00", "1000", near, "0", StatusDeclined, DeclineOverHalf, "0.00"},
		{"refund lowers pending", "-120.50", "1000", near, "100", StatusPending, DeclineNone, "-20.50"},
		{"far away", "10", "1000", far, "0", StatusDeclined, DeclineLocation, "0.00"},
		{"half checked before location", "600", "1000", far, "0", StatusDeclined, DeclineOverHalf, "0.00"},
		{"landing exactly on the limit", "400.00", "1000", near, "600", StatusPending, DeclineNone, "1000.00"},
		{"one cent over the limit", "400.01", "1000", near, "600", StatusDeclined, DeclineOverLimit, "600.00"},
		{"location checked before limit", "400.01", "1000", far, "600", StatusDeclined, DeclineLocation, "600.00"},
		{"empty location", "1", "1000", "", "0", StatusDeclined, DeclineLocation, "0.00"},
		{"zero amount", "0", "1000", near, "5", StatusPending, DeclineNone, "5.00"},
	} {
		st, reason, after := Decide(m(t, tc.amount), tc.loc, m(t, tc.limit), home, m(t, tc.pending))
		if st != tc.status || reason != tc.reason || after != m(t, tc.pendingAfter) {
			t.Errorf("%s: Decide = %s, %q, %s; want %s, %q, %s", tc.name, st, reason, after, tc.status, tc.reason, tc.pendingAfter)
		}
	}
}

func TestSettle(t *testing.T) {
	for in, want := range map[Status]Status{StatusPending: StatusApproved, StatusDeclined: StatusDeclined, StatusApproved: StatusApproved} {
		if got := Settle(in); got != want {
			t.Errorf("Settle(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestScoreChange(t *testing.T) {
	for _, tc := range []struct {
		balance, limit string
		want           int64
	}{
		{"-50", "1000", 15},
		{"0", "1000", 15},
		{"100.00", "1000", 15}, // exactly 10 %
		{"100.01", "1000", 10},
		{"200.00", "1000", 10}, // exactly 20 %
		{"200.01", "1000", 5},
		{"300.00", "1000", 5}, // exactly 30 %
		{"300.01", "1000", -5},
		{"500.00", "1000", -5}, // exactly 50 %
		{"500.01", "1000", -15},
		{"700.00", "1000", -15}, // exactly 70 %
		{"700.01", "1000", -25},
		{"5000", "1000", -25},
		{"1", "3", -5},    // 33.3 % is over 30 % and within 50 %
		{"0.30", "3", 15}, // exactly 10 % of an odd limit
		{"100", "0", 0},   // no credit: unchanged
	} {
		if got := ScoreChange(m(t, tc.balance), m(t, tc.limit)); got != tc.want {
			t.Errorf("ScoreChange(%s, %s) = %d, want %d", tc.balance, tc.limit, got, tc.want)
		}
	}
}

func TestCutLimit(t *testing.T) {
	for _, tc := range []struct {
		limit  string
		change int64
		want   string
	}{
		{"5000", 15, "5000"},
		{"5000", 0, "5000"},
		{"5000", -5, "4800"},  // 4750 → tie → 4800 (even)
		{"3000", -5, "2800"},  // 2850 → tie → 2800 (even)
		{"1000", -5, "1000"},  // 950 → tie → 1000 (even)
		{"5400", -5, "5100"},  // 5130 → 5100
		{"5000", -9, "4800"},  // any change above −10 → ×0.95
		{"5000", -10, "4500"}, // exactly −10 → ×0.90
		{"5000", -15, "4500"},
		{"5000", -19, "4500"},
		{"5000", -20, "4200"}, // exactly −20 → ×0.85: 4250 → tie → 4200
		{"5000", -25, "4200"},
		{"8400", -5, "8000"},     // 7980 → 8000
		{"2100", -25, "1800"},    // 1785 → 1800
		{"6600", -5, "6300"},     // 6270 → 6300
		{"1234.56", -15, "1100"}, // 1111.10 → 1100
	} {
		if got := CutLimit(m(t, tc.limit), tc.change); got != m(t, tc.want) {
			t.Errorf("CutLimit(%s, %d) = %s, want %s", tc.limit, tc.change, got, tc.want)
		}
	}
}

func TestParseTransaction(t *testing.T) {
	good := RawTransaction{"7", "3", "Shop", "2025-04-01 01:21:09", "12.50", "x NY 12345", "purchase", "", ""}
	tx, reason, _ := ParseTransaction(good)
	if reason != "" || tx.ID != 7 || tx.CardID != 3 || tx.Amount != 1250 || tx.Raw() != (RawTransaction{"7", "3", "Shop", "2025-04-01 01:21:09", "12.50", "x NY 12345", "purchase", "", ""}) {
		t.Fatalf("ParseTransaction(good) = %+v, %q", tx, reason)
	}
	// event_date_origin: RFC 3339, kept to the millisecond, in UTC.
	withOrigin := good
	withOrigin.Origin = "2025-04-01T03:21:09.250+02:00"
	tx, reason, _ = ParseTransaction(withOrigin)
	if want := time.Date(2025, 4, 1, 1, 21, 9, 250e6, time.UTC); reason != "" || !tx.Origin.Equal(want) || !tx.EventTime().Equal(want) || tx.Raw().Origin != "2025-04-01T01:21:09.250Z" {
		t.Fatalf("ParseTransaction(with origin) = %+v, %q", tx, reason)
	}
	withOrigin.Origin = "yesterday"
	if _, reason, detail := ParseTransaction(withOrigin); reason != RejectTimestamp || !strings.Contains(detail, "event_date_origin") {
		t.Fatalf("a bad event_date_origin: %q %q", reason, detail)
	}
	for _, tc := range []struct {
		mod  func(*RawTransaction)
		want RejectReason
	}{
		{func(r *RawTransaction) { r.TransactionID = "abc" }, RejectTransactionID},
		{func(r *RawTransaction) { r.TransactionID = "-1" }, RejectTransactionID},
		{func(r *RawTransaction) { r.TransactionID = "" }, RejectTransactionID},
		{func(r *RawTransaction) { r.CardID = "3.0" }, RejectCardID},
		{func(r *RawTransaction) { r.Amount = "12.505" }, RejectAmount},
		{func(r *RawTransaction) { r.Amount = "1e3" }, RejectAmount},
		{func(r *RawTransaction) { r.Amount = "NaN" }, RejectAmount},
		{func(r *RawTransaction) { r.Amount = "" }, RejectAmount},
		{func(r *RawTransaction) { r.Amount = "10000000000" }, RejectAmount},
		{func(r *RawTransaction) { r.Timestamp = "2025-04-01T01:21:09" }, RejectTimestamp},
		{func(r *RawTransaction) { r.Timestamp = "2025-13-01 01:21:09" }, RejectTimestamp},
		{func(r *RawTransaction) { r.Timestamp = "2025-4-1 1:21:09" }, RejectTimestamp},
		{func(r *RawTransaction) { r.Timestamp = "2025-02-29 01:21:09" }, RejectTimestamp},
		{func(r *RawTransaction) { r.Timestamp = "2025-04-31 01:21:09" }, RejectTimestamp},
		{func(r *RawTransaction) { r.Timestamp = "2025-04-01 24:00:00" }, RejectTimestamp},
		{func(r *RawTransaction) { r.Timestamp = "2025-04-01 01:60:00" }, RejectTimestamp},
		{func(r *RawTransaction) { r.Timestamp = "2025-04-01 01:21:9x" }, RejectTimestamp},
		{func(r *RawTransaction) { r.Timestamp = "+025-04-01 01:21:09" }, RejectTimestamp},
		{func(r *RawTransaction) { r.TransactionID = "x"; r.Amount = "bad" }, RejectTransactionID}, // first that applies
		{func(r *RawTransaction) { r.Amount = "bad"; r.Timestamp = "bad" }, RejectAmount},
		{func(r *RawTransaction) { r.Merchant = strings.Repeat("é", MaxMerchant+1) }, RejectText},
		{func(r *RawTransaction) { r.Location = "\xff\xfe" }, RejectText},
		{func(r *RawTransaction) { r.Type = strings.Repeat("x", MaxType+1) }, RejectText},
	} {
		raw := good
		tc.mod(&raw)
		if _, got, detail := ParseTransaction(raw); got != tc.want || detail == "" {
			t.Errorf("ParseTransaction(%+v) reason = %q (%s), want %q", raw, got, detail, tc.want)
		}
	}
}

func TestSortByEvent(t *testing.T) {
	ts := func(s string) Transaction {
		v, _ := ParseTimestamp(s)
		return Transaction{Timestamp: v}
	}
	txs := []Transaction{ts("2025-04-02 00:00:00"), ts("2025-04-01 00:00:00"), ts("2025-04-01 00:00:00"), ts("2025-04-01 00:00:00")}
	for i := range txs {
		txs[i].ID = int64(i + 1)
	}
	SortByEvent(txs)
	var got []int64
	for _, tx := range txs {
		got = append(got, tx.ID)
	}
	if want := []int64{2, 3, 4, 1}; !slices.Equal(got, want) {
		t.Fatalf("order = %v, want %v (equal timestamps keep input order)", got, want)
	}
}

func TestTimestampRoundTrip(t *testing.T) {
	for _, s := range []string{"2024-02-29 23:59:59", "2025-04-01 01:21:09", "0001-01-01 00:00:00", "9999-12-31 23:59:59"} {
		ts, ok := ParseTimestamp(s)
		if !ok {
			t.Fatalf("ParseTimestamp(%q) failed", s)
		}
		if want, _ := time.Parse(TimestampLayout, s); !ts.Equal(want) {
			t.Fatalf("ParseTimestamp(%q) = %v, want %v", s, ts, want)
		}
		if got := string(AppendTimestamp(nil, ts)); got != s {
			t.Fatalf("AppendTimestamp = %q, want %q", got, s)
		}
	}
}

func FuzzParseTimestamp(f *testing.F) {
	f.Add("2025-04-01 01:21:09")
	f.Add("2024-02-29 00:00:00")
	f.Fuzz(func(t *testing.T, s string) {
		ts, ok := ParseTimestamp(s)
		want, err := time.Parse(TimestampLayout, s)
		// the strict form: what time.Parse accepts and formats back the same
		if ok != (err == nil && want.Format(TimestampLayout) == s) {
			t.Fatalf("ParseTimestamp(%q) ok=%v, time.Parse err=%v", s, ok, err)
		}
		if ok && !ts.Equal(want) {
			t.Fatalf("ParseTimestamp(%q) = %v, want %v", s, ts, want)
		}
	})
}

func testMaster() *MasterIndex {
	return NewMasterIndex(&Master{
		Customers: []Customer{{ID: 1, Address: "1 Main St, Albany, NY 12207"}},
		Cards:     []Card{{ID: 7, CustomerID: 1, CreditLimit: 10000000, CurrentBalance: 500}},
	})
}

// TestLedgerDedupHorizon: a transaction id is a duplicate when the card
// judged it at an event time within the horizon of the card's latest event
// time (or the repeat's own, if later); the horizon is event time, not
// arrival order.
func TestLedgerDedupHorizon(t *testing.T) {
	base, _ := ParseTimestamp("2025-04-01 00:00:00")
	day := 24 * time.Hour
	type step struct {
		id   int64
		at   time.Duration // after base
		want RejectReason
	}
	for _, tc := range []struct {
		name    string
		horizon time.Duration
		steps   []step
	}{
		{"repeat at once", 0, []step{{1, 0, ""}, {1, 0, RejectDuplicate}}},
		{"repeat 10,000 later within the horizon", 0, append(append([]step{{1, 0, ""}}, func() []step {
			var s []step
			for i := int64(2); i <= 10001; i++ {
				s = append(s, step{i, time.Duration(i) * time.Second, ""})
			}
			return s
		}()...), step{1, 10002 * time.Second, RejectDuplicate})},
		{"repeat exactly at the horizon", 0, []step{{1, 0, ""}, {2, 7 * day, ""}, {1, 7 * day, RejectDuplicate}}},
		{"repeat a second past the horizon of the latest event", 0, []step{{1, 0, ""}, {2, 7*day + time.Second, ""}, {1, 7*day + time.Second, ""}}},
		{"the latest event time counts, not the repeat's", 0, []step{{1, 0, ""}, {2, 8 * day, ""}, {1, 0, ""}}},
		{"a late repeat within the horizon", 0, []step{{1, 3 * day, ""}, {2, 4 * day, ""}, {1, 0, RejectDuplicate}}},
		{"a repeat with a later event time", 0, []step{{1, 0, ""}, {1, 6 * day, RejectDuplicate}}},
		{"a later repeat past the horizon", 0, []step{{1, 0, ""}, {1, 7*day + time.Second, ""}}},
		{"short horizon", time.Hour, []step{{1, 0, ""}, {1, time.Hour, RejectDuplicate}, {2, 2 * time.Hour, ""}, {1, 2 * time.Hour, ""}}},
		{"ids of other cards are not duplicates", 0, []step{{1, 0, ""}, {-1, 0, ""}}},
		{"event times past 2068 (kept at that limit)", 0, []step{{1, 80 * 365 * day, ""}, {1, 81 * 365 * day, RejectDuplicate}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := testMaster()
			m.SetCard(Card{ID: 8, CustomerID: 1, CreditLimit: 10000000})
			l := NewLedger(m, tc.horizon)
			for i, st := range tc.steps {
				card, id := int64(7), st.id
				if id < 0 { // the id of step 0 on another card
					card, id = 8, -id
				}
				tx := Transaction{ID: id, CardID: card, Timestamp: base.Add(st.at), Amount: 1, Location: "x NY 12180"}
				_, reason, detail := l.JudgeParsed(tx)
				if reason != st.want {
					t.Fatalf("step %d (id %d at +%s): %q (%s), want %q", i, id, st.at, reason, detail, st.want)
				}
				l.Settle(card)
			}
			// A ledger restored from the state decides the same.
			s, _ := l.State(7)
			l2 := NewLedger(m, tc.horizon)
			l2.Restore(7, s)
			last := tc.steps[len(tc.steps)-1]
			for _, id := range []int64{1, 2, 99} {
				tx := Transaction{ID: id, CardID: 7, Timestamp: base.Add(last.at), Amount: 1, Location: "x NY 12180"}
				_, r1, _ := l.JudgeParsed(tx)
				_, r2, _ := l2.JudgeParsed(tx)
				if r1 != r2 {
					t.Fatalf("id %d: the ledger says %q, the restored one %q", id, r1, r2)
				}
			}
		})
	}
}

func TestLedgerStateRestoreRollback(t *testing.T) {
	m := testMaster()
	l := NewLedger(m, time.Hour)
	if s, ok := l.State(7); !ok || s.Pending != 500 || len(s.Seen) != 0 {
		t.Fatalf("a card never judged starts at its current balance: %+v %v", s, ok)
	}
	if _, ok := l.State(8); ok {
		t.Fatal("an unknown card has no state")
	}
	ts, _ := ParseTimestamp("2025-04-01 00:00:00")
	tx := func(id int64, after time.Duration) Transaction {
		return Transaction{ID: id, CardID: 7, Timestamp: ts.Add(after), Amount: 100, Location: "x NY 12180"}
	}
	for id := int64(1); id <= 5; id++ {
		if _, reason, _ := l.JudgeParsed(tx(id, time.Duration(id)*20*time.Minute)); reason != "" {
			t.Fatalf("transaction %d: %s", id, reason)
		}
		l.Settle(7)
	}
	s, _ := l.State(7)
	// 5 judged at +20…+100 min; the horizon of the last (+100) keeps +40 on.
	if s.Pending != 1000 || s.Last != ts.Add(100*time.Minute).Unix() || len(s.Seen) != 4 || s.Seen[0].ID != 2 || s.Seen[3].ID != 5 {
		t.Fatalf("state %+v", s)
	}
	if l.Remembered() != 4 {
		t.Errorf("remembered %d ids, want 4 (settled past the horizon)", l.Remembered())
	}
	// Restore: what a checkpoint gives back.
	l2 := NewLedger(m, time.Hour)
	l2.Restore(7, s)
	if got, _ := l2.State(7); !reflect.DeepEqual(got, s) {
		t.Fatalf("restored %+v, want %+v", got, s)
	}
	// Replay: a committed result read back.
	l2.Replay(7, 6, ts.Add(2*time.Hour), 1100)
	l.JudgeParsed(tx(6, 2*time.Hour))
	a, _ := l.State(7)
	b, _ := l2.State(7)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("replayed %+v, judged %+v", b, a)
	}
	// Snapshot and Rollback: an aborted batch puts its cards back.
	snap := l.Snapshot(7)
	for id := int64(100); id < 105; id++ {
		l.JudgeParsed(tx(id, 3*time.Hour))
	}
	l.Rollback(7, snap)
	if got, _ := l.State(7); !reflect.DeepEqual(got, a) {
		t.Fatalf("after Rollback %+v, want %+v", got, a)
	}
	if _, reason, _ := l.JudgeParsed(tx(100, 3*time.Hour)); reason != "" {
		t.Fatalf("an id of the rolled-back batch: %q", reason)
	}
	fresh := NewLedger(m, 0)
	snap = fresh.Snapshot(7) // no state of its own
	fresh.JudgeParsed(tx(1, 0))
	fresh.Rollback(7, snap)
	if got, _ := fresh.State(7); got.Pending != 500 || len(got.Seen) != 0 || len(fresh.Cards()) != 0 {
		t.Fatalf("rollback to no state: %+v", got)
	}
	// A limit change keeps the pending balance.
	cur, _ := l.State(7)
	m2 := m.Clone()
	m2.SetCard(Card{ID: 7, CustomerID: 1, CreditLimit: 200, CurrentBalance: 500})
	l.SetMaster(m2)
	if got, _ := l.State(7); got.Pending != cur.Pending {
		t.Fatalf("a new limit changed the pending balance: %+v", got)
	}
	if res, _, _ := l.JudgeParsed(tx(1000, 3*time.Hour)); res.DeclineReason != DeclineOverHalf {
		t.Fatalf("the new limit was not applied: %+v", res)
	}
	if c, _ := m.Card(7); c.CreditLimit != 10000000 {
		t.Fatal("Clone shares the cards with its source")
	}
}

func TestEventBefore(t *testing.T) {
	ts, _ := ParseTimestamp("2025-04-01 00:00:00")
	r := func(sec int, seq int64, p int32, off int64) *Result {
		return &Result{Transaction: Transaction{Timestamp: ts.Add(time.Duration(sec) * time.Second), Seq: seq}, Pos: Position{Partition: p, Offset: off}}
	}
	for _, tc := range []struct {
		a, b *Result
		want bool
	}{
		{r(0, 9, 9, 9), r(1, 0, 0, 0), true},
		{r(1, 0, 0, 0), r(0, 9, 9, 9), false},
		{r(0, 1, 9, 9), r(0, 2, 0, 0), true},
		{r(0, 1, 1, 9), r(0, 1, 2, 0), true},
		{r(0, 1, 1, 1), r(0, 1, 1, 2), true},
		{r(0, 1, 1, 2), r(0, 1, 1, 2), false},
	} {
		if got := EventBefore(tc.a, tc.b); got != tc.want {
			t.Errorf("EventBefore(%+v, %+v) = %v", tc.a, tc.b, got)
		}
	}
}

// TestLedgerStolenCard: a payment on a card reported stolen at or before
// its event time is declined as stolen_card, whatever else holds, and
// leaves the pending balance; one before the report, or after a clearing,
// is judged as usual.
func TestLedgerStolenCard(t *testing.T) {
	at := time.Date(2025, 4, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		report *StolenCard
		event  time.Time // the payment's event time (origin)
		want   DeclineReason
	}{
		{"not reported", nil, at, DeclineNone},
		{"reported before", &StolenCard{CardID: 7, ReportedAt: at.Add(-time.Hour)}, at, DeclineStolen},
		{"reported in the same second", &StolenCard{CardID: 7, ReportedAt: at}, at.Add(300 * time.Millisecond), DeclineStolen},
		{"reported after", &StolenCard{CardID: 7, ReportedAt: at.Add(time.Second)}, at.Add(999 * time.Millisecond), DeclineNone},
		{"cleared", &StolenCard{CardID: 7, Cleared: true}, at, DeclineNone},
		{"another card reported", &StolenCard{CardID: 8, ReportedAt: at.Add(-time.Hour)}, at, DeclineNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := testMaster()
			if tc.report != nil {
				m.SetStolen(StolenCard{CardID: tc.report.CardID, ReportedAt: at.Add(-2 * time.Hour)})
				m.SetStolen(*tc.report)
			}
			l := NewLedger(m, 0)
			tx := Transaction{ID: 1, CardID: 7, Timestamp: tc.event.Truncate(time.Second), Origin: tc.event, Amount: 100, Location: "x NY 12180"}
			res, reason, _ := l.JudgeParsed(tx)
			if reason != "" || res.DeclineReason != tc.want {
				t.Fatalf("judged %+v %q, want decline reason %q", res, reason, tc.want)
			}
			if s, _ := l.State(7); tc.want == DeclineStolen && (s.Pending != 500 || res.Status != StatusDeclined) {
				t.Fatalf("a stolen-card decline moved the balance: %+v", s)
			}
		})
	}
}
