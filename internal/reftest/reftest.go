// Package reftest compares txpipe's outputs with the public reference
// implementation's results, for tests.
package reftest

import (
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
)

// Dir returns the reference directory (holding dataset_22/ and results/),
// or skips the test with a clear message when it is absent. TXPIPE_REFERENCE
// overrides where it is looked for.
func Dir(tb testing.TB) string {
	tb.Helper()
	dir := os.Getenv("TXPIPE_REFERENCE")
	if dir == "" {
		_, file, _, _ := runtime.Caller(0)
		dir = filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "reference")
	}
	if _, err := os.Stat(filepath.Join(dir, "dataset_22", "transactions.csv")); err != nil {
		tb.Skipf("reference data not found at %s (set TXPIPE_REFERENCE to the folder holding dataset_22/ and results/): %v", dir, err)
	}
	return dir
}

// Data is the reference input dataset directory.
func Data(tb testing.TB) string { return filepath.Join(Dir(tb), "dataset_22") }

// Results is the reference results directory.
func Results(tb testing.TB) string { return filepath.Join(Dir(tb), "results") }

// moneyColumns are compared to the cent: the reference writes floats with
// binary noise (-95.11000000000001).
var moneyColumns = map[string]bool{
	"amount": true, "pending_balance": true, "credit_limit": true, "current_balance": true, "annual_income": true,
}

// CompareFile checks that got has every column of want, in want's order
// first, and the same rows in the same order; money columns are compared to
// the cent, every other field exactly.
func CompareFile(tb testing.TB, got, want string) {
	tb.Helper()
	g, w := readAll(tb, got), readAll(tb, want)
	if len(g) == 0 || len(w) == 0 {
		tb.Fatalf("%s or %s is empty", got, want)
	}
	for i, col := range w[0] {
		if i >= len(g[0]) || g[0][i] != col {
			tb.Fatalf("%s: header %v does not start with the reference's columns %v", got, g[0], w[0])
		}
	}
	if len(g) != len(w) {
		tb.Errorf("%s: %d rows, reference %s has %d", got, len(g)-1, want, len(w)-1)
	}
	bad := 0
	for r := 1; r < min(len(g), len(w)); r++ {
		for i, col := range w[0] {
			gv, wv := g[r][i], w[r][i]
			if moneyColumns[col] {
				gc, gok := cents(gv)
				wc, wok := cents(wv)
				if gok && wok && gc == wc {
					continue
				}
			} else if gv == wv {
				continue
			}
			if bad++; bad <= 10 {
				tb.Errorf("%s line %d column %s = %q, reference %q", filepath.Base(got), r+1, col, gv, wv)
			}
		}
	}
	if bad > 10 {
		tb.Errorf("%s: %d differing fields in all", filepath.Base(got), bad)
	}
}

func cents(s string) (int64, bool) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false
	}
	return int64(math.Round(f * 100)), true
}

func readAll(tb testing.TB, path string) [][]string {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		tb.Fatalf("read %s: %v", path, err)
	}
	return recs
}
