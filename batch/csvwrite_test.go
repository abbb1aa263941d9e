package batch

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/serving/csvfile"
)

// awkward are texts that csvfile.Writer quotes, or not, for one reason or
// another.
var awkward = []string{"", "plain", "a,b", `say "hi"`, " lead", "\tlead", "trail ", "two\nlines", "cr\rhere", `\.`, "Café Ñandú", "\u00a0nbsp", "\u2003em"}

// The row encoders write what csvfile.Writer writes, byte for byte.
func TestRowsAsCSVWriter(t *testing.T) {
	dir := t.TempDir()
	want := func(write func(w *csvfile.Writer) error) []byte {
		t.Helper()
		path := filepath.Join(dir, "want.csv")
		w, err := csvfile.Create(path, []string{"h"})
		if err != nil {
			t.Fatal(err)
		}
		if err := write(w); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(path)
		return b[len("h\n"):]
	}

	var results []txpipe.Result
	var cards []txpipe.Card
	var customers []txpipe.Customer
	ts := time.Date(2025, 4, 1, 23, 59, 58, 0, time.UTC)
	for i, s := range awkward {
		r := txpipe.Result{Status: txpipe.StatusApproved, PendingBalance: txpipe.Money(-12345 * i), DeclineReason: txpipe.DeclineReason(s)}
		r.ID, r.CardID, r.Merchant, r.Location, r.Type, r.RelatedID = int64(i+1), int64(100+i), s, s+", NY 10001", s, s
		r.Timestamp, r.Amount = ts.Add(time.Duration(i)*time.Hour), txpipe.Money(i*101-500)
		results = append(results, r)
		cards = append(cards, txpipe.Card{ID: int64(i + 1), CustomerID: 7, CardTypeID: 2, Number: s, Expiration: s,
			CreditLimit: txpipe.Money(100000 * i), CurrentBalance: txpipe.Money(-99 * i), IssueDate: s})
		customers = append(customers, txpipe.Customer{ID: int64(i + 1), Name: s, Phone: s, Address: s + ", Albany, NY 12207", Email: s,
			CreditScore: int64(300 + i), AnnualIncome: txpipe.Money(5000000 + i)})
	}

	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := newTxBuilder(mem, len(results))
	defer b.release()
	for i := range results {
		b.appendResult(&results[i])
	}
	rec := b.newRecord()
	defer rec.Release()
	c := columns(rec)
	var got []byte
	var f tsFormat
	for i := range c.n {
		got = appendCSVRow(got, &c, i, &f)
	}
	if w := want(func(w *csvfile.Writer) error {
		for _, r := range results {
			if err := w.WriteResult(r); err != nil {
				return err
			}
		}
		return nil
	}); !bytes.Equal(got, w) {
		t.Errorf("result rows\n%q\nWriteResult\n%q", got, w)
	}

	got = got[:0]
	for i := range cards {
		got = appendCardRow(got, &cards[i])
	}
	if w := want(func(w *csvfile.Writer) error {
		for _, c := range cards {
			if err := w.WriteCard(c); err != nil {
				return err
			}
		}
		return nil
	}); !bytes.Equal(got, w) {
		t.Errorf("card rows\n%q\nWriteCard\n%q", got, w)
	}

	got = got[:0]
	for i := range customers {
		got = appendCustomerRow(got, &customers[i])
	}
	if w := want(func(w *csvfile.Writer) error {
		for _, c := range customers {
			if err := w.WriteCustomer(c); err != nil {
				return err
			}
		}
		return nil
	}); !bytes.Equal(got, w) {
		t.Errorf("customer rows\n%q\nWriteCustomer\n%q", got, w)
	}
}
