package csvfile

import (
	"encoding/csv"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/txpipe/txpipe"
)

const (
	goodCustomers = "customer_id,name,phone_number,address,email,credit_score,annual_income\r\n" +
		"1,Ann,555,\"1 Main St, Albany, NY 12207\",a@example.com,700,50000.0\r\n" +
		"2,Bob,556,\"2 Main St, Troy, NY 12180\",b@example.com,650,42000\r\n"
	goodTypes = "card_type_id,name,credit_score_min,credit_score_max,credit_limit_min,credit_limit_max,annual_fee,rewards_rate\n" +
		"1,Basic,580,669,1000,5000,0,0.005\n"
	goodCards = "card_id,customer_id,card_type_id,card_number,expiration_date,credit_limit,current_balance,issue_date\n" +
		"1,1,1,4000-0000-0000-0002,06/27,2500.0,120.67,2022-11-18\n" +
		"2,2,1,4000-0000-0000-0010,06/27,1000,0,2022-11-18\n"
)

func writeDataset(t *testing.T, customers, types, cards string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{CustomersFile: customers, CardTypesFile: types, CardsFile: cards} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestReadMaster(t *testing.T) {
	m, err := ReadMaster(writeDataset(t, goodCustomers, goodTypes, goodCards))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Customers) != 2 || m.Customers[0].Address != "1 Main St, Albany, NY 12207" || m.Customers[1].AnnualIncome != 4200000 {
		t.Fatalf("customers: %+v", m.Customers)
	}
	if len(m.Cards) != 2 || m.Cards[0].CreditLimit != 250000 || m.Cards[0].CurrentBalance != 12067 {
		t.Fatalf("cards: %+v", m.Cards)
	}
}

func TestReadMasterErrors(t *testing.T) {
	replace := func(s, old, new string) string {
		if !strings.Contains(s, old) {
			t.Fatalf("test setup: %q not in %q", old, s)
		}
		return strings.Replace(s, old, new, 1)
	}
	for _, tc := range []struct {
		name                    string
		customers, types, cards string
		file                    string
		line                    int
		column                  string
	}{
		{"missing column", replace(goodCustomers, ",email", ",mail"), goodTypes, goodCards, CustomersFile, 1, "email"},
		{"non-integer id", replace(goodCustomers, "2,Bob", "2x,Bob"), goodTypes, goodCards, CustomersFile, 3, "customer_id"},
		{"duplicate id", replace(goodCustomers, "2,Bob", "1,Bob"), goodTypes, goodCards, CustomersFile, 3, "customer_id"},
		{"non-integer score", replace(goodCustomers, ",650,", ",6.5e2,"), goodTypes, goodCards, CustomersFile, 3, "credit_score"},
		{"extra field", replace(goodCustomers, "42000", "42,000"), goodTypes, goodCards, CustomersFile, 3, ""},
		{"bad income", replace(goodCustomers, "42000", "lots"), goodTypes, goodCards, CustomersFile, 3, "annual_income"},
		{"unknown customer", goodCustomers, goodTypes, replace(goodCards, "2,2,1,", "2,9,1,"), CardsFile, 3, "customer_id"},
		{"unknown card type", goodCustomers, goodTypes, replace(goodCards, "2,2,1,", "2,2,7,"), CardsFile, 3, "card_type_id"},
		{"zero limit", goodCustomers, goodTypes, replace(goodCards, ",1000,0,", ",0,0,"), CardsFile, 3, "credit_limit"},
		{"negative limit", goodCustomers, goodTypes, replace(goodCards, ",1000,0,", ",-5,0,"), CardsFile, 3, "credit_limit"},
		{"bad balance", goodCustomers, goodTypes, replace(goodCards, ",120.67,", ",120.675,"), CardsFile, 2, "current_balance"},
		{"bad rewards", goodCustomers, replace(goodTypes, "0.005", "NaN"), goodCards, CardTypesFile, 2, "rewards_rate"},
		{"short row", goodCustomers, goodTypes, replace(goodCards, ",2022-11-18\n2,", "\n2,"), CardsFile, 2, ""},
	} {
		_, err := ReadMaster(writeDataset(t, tc.customers, tc.types, tc.cards))
		var ce *Error
		if !errors.As(err, &ce) {
			t.Errorf("%s: error %v is not a *csvfile.Error", tc.name, err)
			continue
		}
		if filepath.Base(ce.File) != tc.file || ce.Line != tc.line || ce.Column != tc.column {
			t.Errorf("%s: %v; want %s line %d column %q", tc.name, err, tc.file, tc.line, tc.column)
		}
		if !strings.Contains(err.Error(), tc.file) {
			t.Errorf("%s: message %q does not name the file", tc.name, err)
		}
	}
}

func TestTransactionReader(t *testing.T) {
	path := filepath.Join(t.TempDir(), TransactionsFile)
	body := strings.Join(txpipe.TransactionColumns, ",") + "\r\n" +
		"1,26,Barrett LLC,2025-04-01 01:21:09,131.76,\"4395 Brenda Lake, Queens, NY 10859\",bill_payment,\r\n" +
		"2,26,\"Nelson, Bell\",2025-04-01 01:22:09,12,x NY 10859,refund\r\n" +
		"3,26,\"multi\nline\",2025-04-01 01:23:09,-5.5,x NY 10859,refund,1\r\n"
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := OpenTransactions(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []TransactionRow
	for {
		row, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, row)
	}
	if len(got) != 3 || got[0].Reject != "" || got[1].Reject != txpipe.RejectFieldCount || got[2].Reject != "" {
		t.Fatalf("rows %+v", got)
	}
	if got[0].Raw.Location != "4395 Brenda Lake, Queens, NY 10859" || got[1].Raw.Merchant != "Nelson, Bell" || got[2].Line != 4 || got[2].Raw.RelatedID != "1" {
		t.Fatalf("rows %+v", got)
	}
	if got[1].Detail != "the row has 7 fields, the header 8" {
		t.Fatalf("field_count detail %q", got[1].Detail)
	}
}

func TestWriterIsAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.csv")
	if err := os.WriteFile(path, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := Create(path, []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write([]string{"1", "x,y"}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old\n" {
		t.Fatalf("before Commit the old file must stay, got %q", b)
	}
	w.Abort()
	if b, _ := os.ReadFile(path); string(b) != "old\n" {
		t.Fatalf("after Abort the old file must stay, got %q", b)
	}
	w, _ = Create(path, []string{"a", "b"})
	w.Write([]string{"1", "x,y"})
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "a,b\n1,\"x,y\"\n" {
		t.Fatalf("after Commit: %q", b)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestAppendResultNeverNegativeZero(t *testing.T) {
	ts, _ := txpipe.ParseTimestamp("2025-04-01 00:00:00")
	rec := AppendResult(nil, txpipe.Result{Transaction: txpipe.Transaction{ID: 1, CardID: 2, Timestamp: ts, Amount: -0}, Status: txpipe.StatusPending, PendingBalance: 0})
	if rec[4] != "0.00" || rec[9] != "0.00" {
		t.Fatalf("money fields %q %q", rec[4], rec[9])
	}
}

// scanWithEncodingCSV is what ScanColumn must agree with on a file that
// encoding/csv reads and whose rows with line breaks in a field have the
// header's field count (ScanColumn takes any other such row for a stray
// quote). It returns nil for any other file.
func scanWithEncodingCSV(t *testing.T, path, column string) (vals []string, oks []bool) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	r.LazyQuotes = false
	recs, err := r.ReadAll()
	if err != nil || len(recs) == 0 {
		return nil, nil
	}
	col := slices.Index(recs[0], column)
	for _, rec := range recs {
		breaks := strings.Count(strings.Join(rec, ","), "\n")
		if breaks >= MaxRowLines-1 || breaks > 0 && len(rec) != len(recs[0]) {
			return nil, nil
		}
	}
	for _, rec := range recs[1:] {
		v := ""
		if col < len(rec) {
			v = rec[col]
		}
		vals, oks = append(vals, v), append(oks, len(rec) == len(recs[0]))
	}
	return vals, oks
}

func scanColumn(t *testing.T, path, column string) (vals []string, oks []bool, err error) {
	err = ScanColumn(path, column, func(v []byte, ok bool) error {
		vals, oks = append(vals, string(v)), append(oks, ok)
		return nil
	})
	return vals, oks, err
}

func TestScanColumnAgreesWithEncodingCSV(t *testing.T) {
	body := "a,timestamp,b\r\n1,\"2025-04-01 00:00:00\",x\r\n\r\n2,\"quoted, \"\"comma\"\"\",\"multi\nline\"\n3,short\n4,x,y,z\nlast,no newline,z"
	path := filepath.Join(t.TempDir(), "t.csv")
	os.WriteFile(path, []byte(body), 0o644)
	gv, gok, err := scanColumn(t, path, "timestamp")
	if err != nil {
		t.Fatal(err)
	}
	wv, wok := scanWithEncodingCSV(t, path, "timestamp")
	if !slices.Equal(gv, wv) || !slices.Equal(gok, wok) {
		t.Fatalf("ScanColumn %q %v\nencoding/csv %q %v", gv, gok, wv, wok)
	}
	if err := ScanColumn(path, "nope", func([]byte, bool) error { return nil }); err == nil {
		t.Fatal("a missing column must be an error")
	}
}

func FuzzScanColumn(f *testing.F) {
	f.Add("a,timestamp\n1,\"x,y\"\n2,\"\"\"q\"\"\"\n")
	f.Add("timestamp\r\n\r\nx\r\n")
	f.Add("1,\"a\r\"\n2,\"b\r\nc\"\r\n")
	f.Fuzz(func(t *testing.T, body string) {
		path := filepath.Join(t.TempDir(), "f.csv")
		os.WriteFile(path, []byte("n,timestamp\n"+body), 0o644)
		wv, wok := scanWithEncodingCSV(t, path, "timestamp")
		if wv == nil { // encoding/csv rejects the file (bad quoting): nothing to compare
			if _, _, err := scanColumn(t, path, "timestamp"); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			return
		}
		gv, gok, err := scanColumn(t, path, "timestamp")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(gv, wv) || !slices.Equal(gok, wok) {
			t.Fatalf("body %q:\nScanColumn %q %v\nencoding/csv %q %v", body, gv, gok, wv, wok)
		}
	})
}

// TestReadMasterChecksTheSchema: master data that only MySQL would refuse
// is refused when it is read, with file, line and column, and a message
// of readable length however long the field.
func TestReadMasterChecksTheSchema(t *testing.T) {
	replace := func(s, old, new string) string {
		if !strings.Contains(s, old) {
			t.Fatalf("test setup: %q not in %q", old, s)
		}
		return strings.Replace(s, old, new, 1)
	}
	for _, tc := range []struct {
		name                    string
		customers, types, cards string
		file                    string
		line                    int
		column                  string
		says                    string
	}{
		{"non-UTF-8 name", replace(goodCustomers, "2,Bob", "2,B\xf6b"), goodTypes, goodCards, CustomersFile, 3, "name", "not valid UTF-8"},
		{"300-character card number", goodCustomers, goodTypes, replace(goodCards, "4000-0000-0000-0010", strings.Repeat("4", 300)), CardsFile, 3, "card_number", "300 characters, at most 32"},
		{"NUL in a card number", goodCustomers, goodTypes, replace(goodCards, "4000-0000-0000-0010", "4000\x00"), CardsFile, 3, "card_number", "control character U+0000"},
		{"10 MB address", replace(goodCustomers, "2 Main St", strings.Repeat("a", 10<<20)), goodTypes, goodCards, CustomersFile, 3, "address", "at most 512"},
		{"10 MB id", replace(goodCustomers, "2,Bob", strings.Repeat("9", 10<<20)+",Bob"), goodTypes, goodCards, CustomersFile, 3, "customer_id", "is not a positive integer id"},
		{"10 MB income", replace(goodCustomers, "42000", strings.Repeat("4", 10<<20)), goodTypes, goodCards, CustomersFile, 3, "annual_income", "out of range"},
		{"hex rewards rate", goodCustomers, replace(goodTypes, "0.005", "0x1p-2"), goodCards, CardTypesFile, 2, "rewards_rate", "not a plain decimal"},
		{"tab in a type name", goodCustomers, replace(goodTypes, "Basic", "Ba\tsic"), goodCards, CardTypesFile, 2, "name", "control character"},
		{"score beyond INT", replace(goodCustomers, ",650,", ",9999999999,"), goodTypes, goodCards, CustomersFile, 3, "credit_score", "out of the range"},
	} {
		_, err := ReadMaster(writeDataset(t, tc.customers, tc.types, tc.cards))
		var ce *Error
		if !errors.As(err, &ce) {
			t.Errorf("%s: error %v is not a *csvfile.Error", tc.name, err)
			continue
		}
		if filepath.Base(ce.File) != tc.file || ce.Line != tc.line || ce.Column != tc.column || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %.300v; want %s line %d column %q saying %q", tc.name, err, tc.file, tc.line, tc.column, tc.says)
		}
		if n := len(err.Error()) - len(ce.File); n > 300 {
			t.Errorf("%s: a message of %d bytes", tc.name, n)
		}
	}
}

// FuzzReadMaster reads any customers.csv and cards.csv: ReadMaster never
// panics; it refuses with a *Error naming the file and a line, or every
// row it returns passes the schema's checks.
func FuzzReadMaster(f *testing.F) {
	f.Add("1,Ann,555,\"1 Main St, Albany, NY 12207\",a@example.com,700,50000.0\n", "1,1,1,4000-0000-0000-0002,06/27,2500.0,120.67,2022-11-18\n")
	f.Add("1,A\"nn,555,x,a,700,1\n", "1,1,1,4000\x00,06/27,1,0,2022\n")
	f.Add("1,Ann,555,\"x\ny\",a,700,1\n2,\"Bob\n", "1,1,1,\"4\",06/27,1,0,d\n")
	f.Fuzz(func(t *testing.T, customers, cards string) {
		dir := writeDataset(t, strings.Join(CustomerColumns, ",")+"\n"+customers, goodTypes, strings.Join(CardColumns, ",")+"\n"+cards)
		m, err := ReadMaster(dir)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || ce.Line < 1 || ce.File == "" {
				t.Fatalf("error %v does not name a file and line", err)
			}
			return
		}
		for _, c := range m.Customers {
			if err := c.Check(); err != nil {
				t.Fatalf("customer %+v: %v", c, err)
			}
		}
		for _, c := range m.Cards {
			if err := c.Check(); err != nil {
				t.Fatalf("card %+v: %v", c, err)
			}
		}
	})
}

func TestReadResultsBrokenQuoteIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), StreamFile)
	body := strings.Join(StreamColumns, ",") + "\n" +
		"1,2,M,2025-04-01 00:00:00,1.00,L,purchase,,pending,1.00,,0,0\n" +
		"\"\n" +
		"2,2,M,2025-04-01 00:00:00,1.00,L,purchase,,pending,2.00,,0,1\n"
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	n := 0
	err := ReadResults(path, func(txpipe.Result, int) error { n++; return nil })
	if err == nil || !strings.Contains(err.Error(), StreamFile+":3") || n != 1 {
		t.Errorf("ReadResults read %d rows, error %v; want 1 row and an error on line 3", n, err)
	}
}
