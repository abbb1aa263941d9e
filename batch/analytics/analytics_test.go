package analytics

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRatioRoundsOnce(t *testing.T) {
	for _, c := range []struct {
		num, den int64
		scale    int
		want     string
	}{
		{1, 3, 6, "0.333333"}, {2, 3, 6, "0.666667"}, {1, 8, 2, "0.13"}, {-1, 8, 2, "-0.13"}, {5, 5, 6, "1.000000"},
		{0, 7, 6, "0.000000"}, {1, 2000000, 6, "0.000001"}, {1, 2000001, 6, "0.000000"}, {-7, 2, 0, "-4"},
		{math.MaxInt64, math.MaxInt64 - 1, 6, "1.000000"},
	} {
		v, ok := Ratio(c.num, c.den, c.scale)
		if got := FormatFixed(v, c.scale); !ok || got != c.want {
			t.Errorf("Ratio(%d, %d, %d) = %s, want %s", c.num, c.den, c.scale, got, c.want)
		}
	}
	if _, ok := Rate(1, 0); ok {
		t.Error("Rate(1, 0) is defined")
	}
	if got := FormatFixed(-5, 2); got != "-0.05" {
		t.Errorf("FormatFixed(-5, 2) = %s", got)
	}
}

func TestParseRegion(t *testing.T) {
	for in, want := range map[string]string{
		"7326 John Ridge, Buffalo, NY 11513":        "NY|Buffalo",
		"1 Main St, Apt 4, New York, NY 10001-1234": "NY|New York",
		"Somewhere, East Samantha, PA 19988":        "PA|East Samantha",
		"Cherylburgh, OH 44581":                     "OH|Cherylburgh",
		"no commas NY 10001":                        "",
		"7326 John Ridge, Buffalo, New York 11513":  "",
		"7326 John Ridge, Buffalo, NY 115":          "",
		"7326 John Ridge, , NY 11513":               "",
	} {
		r, ok := ParseRegion(in)
		got := ""
		if ok {
			got = r.State + "|" + r.City
		}
		if got != want {
			t.Errorf("ParseRegion(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDays(t *testing.T) {
	d, ok := ParseDay("2025-03-08")
	if !ok || d.Weekday() != 6 || d.Monday().String() != "2025-03-03" || d.String() != "2025-03-08" {
		t.Errorf("2025-03-08: %d, weekday %d, Monday %s", d, d.Weekday(), d.Monday())
	}
	if old, _ := ParseDay("1969-12-28"); old.Weekday() != 7 || DayOf(-1) != -1 || DayOf(0) != 0 {
		t.Errorf("1969-12-28: weekday %d", old.Weekday())
	}
}

// TestForecastBeatsSeasonalNaive fits a noisy weekly cycle with a trend:
// the backtest's MAPE beats seasonal naive, the intervals cover about
// what they claim, and the forecast keeps the cycle.
func TestForecastBeatsSeasonalNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	shape := []float64{0, 300, 500, 200, -100, 1500, -800}
	var y []float64
	for i := range 70 {
		y = append(y, 10000+5*float64(i)+shape[i%7]+rng.NormFloat64()*150)
	}
	bt, ok := RollingBacktest(y, 7, 14, 28)
	if !ok || bt.Origins != 28 || bt.MAPE >= bt.NaiveMAPE {
		t.Fatalf("backtest %+v", bt)
	}
	if c := float64(bt.Covered95) / float64(bt.Forecasts); c < 0.85 {
		t.Errorf("95 %% coverage %.2f", c)
	}
	m, err := FitHW(y, 7)
	if err != nil {
		t.Fatal(err)
	}
	f := m.Forecast(14)
	// Day 70 is shape[0], 75 the peak (shape[5]), 76 the trough.
	if !(f[5].Mean > f[0].Mean+1000 && f[6].Mean < f[0].Mean-500) {
		t.Errorf("forecast %v lost the cycle", f[:7])
	}
	for i, p := range f {
		if !(p.Lo95 < p.Lo80 && p.Lo80 < p.Mean && p.Mean < p.Hi80 && p.Hi80 < p.Hi95) {
			t.Errorf("step %d: %+v", i+1, p)
		}
		if i > 0 && p.Hi95-p.Lo95 < f[i-1].Hi95-f[i-1].Lo95 {
			t.Errorf("step %d: the interval narrows", i+1)
		}
	}
	if _, err := FitHW(y[:13], 7); err == nil {
		t.Error("fitted 13 observations")
	}
	t.Logf("%s: MAPE %.4f, seasonal naive %.4f, coverage 80 %% %d/%d, 95 %% %d/%d", m, bt.MAPE, bt.NaiveMAPE, bt.Covered80, bt.Forecasts, bt.Covered95, bt.Forecasts)
}

func TestFileSource(t *testing.T) {
	dir := t.TempDir()
	src := Files(dir)
	if _, err := src.Read(context.Background(), "nope", Query{}); !errors.Is(err, ErrUnknownView) {
		t.Errorf("unknown view: %v", err)
	}
	if _, err := src.Read(context.Background(), Daily, Query{}); !errors.Is(err, ErrNotBuilt) {
		t.Errorf("missing file: %v", err)
	}
	for _, q := range []Query{{From: "2025-13-01"}, {Limit: -1}} {
		if _, err := src.Read(context.Background(), Daily, q); !errors.Is(err, ErrBadQuery) {
			t.Errorf("%+v: %v", q, err)
		}
	}
	if _, err := src.Read(context.Background(), KPIs, Query{From: "2025-01-01"}); !errors.Is(err, ErrBadQuery) {
		t.Errorf("from on a view without dates: %v", err)
	}
	v, _ := Lookup(Daily)
	csvText := strings.Join(v.ColumnNames(), ",") + "\n" +
		"2025-04-01,Tuesday,3,2,1,0.666667,10.50,12.00,1,-1.50,6.00,2\n" +
		"2025-04-02,Wednesday,0,0,0,,0.00,0.00,0,0.00,,0\n"
	os.WriteFile(filepath.Join(dir, v.File()), []byte(csvText), 0o644)
	infos, err := src.List(context.Background())
	if err != nil || len(infos) != len(Views()) {
		t.Fatalf("list: %v %v", infos, err)
	}
	for _, in := range infos {
		if in.Built != (in.Name == Daily) {
			t.Errorf("list: %s built %v", in.Name, in.Built)
		}
	}
	res, err := src.Read(context.Background(), Daily, Query{From: "2025-04-02"})
	if err != nil || len(res.Rows) != 1 {
		t.Fatalf("read: %v %v", res, err)
	}
	res, _ = src.Read(context.Background(), Daily, Query{})
	var b bytes.Buffer
	if err := res.WriteCSV(&b); err != nil || b.String() != csvText {
		t.Errorf("WriteCSV: %v\n%s", err, b.String())
	}
	b.Reset()
	if err := res.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		View    string
		Columns []struct{ Name, Type string }
		Rows    []map[string]any
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if doc.View != Daily || len(doc.Rows) != 2 || doc.Rows[0]["amount"] != 10.5 || doc.Rows[1]["approval_rate"] != nil ||
		doc.Rows[0]["date"] != "2025-04-01" || doc.Columns[6].Type != "money" {
		t.Errorf("JSON: %s", b.String())
	}
	if !strings.Contains(b.String(), `"approval_rate":0.666667`) {
		t.Errorf("JSON numbers are not the CSV's digits: %s", b.String())
	}
}
