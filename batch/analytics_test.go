package batch

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/batch/analytics"
	"github.com/txpipe/txpipe/internal/reftest"
	"github.com/txpipe/txpipe/serving/csvfile"
)

// patterns is a generated dataset with patterns the analytics must find:
// a region whose customers are declined far more often (TX), a merchant
// whose volume halves in week 3, a Saturday peak in transactions, a
// weekly cash-flow cycle of known amplitude, lost and recovered sales at
// one merchant, refunds linked to their sales, staging latencies of 1 to
// 100 seconds and five rejected rows.
type patterns struct {
	data, results string
	run           streamRun
	demographics  [][]any // customer_id, age, gender
	start         analytics.Day
	weeks         int
}

const (
	patternStart   = "2025-03-03" // a Monday
	patternWeeks   = 10
	halvingName    = "Halving Hardware"
	lostName       = "Lost Lamps"
	cycleAmplitude = 2000 // cents, of each approved sale's base amount
)

// cycle is the weekly shape of the sale amounts, by ISO weekday - 1.
func cycle(wd int) float64 { return math.Cos(2 * math.Pi * float64(wd) / 7) }

func writeCSVFile(tb testing.TB, path string, header []string, rows [][]string) {
	tb.Helper()
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write(header)
	w.WriteAll(rows)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		tb.Fatal(err)
	}
}

func newPatterns(tb testing.TB) *patterns {
	tb.Helper()
	p := &patterns{data: tb.TempDir(), results: tb.TempDir(), weeks: patternWeeks}
	p.start, _ = analytics.ParseDay(patternStart)
	rng := mrand.New(mrand.NewPCG(16, 2026))
	m := &txpipe.Master{}
	for i, t := range []struct {
		name   string
		lo, hi int64
	}{{"Basic", 580, 669}, {"Gold", 670, 739}, {"Platinum", 740, 799}, {"Diamond", 800, 850}, {"Black", 800, 850}} {
		m.CardTypes = append(m.CardTypes, txpipe.CardType{ID: int64(i + 1), Name: t.name, ScoreMin: t.lo, ScoreMax: t.hi,
			LimitMin: 100000, LimitMax: 10000000, AnnualFee: 0, RewardsRate: "0.01"})
	}
	const customers = 200
	var custRows [][]string
	state := make([]string, customers+1)
	for i := 1; i <= customers; i++ {
		city, st, zip := "New York", "NY", "10001"
		switch {
		case i > 180:
			city, st, zip = "Austin", "TX", "73301"
		case i > 150:
			city, st, zip = "Newark", "NJ", "07101"
		case i%2 == 0:
			city = "Buffalo"
		}
		state[i] = st
		c := txpipe.Customer{ID: int64(i), Name: fmt.Sprintf("Customer %d", i), Phone: "555-0100",
			Address: fmt.Sprintf("%d Main Street, %s, %s %s", i, city, st, zip), Email: fmt.Sprintf("c%d@example.com", i),
			CreditScore: 580 + int64(rng.IntN(271)), AnnualIncome: txpipe.Money(20000+rng.IntN(400000)) * 100}
		m.Customers = append(m.Customers, c)
		age, gender := strconv.Itoa(18+rng.IntN(70)), []string{"F", "M"}[i%2]
		if i%50 == 0 {
			age, gender = "", "" // unknown
		}
		p.demographics = append(p.demographics, []any{c.ID, nullIfEmpty(age), nullIfEmpty(gender)})
		custRows = append(custRows, append(csvfile.AppendCustomer(nil, c), age, gender))
		typ := int64(1)
		for _, t := range m.CardTypes {
			if t.ScoreMin <= c.CreditScore && c.CreditScore <= t.ScoreMax {
				typ = t.ID
				break
			}
		}
		m.Cards = append(m.Cards, txpipe.Card{ID: int64(i), CustomerID: c.ID, CardTypeID: typ, Number: fmt.Sprintf("4000-0000-0000-%04d", i),
			Expiration: "12/29", CreditLimit: 5000000, CurrentBalance: 10000, IssueDate: "2024-01-01"})
	}
	writeCSVFile(tb, filepath.Join(p.data, csvfile.CustomersFile), append(slices.Clone(csvfile.CustomerColumns), "age", "gender"), custRows)
	var rows [][]string
	for _, t := range m.CardTypes {
		rows = append(rows, csvfile.AppendCardType(nil, t))
	}
	writeCSVFile(tb, filepath.Join(p.data, csvfile.CardTypesFile), csvfile.CardTypeColumns, rows)
	rows = nil
	for _, c := range m.Cards {
		rows = append(rows, csvfile.AppendCard(nil, c))
	}
	writeCSVFile(tb, filepath.Join(p.data, csvfile.CardsFile), csvfile.CardColumns, rows)

	var results []txpipe.Result
	lastSale := map[int64]int64{}
	add := func(card int64, merchant string, ts time.Time, amount txpipe.Money, typ string, status txpipe.Status, reason txpipe.DeclineReason) {
		r := txpipe.Result{Transaction: txpipe.Transaction{ID: int64(len(results) + 1), CardID: card, Merchant: merchant, Timestamp: ts,
			Amount: amount, Location: fmt.Sprintf("1 Shop Road, %s, %s 10002", map[bool]string{true: "Albany", false: "Trenton"}[len(merchant)%2 == 0],
				map[bool]string{true: "NY", false: "NJ"}[len(merchant)%2 == 0]), Type: typ},
			Status: status, DeclineReason: reason}
		if typ == "refund" {
			if id, ok := lastSale[card]; ok {
				r.RelatedID = strconv.FormatInt(id, 10)
			}
		} else if status == txpipe.StatusPending {
			lastSale[card] = r.ID
		}
		results = append(results, r)
	}
	merchants := make([]string, 30)
	for i := range merchants {
		merchants[i] = fmt.Sprintf("Merchant %02d", i)
	}
	for d := range patternWeeks * 7 {
		day := p.start + analytics.Day(d)
		wd := day.Weekday() - 1
		n := 150
		if wd == 5 { // Saturday
			n = 300
		}
		halving := 6
		if d >= 14 { // week 3 on
			halving = 3
		}
		type ev struct {
			merchant string
		}
		var evs []ev
		for i := range n {
			evs = append(evs, ev{merchants[i%len(merchants)]})
		}
		for range halving {
			evs = append(evs, ev{halvingName})
		}
		for i, e := range evs {
			ts := day.Time().Add(time.Duration(6*3600+i*(16*3600)/len(evs)) * time.Second)
			card := int64(1 + rng.IntN(customers))
			status, reason := txpipe.StatusPending, txpipe.DeclineNone
			declineP := 5
			if state[card] == "TX" {
				declineP = 60
			}
			if rng.IntN(100) < declineP {
				status, reason = txpipe.StatusDeclined, txpipe.DeclineLocation
			}
			if rng.IntN(100) < 5 && status == txpipe.StatusPending {
				add(card, e.merchant, ts, -2000, "refund", status, reason)
				continue
			}
			base := 5000 + cycleAmplitude*cycle(wd)
			amount := txpipe.Money(math.Round(base)) + txpipe.Money(rng.IntN(1001)-500)
			add(card, e.merchant, ts, amount, []string{"purchase", "bill_payment", "purchase"}[i%3], status, reason)
		}
		if d == 10 {
			// Customer 1 at Lost Lamps: recovered after 10 minutes, then
			// lost twice (nothing after, and an approval after 45 minutes).
			t0 := day.Time().Add(22*time.Hour + 30*time.Minute)
			add(1, lostName, t0, 90000, "purchase", txpipe.StatusDeclined, txpipe.DeclineOverLimit)
			add(1, lostName, t0.Add(10*time.Minute), 50000, "purchase", txpipe.StatusPending, "")
			add(1, lostName, t0.Add(20*time.Minute), 90000, "purchase", txpipe.StatusDeclined, txpipe.DeclineOverLimit)
			add(2, lostName, t0.Add(21*time.Minute), 90000, "purchase", txpipe.StatusDeclined, txpipe.DeclineOverLimit)
			add(2, lostName, t0.Add(66*time.Minute), 50000, "purchase", txpipe.StatusPending, "")
		}
	}
	slices.SortStableFunc(results, func(a, b txpipe.Result) int { return a.Timestamp.Compare(b.Timestamp) })
	for i := range results {
		results[i].Seq = int64(i + 2)
	}
	reftest.WriteResults(tb, filepath.Join(p.results, csvfile.StreamFile), results)
	p.run = streamRun{master: m, results: results}

	// Five rejected rows; staging latencies of 1..100 seconds.
	var rej [][]string
	for i := range 5 {
		rej = append(rej, csvfile.AppendRejected(nil, txpipe.Rejected{Raw: txpipe.RawTransaction{TransactionID: "x" + strconv.Itoa(i)},
			Reason: txpipe.RejectAmount, Source: fmt.Sprintf("transactions.csv:%d", i+2)}))
	}
	writeCSVFile(tb, filepath.Join(p.results, csvfile.RejectedFile), csvfile.RejectedColumns, rej)
	var staging [][]string
	for _, s := range p.staging() {
		staging = append(staging, []string{s[0].(string), s[1].(string)})
	}
	writeCSVFile(tb, filepath.Join(p.results, StagingFile), []string{stagingOrigin, stagingRegistered}, staging)
	return p
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (p *patterns) staging() [][]any {
	var out [][]any
	for i := 1; i <= 100; i++ {
		o := time.Date(2025, 3, 3, 12, 0, 0, 250000000, time.UTC).Add(time.Duration(i) * time.Minute)
		out = append(out, []any{o.Format("2006-01-02 15:04:05.000000"), o.Add(time.Duration(i) * time.Second).Format("2006-01-02 15:04:05.000000")})
	}
	return out
}

func readView(t *testing.T, src analytics.Source, name string, q analytics.Query) *analytics.Result {
	t.Helper()
	res, err := src.Read(context.Background(), name, q)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return res
}

// col returns the named field of a row.
func col(res *analytics.Result, row []string, name string) string {
	i := res.View.Index(name)
	if i < 0 {
		panic("no column " + name)
	}
	return row[i]
}

func num(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return f
}

// checkPatterns checks that every view finds its pattern.
func checkPatterns(t *testing.T, p *patterns, src analytics.Source) {
	// Regions: TX customers are declined most.
	res := readView(t, src, analytics.Regions, analytics.Query{})
	rates := map[string]float64{}
	for _, r := range res.Rows {
		if col(res, r, "scope") == "customer" && col(res, r, "city") == "" {
			rates[col(res, r, "state")] = num(t, col(res, r, "approval_rate"))
		}
	}
	if len(rates) != 3 || rates["TX"] > 0.5 || rates["NY"] < 0.9 || rates["NJ"] < 0.9 {
		t.Errorf("regions: approval rates by customer state %v", rates)
	}

	// Merchant drops: the halving merchant, in week 3, by half, first.
	res = readView(t, src, analytics.MerchantDrops, analytics.Query{})
	week3 := (p.start + 14).String()
	if len(res.Rows) == 0 || col(res, res.Rows[0], "merchant") != halvingName || col(res, res.Rows[0], "week_start") != week3 ||
		col(res, res.Rows[0], "drop_rate") != "0.500000" || col(res, res.Rows[0], "previous_week_transactions") != "42" {
		t.Errorf("merchant drops: %q", res.Rows)
	}
	// from/to filter on week_start.
	if res := readView(t, src, analytics.MerchantDrops, analytics.Query{From: (p.start + 15).String()}); len(res.Rows) != 0 {
		t.Errorf("merchant drops after week 3: %q", res.Rows)
	}

	// Time patterns: Saturday has the most transactions per day.
	res = readView(t, src, analytics.TimePatterns, analytics.Query{})
	best, bestPerDay := "", 0.0
	for _, r := range res.Rows {
		if col(res, r, "dimension") == "weekday" {
			if v := num(t, col(res, r, "transactions_per_day")); v > bestPerDay {
				best, bestPerDay = col(res, r, "label"), v
			}
			if col(res, r, "days") != strconv.Itoa(p.weeks) {
				t.Errorf("time patterns: %q", r)
			}
		}
	}
	if best != "Saturday" {
		t.Errorf("time patterns: peak on %s", best)
	}

	// Daily: every day, with active cards; from/to and limit.
	res = readView(t, src, analytics.Daily, analytics.Query{})
	if len(res.Rows) != p.weeks*7 {
		t.Errorf("daily: %d rows", len(res.Rows))
	}
	res = readView(t, src, analytics.Daily, analytics.Query{From: (p.start + 5).String(), To: (p.start + 12).String(), Limit: 3})
	if len(res.Rows) != 3 || res.Rows[0][0] != (p.start+5).String() || col(res, res.Rows[0], "weekday") != "Saturday" ||
		num(t, col(res, res.Rows[0], "active_cards")) < 150 {
		t.Errorf("daily from/to/limit: %q", res.Rows)
	}

	// Lost sales at Lost Lamps: 3 declines, 1 recovered, 2 lost.
	res = readView(t, src, analytics.LostSales, analytics.Query{})
	found := false
	for _, r := range res.Rows {
		if col(res, r, "merchant") == lostName {
			found = true
			if got := strings.Join(r[2:], ","); got != "3,1,2,1800.00,0.666667" {
				t.Errorf("lost sales at %s: %s", lostName, got)
			}
		}
	}
	if !found {
		t.Errorf("lost sales: no %s", lostName)
	}

	// Refunds: linked to their sales' types.
	res = readView(t, src, analytics.RefundRates, analytics.Query{})
	linked := int64(0)
	for _, r := range res.Rows {
		if col(res, r, "dimension") == "transaction_type" {
			n, _ := strconv.ParseInt(col(res, r, "linked_refunds"), 10, 64)
			linked += n
			if col(res, r, "name") == "refund" {
				t.Errorf("refund rates: a row for refunds themselves: %q", r)
			}
		}
	}
	if linked < 100 {
		t.Errorf("refund rates: %d linked refunds: %q", linked, res.Rows[:4])
	}

	// Segments: the optional demographics.
	res = readView(t, src, analytics.Segments, analytics.Query{})
	dims := map[string]int64{}
	for _, r := range res.Rows {
		n, _ := strconv.ParseInt(col(res, r, "customers"), 10, 64)
		dims[col(res, r, "dimension")] += n
	}
	if dims["credit_score"] != 200 || dims["income"] != 200 || dims["age"] != 200 || dims["gender"] != 200 || dims["card_type"] != 200 {
		t.Errorf("segments: customers by dimension %v", dims)
	}

	// KPIs: rejected-row rate and latency percentiles.
	res = readView(t, src, analytics.KPIs, analytics.Query{})
	kpis := map[string][]string{}
	for _, r := range res.Rows {
		kpis[col(res, r, "metric")] = r
	}
	if r := kpis["rejected_rows"]; r == nil || col(res, r, "value") != "5.000000" {
		t.Errorf("kpis: %q", r)
	}
	if r := kpis["rejected_row_rate"]; r == nil || col(res, r, "numerator") != "5" {
		t.Errorf("kpis: %q", r)
	}
	for name, want := range map[string]float64{"latency_p50_seconds": 50, "latency_p99_seconds": 99, "latency_max_seconds": 100} {
		if r := kpis[name]; r == nil || math.Abs(num(t, col(res, r, "value"))-want) > want*0.002 {
			t.Errorf("kpis: %s %q, want %v (0.2 %%)", name, r, want)
		}
	}

	// Forecast: 14 days, intervals around the mean, the weekly cycle, and
	// a backtest better than seasonal naive.
	res = readView(t, src, analytics.Forecast, analytics.Query{From: (p.start + analytics.Day(p.weeks*7)).String()})
	if len(res.Rows) != 14 {
		t.Fatalf("forecast: %d rows after the data", len(res.Rows))
	}
	var means []float64
	for _, r := range res.Rows {
		var v []float64
		for _, c := range []string{"lo95", "lo80", "forecast", "hi80", "hi95"} {
			v = append(v, num(t, col(res, r, c)))
		}
		if !slices.IsSorted(v) || v[0] == v[4] {
			t.Errorf("forecast: intervals %v", v)
		}
		means = append(means, v[2])
	}
	r := res.Rows[0]
	mape, naive := num(t, col(res, r, "backtest_mape")), num(t, col(res, r, "seasonal_naive_mape"))
	if mape >= naive {
		t.Errorf("forecast: backtest MAPE %v does not beat seasonal naive %v", mape, naive)
	}
	if c := num(t, col(res, r, "backtest_coverage95")); c < 0.8 {
		t.Errorf("forecast: 95 %% coverage %v", c)
	}
	t.Logf("forecast: %s, MAPE %v (seasonal naive %v), coverage 80 %% %s, 95 %% %s", col(res, r, "model"), mape, naive,
		col(res, r, "backtest_coverage80"), col(res, r, "backtest_coverage95"))
	// The forecast's weekly swing against the injected one: the daily flow
	// is about 140 sales (300 on Saturdays) of 50.00 + 20.00 cos(...).
	weekdayMean := func(wd int) float64 {
		s := 0.0
		for h, m := range means {
			if (p.start + analytics.Day(p.weeks*7+h)).Weekday() == wd {
				s += m
			}
		}
		return s / 2
	}
	// Monday: cos(0) = 1; Thursday: cos(6π/7) ≈ -0.90. Both days have the
	// same volume (153 transactions, 89.5 % approved, 95 % of them sales),
	// so the difference is the cycle's.
	swing := weekdayMean(1) - weekdayMean(4)
	want := 153 * 0.895 * 0.95 * cycleAmplitude / 100 * (1 - math.Cos(6*math.Pi/7))
	if math.Abs(swing-want) > 0.2*want {
		t.Errorf("forecast: Monday - Thursday %.2f, injected cycle %.2f", swing, want)
	}
}

// TestAnalyticsPatterns runs the batch with analytics in CSV mode and in
// MySQL mode over the pattern dataset: every view finds its pattern, the
// two modes write byte-identical files, the tables hold the same rows
// (read through the serving API), and the Parquet files read back equal
// to the CSV files.
func TestAnalyticsPatterns(t *testing.T) {
	mem := checkedAlloc(t)
	p := newPatterns(t)
	opts := Options{DataDir: p.data, ResultsDir: p.results, Parquet: true, Analytics: true, Alloc: mem, BatchRows: 1000, Log: quiet, Now: fixedClock()}
	if _, err := Run(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	checkPatterns(t, p, analytics.Files(p.results))
	checkParquet(t, mem, p.results)

	db, cfg := newDBWithConfig(t)
	loadMySQL(t, db, p.run)
	insertAll(t, db, DemographicsTable, []string{"customer_id", "age", "gender"}, p.demographics)
	var rej [][]any
	for i := range 5 {
		rej = append(rej, []any{fmt.Sprintf("transactions.csv:%d", i+2), "x" + strconv.Itoa(i), "bad_amount", "", "", "", "", "", "", "", "", i, "transactions.dlq", 0, i})
	}
	insertAll(t, db, "rejected_transactions", []string{"source", "transaction_id", "reason", "card_id", "merchant_name", "timestamp",
		"amount", "location", "transaction_type", "related_transaction_id", "detail", "seq", "kafka_topic", "kafka_partition", "kafka_offset"}, rej)
	var staged [][]any
	for i, r := range p.staging() { // into the sink's table (migration 00012)
		staged = append(staged, append([]any{"PAYMENT_EVENT", 1, "{}", "transactions.validated", 0, i}, r...))
	}
	insertAll(t, db, StagingTable, []string{"event_type", "card_id", "event_json_data", "kafka_topic", "kafka_partition", "kafka_offset",
		stagingOrigin, stagingRegistered}, staged)

	dir := t.TempDir()
	// A pool of two connections has none to spare for the analytics
	// tables: they are written after the loaders, with the same result.
	small, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	small.SetMaxOpenConns(2)
	for i, insert := range []bool{false, true, false} {
		o := opts
		o.DB, o.DataDir, o.ResultsDir, o.forceInsert = db, "", dir, insert
		if i == 2 {
			o.DB = small
		}
		if _, err := Run(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		for _, v := range analytics.Views() {
			got, _ := os.ReadFile(filepath.Join(dir, v.File()))
			want, _ := os.ReadFile(filepath.Join(p.results, v.File()))
			if !bytes.Equal(got, want) || len(got) == 0 {
				t.Errorf("insert=%v: %s differs between MySQL mode and CSV mode", insert, v.File())
			}
		}
		// The tables, read through the API, are the files.
		for _, v := range analytics.Views() {
			for _, q := range []analytics.Query{{}, {Limit: 2}} {
				a, err := analytics.MySQL(db).Read(context.Background(), v.Name, q)
				if err != nil {
					t.Fatal(err)
				}
				b := readView(t, analytics.Files(p.results), v.Name, q)
				if fmt.Sprint(a.Rows) != fmt.Sprint(b.Rows) {
					t.Errorf("%s %+v: table and file differ:\n%q\n%q", v.Name, q, a.Rows[:min(3, len(a.Rows))], b.Rows[:min(3, len(b.Rows))])
				}
			}
		}
	}
	checkPatterns(t, p, analytics.MySQL(db))
}

// checkParquet reads every analytics Parquet file back and compares it
// with its CSV file.
func checkParquet(t *testing.T, mem *memory.CheckedAllocator, dir string) {
	t.Helper()
	for _, v := range analytics.Views() {
		want := readCSV(t, filepath.Join(dir, v.File()))
		got := readParquet(t, mem, filepath.Join(dir, v.ParquetFile()))
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: parquet %q\ncsv %q", v.ParquetFile(), got[:min(2, len(got))], want[:min(2, len(want))])
		}
	}
}

// TestAnalyticsFailureKeepsViews fails MySQL-mode runs with analytics
// before the commit and while reading: the previous analytics files and
// tables stay.
func TestAnalyticsFailureKeepsViews(t *testing.T) {
	mem := checkedAlloc(t)
	p := newPatterns(t)
	db := newDB(t)
	loadMySQL(t, db, p.run)
	dir := t.TempDir()
	opts := Options{DB: db, ResultsDir: dir, Parquet: true, Analytics: true, Alloc: mem, BatchRows: 500, Log: quiet}
	if _, err := Run(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	tables := strings.Join(analyticsTables(), ", ")
	sums := fmt.Sprint(queryStrings(t, db, "CHECKSUM TABLE "+tables))
	files := snapshotFiles(t, dir)
	if _, err := db.Exec("DELETE FROM stream_transactions WHERE transaction_id % 3 = 0"); err != nil {
		t.Fatal(err)
	}
	for _, point := range []string{"rows", "commit"} {
		o := opts
		o.hook = func(p string, rows int64) error {
			if p == point && rows >= 1000 {
				return errors.New("injected")
			}
			return nil
		}
		if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "injected") {
			t.Fatalf("%s: error %v", point, err)
		}
		if got := fmt.Sprint(queryStrings(t, db, "CHECKSUM TABLE "+tables)); got != sums {
			t.Errorf("%s: analytics tables changed", point)
		}
		for name, b := range snapshotFiles(t, dir) {
			if !bytes.Equal(b, files[name]) {
				t.Errorf("%s: %s changed", point, name)
			}
		}
	}
	// Without analytics, the analytics views of the last run stay.
	o := opts
	o.Analytics = false
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(queryStrings(t, db, "CHECKSUM TABLE "+tables)); got != sums {
		t.Errorf("a run without analytics changed the analytics tables")
	}
}

func TestLoadDemographics(t *testing.T) {
	p := newPatterns(t)
	db := newDB(t)
	ctx := context.Background()
	n, err := LoadDemographics(ctx, db, p.data)
	if err != nil || n != 200 {
		t.Fatalf("loaded %d: %v", n, err)
	}
	got := queryStrings(t, db, "SELECT customer_id, IFNULL(age, ''), IFNULL(gender, '') FROM "+DemographicsTable+" ORDER BY customer_id")
	if len(got) != 200 || got[49][1] != "" || got[49][2] != "" || got[0][2] != "M" {
		t.Errorf("rows %q ... %q", got[0], got[49])
	}
	// A dataset without the columns empties the table; a bad age fails
	// with its line.
	plain := t.TempDir()
	for _, f := range []string{csvfile.CardTypesFile, csvfile.CardsFile} {
		b, _ := os.ReadFile(filepath.Join(p.data, f))
		os.WriteFile(filepath.Join(plain, f), b, 0o644)
	}
	var rows [][]string
	for _, c := range p.run.master.Customers {
		rows = append(rows, csvfile.AppendCustomer(nil, c))
	}
	writeCSVFile(t, filepath.Join(plain, csvfile.CustomersFile), csvfile.CustomerColumns, rows)
	if n, err := LoadDemographics(ctx, db, plain); err != nil || n != 0 {
		t.Fatalf("loaded %d: %v", n, err)
	}
	if got := queryStrings(t, db, "SELECT COUNT(*) FROM "+DemographicsTable); got[0][0] != "0" {
		t.Errorf("%s rows left", got[0][0])
	}
	b, _ := os.ReadFile(filepath.Join(p.data, csvfile.CustomersFile))
	lines := strings.Split(string(b), "\n")
	f := strings.Split(lines[3], ",")
	f[len(f)-2] = "old"
	lines[3] = strings.Join(f, ",")
	os.WriteFile(filepath.Join(plain, csvfile.CustomersFile), []byte(strings.Join(lines, "\n")), 0o644)
	if _, err := LoadDemographics(ctx, db, plain); err == nil || !strings.Contains(err.Error(), "customers.csv:4") || !strings.Contains(err.Error(), `"old"`) {
		t.Errorf("error %v", err)
	}
}
