package dataset

import (
	"bytes"
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"testing"
)

// TestDemographics checks that the optional age and gender columns are
// added to customers.csv and change nothing else.
func TestDemographics(t *testing.T) {
	plain, demo := t.TempDir(), t.TempDir()
	o := Options{Customers: 200, Cards: 300, Transactions: 1000, Seed: 7}
	if _, err := Generate(context.Background(), plain, o); err != nil {
		t.Fatal(err)
	}
	o.Demographics = true
	if _, err := Generate(context.Background(), demo, o); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{CardTypesFile, CardsFile, TransactionsFile} {
		a, _ := os.ReadFile(filepath.Join(plain, f))
		b, _ := os.ReadFile(filepath.Join(demo, f))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs with demographics", f)
		}
	}
	read := func(dir string) [][]string {
		b, _ := os.ReadFile(filepath.Join(dir, CustomersFile))
		recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		return recs
	}
	a, b := read(plain), read(demo)
	if len(a) != len(b) || b[0][7] != "age" || b[0][8] != "gender" {
		t.Fatalf("header %q", b[0])
	}
	genders := map[string]int{}
	for i := range a {
		for j := range a[i] {
			if a[i][j] != b[i][j] {
				t.Fatalf("row %d column %d: %q, with demographics %q", i, j, a[i][j], b[i][j])
			}
		}
		if i > 0 {
			genders[b[i][8]]++
			if len(b[i][7]) != 2 || b[i][7] < "18" || b[i][7] > "90" {
				t.Errorf("row %d: age %q", i, b[i][7])
			}
		}
	}
	if genders["F"] < 50 || genders["M"] < 50 || len(genders) != 2 {
		t.Errorf("genders %v", genders)
	}
}
