// Package reftest compares txpipe's outputs with the public reference
// implementation's results, for tests.
package reftest

import (
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
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

// SameRows fails unless two CSV files of a stream view hold the same rows
// in the same order, naming the first that differs. Kafka offsets and
// topic names are left out: a run interrupted by crashes writes the same
// rows at other offsets (an aborted transaction takes offsets too), and
// tests name their topics apart. Each field goes through normalize, when
// given, first.
func SameRows(tb testing.TB, got, want string, normalize ...func(string) string) {
	tb.Helper()
	g, w := readAll(tb, got), readAll(tb, want)
	for _, col := range []string{"kafka_offset", "kafka_topic"} {
		g, w = dropColumn(g, col), dropColumn(w, col)
	}
	for _, n := range normalize {
		for _, rows := range [][][]string{g, w} {
			for _, r := range rows {
				for i := range r {
					r[i] = n(r[i])
				}
			}
		}
	}
	for i := 0; i < min(len(g), len(w)); i++ {
		if !slices.Equal(g[i], w[i]) {
			tb.Fatalf("%s differs from the uninterrupted run at row %d:\n got  %q\n want %q\n(%d vs %d rows)", filepath.Base(got), i+1, g[i], w[i], len(g), len(w))
		}
	}
	if len(g) != len(w) {
		tb.Fatalf("%s: %d rows, the uninterrupted run's %d", filepath.Base(got), len(g), len(w))
	}
}

// dropColumn removes the column named col (by the header) from rows.
func dropColumn(rows [][]string, col string) [][]string {
	if len(rows) == 0 {
		return rows
	}
	i := slices.Index(rows[0], col)
	if i < 0 {
		return rows
	}
	for r := range rows {
		if i < len(rows[r]) {
			rows[r] = slices.Delete(rows[r], i, i+1)
		}
	}
	return rows
}
