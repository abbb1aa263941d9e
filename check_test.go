package txpipe_test

import (
	"errors"
	"io/fs"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/migrations"
	"github.com/txpipe/txpipe/stream"
)

// TestWidthsMatchTheSchema holds every width constant to the VARCHAR(n)
// of its column in the first migration, and every VARCHAR of the master
// and transactions tables to a constant.
func TestWidthsMatchTheSchema(t *testing.T) {
	b, err := fs.ReadFile(migrations.FS, "00001_schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{
		"customers.name": txpipe.MaxCustomerName, "customers.phone_number": txpipe.MaxPhone,
		"customers.address": txpipe.MaxAddress, "customers.email": txpipe.MaxEmail,
		"credit_card_types.name": txpipe.MaxCardTypeName,
		"cards.card_number":      txpipe.MaxCardNumber, "cards.expiration_date": txpipe.MaxExpiration, "cards.issue_date": txpipe.MaxIssueDate,
		"transactions.merchant_name": txpipe.MaxMerchant, "transactions.location": txpipe.MaxLocation,
		"transactions.transaction_type": txpipe.MaxType, "transactions.related_transaction_id": txpipe.MaxRelatedID,
	}
	table := regexp.MustCompile(`CREATE TABLE IF NOT EXISTS (\w+) \(`)
	column := regexp.MustCompile(`^\s*` + "`?" + `(\w+)` + "`?" + `\s+VARCHAR\((\d+)\)`)
	got := map[string]int{}
	current := ""
	for _, line := range strings.Split(string(b), "\n") {
		if m := table.FindStringSubmatch(line); m != nil {
			current = m[1]
			continue
		}
		if m := column.FindStringSubmatch(line); m != nil {
			switch current {
			case "customers", "credit_card_types", "cards", "transactions":
				got[current+"."+m[1]], _ = strconv.Atoi(m[2])
			}
		}
	}
	if len(got) != len(want) {
		t.Errorf("the schema has %d VARCHAR columns in the master and transactions tables, the constants %d: %v", len(got), len(want), got)
	}
	for col, w := range want {
		if got[col] != w {
			t.Errorf("%s: VARCHAR(%d) in the schema, %d in the constants", col, got[col], w)
		}
	}
}

func TestMasterChecks(t *testing.T) {
	cust := txpipe.Customer{ID: 1, Name: "Ann", Phone: "555-0100", Address: "1 Main St\nAlbany, NY 12207", Email: "a@example.com", CreditScore: 700, AnnualIncome: 5000000}
	typ := txpipe.CardType{ID: 1, Name: "Basic", ScoreMin: 580, ScoreMax: 669, LimitMin: 100000, LimitMax: 500000, RewardsRate: "0.005"}
	card := txpipe.Card{ID: 1, CustomerID: 1, CardTypeID: 1, Number: "4000-0000-0000-0002", Expiration: "06/27", CreditLimit: 250000, IssueDate: "2022-11-18"}
	for _, c := range []interface{ Check() error }{cust, typ, card} {
		if err := c.Check(); err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
	}
	for _, tc := range []struct {
		name   string
		row    interface{ Check() error }
		column string
		is     error
	}{
		{"non-UTF-8 name", func() txpipe.Customer { c := cust; c.Name = "Jos\xe9"; return c }(), "name", txpipe.ErrNotUTF8},
		{"long name", func() txpipe.Customer { c := cust; c.Name = strings.Repeat("é", 256); return c }(), "name", txpipe.ErrTooLong},
		{"10 MB address", func() txpipe.Customer { c := cust; c.Address = strings.Repeat("x", 10<<20); return c }(), "address", txpipe.ErrTooLong},
		{"NUL in a phone", func() txpipe.Customer { c := cust; c.Phone = "555\x000100"; return c }(), "phone_number", txpipe.ErrControl},
		{"line break in an email", func() txpipe.Customer { c := cust; c.Email = "a@b\n.com"; return c }(), "email", txpipe.ErrControl},
		{"escape in an address", func() txpipe.Customer { c := cust; c.Address = "1 Main\x1b[2J"; return c }(), "address", txpipe.ErrControl},
		{"score beyond INT", func() txpipe.Customer { c := cust; c.CreditScore = 1 << 31; return c }(), "credit_score", txpipe.ErrIntRange},
		{"hex rewards rate", func() txpipe.CardType { c := typ; c.RewardsRate = "0x1p-2"; return c }(), "rewards_rate", txpipe.ErrNotNumber},
		{"exponent rewards rate", func() txpipe.CardType { c := typ; c.RewardsRate = "5e-3"; return c }(), "rewards_rate", txpipe.ErrNotNumber},
		{"rewards rate beyond DECIMAL(8,5)", func() txpipe.CardType { c := typ; c.RewardsRate = "1000"; return c }(), "rewards_rate", nil},
		{"rewards rate with 6 decimals", func() txpipe.CardType { c := typ; c.RewardsRate = "0.123456"; return c }(), "rewards_rate", nil},
		{"type name too long", func() txpipe.CardType { c := typ; c.Name = strings.Repeat("n", 65); return c }(), "name", txpipe.ErrTooLong},
		{"NUL in a card number", func() txpipe.Card { c := card; c.Number = "4000\x000000"; return c }(), "card_number", txpipe.ErrControl},
		{"300-character card number", func() txpipe.Card { c := card; c.Number = strings.Repeat("4", 300); return c }(), "card_number", txpipe.ErrTooLong},
		{"letters in a card number", func() txpipe.Card { c := card; c.Number = "4000-abcd"; return c }(), "card_number", nil},
		{"long expiration", func() txpipe.Card { c := card; c.Expiration = "06/2027/x"; return c }(), "expiration_date", txpipe.ErrTooLong},
		{"limit beyond DECIMAL(12,2)", func() txpipe.Card { c := card; c.CreditLimit = txpipe.MaxMoney; return c }(), "credit_limit", txpipe.ErrMoneyRange},
	} {
		err := tc.row.Check()
		var fe *txpipe.FieldError
		if !errors.As(err, &fe) || fe.Column != tc.column || (tc.is != nil && !errors.Is(err, tc.is)) {
			t.Errorf("%s: %v; want column %s, %v", tc.name, err, tc.column, tc.is)
			continue
		}
		if len(err.Error()) > 200 {
			t.Errorf("%s: a message of %d bytes", tc.name, len(err.Error()))
		}
	}
	for _, ok := range []string{"0.005", "999.99999", "-1.5", "+2", "000123.10000", "5.", ".5"} {
		if err := txpipe.CheckDecimal(ok, 8, 5); err != nil {
			t.Errorf("CheckDecimal(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-", ".", "1.2.3", " 1", "NaN", "Inf", "1_000", "1234"} {
		if err := txpipe.CheckDecimal(bad, 8, 5); err == nil {
			t.Errorf("CheckDecimal(%q) accepted", bad)
		}
	}
}

// TestMasterRecordsFitTheBroker: a master record that passed Check can
// never exceed the broker's record limit. The bound holds for the
// codec's output even with characters Check refuses (a control character
// is the longest to write, 6 bytes).
func TestMasterRecordsFitTheBroker(t *testing.T) {
	if txpipe.MaxCustomerRecordBytes >= txpipe.MaxRecordBytes || txpipe.MaxCardRecordBytes >= txpipe.MaxRecordBytes {
		t.Fatalf("bounds %d and %d, the broker takes %d", txpipe.MaxCustomerRecordBytes, txpipe.MaxCardRecordBytes, txpipe.MaxRecordBytes)
	}
	for _, fill := range []string{"\x01", `"`, "😀", "é"} {
		full := func(n int) string { return strings.Repeat(fill, n) }
		c := txpipe.Customer{ID: -1 << 63, Name: full(txpipe.MaxCustomerName), Phone: full(txpipe.MaxPhone), Address: full(txpipe.MaxAddress),
			Email: full(txpipe.MaxEmail), CreditScore: -1 << 31, AnnualIncome: -txpipe.MaxMoney + 1}
		if n := len(stream.EncodeCustomer(nil, c)); n > txpipe.MaxCustomerRecordBytes {
			t.Errorf("customer of %q: %d bytes, bound %d", fill, n, txpipe.MaxCustomerRecordBytes)
		}
		k := txpipe.Card{ID: -1 << 63, CustomerID: -1 << 63, CardTypeID: -1 << 63, Number: full(txpipe.MaxCardNumber), Expiration: full(txpipe.MaxExpiration),
			CreditLimit: -txpipe.MaxMoney + 1, CurrentBalance: -txpipe.MaxMoney + 1, IssueDate: full(txpipe.MaxIssueDate)}
		if n := len(stream.EncodeCard(nil, k)); n > txpipe.MaxCardRecordBytes {
			t.Errorf("card of %q: %d bytes, bound %d", fill, n, txpipe.MaxCardRecordBytes)
		}
	}
}

// TestCheckSize: the producer's check reuses ParseTransaction's width
// checks and bounds the row's bytes, whatever else is wrong with it.
func TestCheckSize(t *testing.T) {
	raw := txpipe.RawTransaction{TransactionID: "1", CardID: "26", Merchant: "Shop", Timestamp: "2025-04-01 00:00:00", Amount: "1.00", Location: "x 12207", Type: "purchase"}
	if r, d := txpipe.CheckSize(raw, 1000); r != "" {
		t.Fatalf("a small row: %s %s", r, d)
	}
	long := raw
	long.Merchant = strings.Repeat("m", 10<<20)
	if r, d := txpipe.CheckSize(long, txpipe.MaxRecordBytes); r != txpipe.RejectText || !strings.Contains(d, "merchant_name has 10485760 characters, at most 255") {
		t.Fatalf("10 MB merchant: %s %s", r, d)
	}
	if _, r, d := txpipe.ParseTransaction(long); r != txpipe.RejectText || !strings.Contains(d, "merchant_name has") {
		t.Fatalf("ParseTransaction disagrees: %s %s", r, d)
	}
	bigID := raw
	bigID.TransactionID = strings.Repeat("9", 2<<20)
	if r, d := txpipe.CheckSize(bigID, txpipe.MaxRecordBytes); r != txpipe.RejectText || !strings.Contains(d, "at most 1048576 fit") {
		t.Fatalf("2 MB transaction id: %s %s", r, d)
	}
	if _, r, d := txpipe.ParseTransaction(bigID); r != txpipe.RejectTransactionID || len(d) > 200 {
		t.Fatalf("ParseTransaction of a 2 MB id: %s, a detail of %d bytes", r, len(d))
	}
}

func FuzzCheckDecimal(f *testing.F) {
	for _, s := range []string{"0.005", "1e3", "0x1p-2", "-.5", "999.99999", "1000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := txpipe.CheckDecimal(s, 8, 5)
		if err != nil {
			return
		}
		// Accepted: a plain decimal with at most 3 integer digits and 5
		// significant decimals.
		v, perr := strconv.ParseFloat(s, 64)
		if perr != nil || strings.ContainsAny(s, "eEnNiIxXpP_") || v >= 1000 || v <= -1000 {
			t.Fatalf("CheckDecimal accepted %q (%v, %v)", s, v, perr)
		}
	})
}

// FuzzParseTransaction: any raw row is judged without a panic; a row it
// accepts passes the producer's size check and comes back the same from
// its own written form; a row CheckSize refuses is refused by
// ParseTransaction too, for the same reason, when its ids, amount and
// timestamp are good.
func FuzzParseTransaction(f *testing.F) {
	f.Add("1", "26", "Barrett LLC", "2025-04-01 01:21:09", "131.76", "4395 Brenda Lake, Queens, NY 10859", "bill_payment", "")
	f.Add("x", "-1", "Caf\xe9", "2025-02-30 00:00:00", "1e3", "", "", "12")
	f.Fuzz(func(t *testing.T, id, card, merchant, ts, amount, location, typ, related string) {
		raw := txpipe.RawTransaction{TransactionID: id, CardID: card, Merchant: merchant, Timestamp: ts, Amount: amount, Location: location, Type: typ, RelatedID: related}
		tx, reason, detail := txpipe.ParseTransaction(raw)
		sizeReason, _ := txpipe.CheckSize(raw, 0)
		if reason == "" {
			if sizeReason != "" {
				t.Fatalf("ParseTransaction accepts %+v, CheckSize refuses it", raw)
			}
			again, r2, d2 := txpipe.ParseTransaction(tx.Raw())
			if r2 != "" || again != tx {
				t.Fatalf("%+v: written as %+v, read back as %+v (%s %s)", tx, tx.Raw(), again, r2, d2)
			}
			return
		}
		if len(detail) > 300 {
			t.Fatalf("a detail of %d bytes", len(detail))
		}
		if sizeReason != "" && reason != txpipe.RejectText {
			if _, r, _ := txpipe.ParseTransaction(txpipe.RawTransaction{TransactionID: "1", CardID: "1", Timestamp: "2025-01-01 00:00:00", Amount: "1",
				Merchant: merchant, Location: location, Type: typ, RelatedID: related}); r != txpipe.RejectText {
				t.Fatalf("CheckSize refuses the text of %+v, ParseTransaction says %q", raw, r)
			}
		}
	})
}
