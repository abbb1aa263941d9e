package txpipe_test

import (
	"path/filepath"
	"testing"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/internal/reftest"
	"github.com/txpipe/txpipe/serving/csvfile"
)

// TestConformance runs the shared rules over the reference input and
// compares the four result files with the reference results to the cent.
func TestConformance(t *testing.T) {
	data, want := reftest.Data(t), reftest.Results(t)
	master, results := reftest.Judge(t, data)
	out := t.TempDir()
	reftest.WriteResults(t, filepath.Join(out, csvfile.StreamFile), results)
	batch, err := csvfile.Create(filepath.Join(out, csvfile.BatchFile), csvfile.ResultColumns)
	if err != nil {
		t.Fatal(err)
	}
	approved := map[int64]txpipe.Money{}
	for _, res := range results {
		res.Status = txpipe.Settle(res.Status)
		if res.Status == txpipe.StatusApproved {
			approved[res.CardID] += res.Amount
		}
		must(t, batch.WriteResult(res))
	}
	must(t, batch.Commit())

	settled := make([]txpipe.Card, len(master.Cards))
	for i, c := range master.Cards {
		c.CurrentBalance += approved[c.ID]
		settled[i] = c
	}
	customers, cards := txpipe.Rescore(master.Customers, settled)
	cw, err := csvfile.Create(filepath.Join(out, csvfile.CardsUpdatedFile), csvfile.CardColumns)
	must(t, err)
	for _, c := range cards {
		must(t, cw.WriteCard(c))
	}
	must(t, cw.Commit())
	uw, err := csvfile.Create(filepath.Join(out, csvfile.CustomersUpdFile), csvfile.CustomerColumns)
	must(t, err)
	for _, c := range customers {
		must(t, uw.WriteCustomer(c))
	}
	must(t, uw.Commit())

	for _, f := range []string{csvfile.StreamFile, csvfile.BatchFile, csvfile.CardsUpdatedFile, csvfile.CustomersUpdFile} {
		reftest.CompareFile(t, filepath.Join(out, f), filepath.Join(want, f))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
