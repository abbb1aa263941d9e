package dataset

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/txpipe/txpipe"
)

var update = flag.Bool("update", false, "rewrite the checked-in default dataset")

func generate(t testing.TB, o Options) (string, Stats) {
	t.Helper()
	dir := t.TempDir()
	st, err := Generate(context.Background(), dir, o)
	if err != nil {
		t.Fatal(err)
	}
	return dir, st
}

func readCSV(t testing.TB, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rows
}

// loaded is a generated dataset read back, as a consumer would parse it.
type loaded struct {
	customers map[int64]txpipe.Customer
	types     map[int64]txpipe.CardType
	cards     []txpipe.Card
	cardByID  map[int64]txpipe.Card
	txRows    [][]string // without the header
}

func load(t testing.TB, dir string) loaded {
	t.Helper()
	var l loaded
	money := func(s string) txpipe.Money {
		m, err := txpipe.ParseMoney(s)
		if err != nil {
			t.Fatalf("money %q: %v", s, err)
		}
		return m
	}
	id := func(s string) int64 {
		n, ok := txpipe.ParseID(s)
		if !ok {
			t.Fatalf("id %q", s)
		}
		return n
	}
	l.customers = map[int64]txpipe.Customer{}
	for _, r := range readCSV(t, filepath.Join(dir, CustomersFile))[1:] {
		c := txpipe.Customer{ID: id(r[0]), Name: r[1], Phone: r[2], Address: r[3], Email: r[4], CreditScore: id(r[5]), AnnualIncome: money(r[6])}
		l.customers[c.ID] = c
	}
	l.types = map[int64]txpipe.CardType{}
	for _, r := range readCSV(t, filepath.Join(dir, CardTypesFile))[1:] {
		ct := txpipe.CardType{ID: id(r[0]), Name: r[1], ScoreMin: id(r[2]), ScoreMax: id(r[3]), LimitMin: money(r[4]), LimitMax: money(r[5]), AnnualFee: money(r[6]), RewardsRate: r[7]}
		l.types[ct.ID] = ct
	}
	l.cardByID = map[int64]txpipe.Card{}
	for _, r := range readCSV(t, filepath.Join(dir, CardsFile))[1:] {
		c := txpipe.Card{ID: id(r[0]), CustomerID: id(r[1]), CardTypeID: id(r[2]), Number: r[3], Expiration: r[4], CreditLimit: money(r[5]), CurrentBalance: money(r[6]), IssueDate: r[7]}
		l.cards = append(l.cards, c)
		l.cardByID[c.ID] = c
	}
	l.txRows = readCSV(t, filepath.Join(dir, TransactionsFile))[1:]
	return l
}

// judge runs the stream rules over the good rows and returns how many were
// declined, by reason.
func (l loaded) judge(t testing.TB) (total int, declined map[txpipe.DeclineReason]int) {
	t.Helper()
	declined = map[txpipe.DeclineReason]int{}
	pending := map[int64]txpipe.Money{}
	for _, c := range l.cards {
		pending[c.ID] = c.CurrentBalance
	}
	for _, r := range l.txRows {
		raw := txpipe.RawTransaction{TransactionID: r[0], CardID: r[1], Merchant: r[2], Timestamp: r[3], Amount: r[4], Location: r[5], Type: r[6], RelatedID: r[7]}
		tx, reason, detail := txpipe.ParseTransaction(raw)
		if reason != "" {
			t.Fatalf("row %v: %s: %s", r, reason, detail)
		}
		c := l.cardByID[tx.CardID]
		st, why, p := txpipe.Decide(tx.Amount, tx.Location, c.CreditLimit, l.customers[c.CustomerID].Address, pending[c.ID])
		pending[c.ID] = p
		total++
		if st == txpipe.StatusDeclined {
			declined[why]++
		}
	}
	return total, declined
}

func TestDeterministic(t *testing.T) {
	o := Options{Customers: 40, Transactions: 2000, Seed: 7, BadRows: 10}
	a, _ := generate(t, o)
	b, _ := generate(t, o)
	o.Seed = 8
	c, _ := generate(t, o)
	for _, name := range Files {
		x, _ := os.ReadFile(filepath.Join(a, name))
		y, _ := os.ReadFile(filepath.Join(b, name))
		z, _ := os.ReadFile(filepath.Join(c, name))
		if len(x) == 0 || !bytes.Equal(x, y) {
			t.Errorf("%s: two runs with the same options differ", name)
		}
		if name != CardTypesFile && bytes.Equal(x, z) {
			t.Errorf("%s: seeds 7 and 8 give the same bytes", name)
		}
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(a)
	if len(entries) != len(Files) {
		t.Errorf("dir has %d entries, want %d", len(entries), len(Files))
	}
}

func TestFormat(t *testing.T) {
	dir, st := generate(t, Options{Customers: 200, Transactions: 5000, Seed: 1})
	ref := "../../shared/reference/dataset_22"
	for _, name := range Files {
		got := readCSV(t, filepath.Join(dir, name))
		if p := filepath.Join(ref, name); fileExists(p) {
			want := readCSV(t, p)
			if !slices.Equal(got[0], want[0]) {
				t.Errorf("%s header %v, want %v", name, got[0], want[0])
			}
			if name == CardTypesFile && !slices.EqualFunc(got, want, slices.Equal) {
				t.Errorf("%s differs from the reference", name)
			}
		}
		raw, _ := os.ReadFile(filepath.Join(dir, name))
		if bytes.Contains(raw, []byte("\r")) {
			t.Errorf("%s has CR line endings", name)
		}
	}
	l := load(t, dir)
	if st.Customers != 200 || st.Cards != 320 || st.Transactions != 5000 || len(l.cards) != 320 || len(l.txRows) != 5000 {
		t.Errorf("stats %+v, %d cards, %d transactions", st, len(l.cards), len(l.txRows))
	}
	addr := regexp.MustCompile(`^\d+ [A-Za-z]+ [A-Za-z]+, [A-Za-z .]+, [A-Z]{2} \d{5}$`)
	ny := 0
	for _, c := range l.customers {
		if !addr.MatchString(c.Address) {
			t.Errorf("customer %d address %q", c.ID, c.Address)
		}
		if strings.Contains(c.Address, ", NY 1") {
			ny++
		}
		if c.CreditScore < 580 || c.CreditScore > 850 || c.AnnualIncome <= 0 || c.AnnualIncome%10000 != 0 {
			t.Errorf("customer %+v", c)
		}
	}
	if ny < 170 {
		t.Errorf("%d of 200 customers in NY, want most", ny)
	}
	start := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
	for _, r := range l.txRows {
		if !addr.MatchString(r[5]) {
			t.Errorf("location %q", r[5])
		}
		if r[7] != "" {
			t.Errorf("related_transaction_id %q", r[7])
		}
		ts, ok := txpipe.ParseTimestamp(r[3])
		if !ok || ts.Before(start) || !ts.Before(start.AddDate(0, 0, 4)) {
			t.Errorf("timestamp %q outside the 4 days", r[3])
		}
	}
	for _, c := range l.cards {
		exp, err := time.Parse("01/06", c.Expiration)
		if err != nil || !exp.After(start) {
			t.Errorf("card %d expiration %q not in the future", c.ID, c.Expiration)
		}
		issue, err := time.Parse(time.DateOnly, c.IssueDate)
		if err != nil || !issue.Before(start) {
			t.Errorf("card %d issue date %q not in the past", c.ID, c.IssueDate)
		}
		if c.CurrentBalance < 0 || c.CurrentBalance*10 > c.CreditLimit {
			t.Errorf("card %d balance %v of limit %v", c.ID, c.CurrentBalance, c.CreditLimit)
		}
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func luhnValid(digits string) bool {
	sum := 0
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if (len(digits)-i)%2 == 0 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

func TestCards(t *testing.T) {
	dir, _ := generate(t, Options{Customers: 500, Transactions: 10, Seed: 3})
	l := load(t, dir)
	format := regexp.MustCompile(`^\d{4}-\d{4}-\d{4}-\d{4}$`)
	seen := map[string]bool{}
	perType := map[int64]int{}
	for _, c := range l.cards {
		if !format.MatchString(c.Number) || !luhnValid(strings.ReplaceAll(c.Number, "-", "")) {
			t.Errorf("card %d number %q", c.ID, c.Number)
		}
		if seen[c.Number] {
			t.Errorf("card number %q twice", c.Number)
		}
		seen[c.Number] = true
		cust, ok := l.customers[c.CustomerID]
		ct, ok2 := l.types[c.CardTypeID]
		if !ok || !ok2 {
			t.Fatalf("card %+v: unknown customer or type", c)
		}
		perType[ct.ID]++
		if cust.CreditScore < ct.ScoreMin || cust.CreditScore > ct.ScoreMax {
			t.Errorf("card %d: %s for score %d", c.ID, ct.Name, cust.CreditScore)
		}
		if c.CreditLimit < ct.LimitMin || c.CreditLimit > ct.LimitMax || c.CreditLimit%10000 != 0 {
			t.Errorf("card %d: %s limit %v", c.ID, ct.Name, c.CreditLimit)
		}
	}
	if len(perType) != 5 {
		t.Errorf("cards per type %v, want all five types", perType)
	}
	// Cards are listed by customer, every customer has one.
	owners := map[int64]bool{}
	for i, c := range l.cards {
		owners[c.CustomerID] = true
		if i > 0 && c.CustomerID < l.cards[i-1].CustomerID {
			t.Errorf("card %d out of customer order", c.ID)
		}
	}
	if len(owners) != len(l.customers) {
		t.Errorf("%d of %d customers have cards", len(owners), len(l.customers))
	}
}

func TestTransactions(t *testing.T) {
	for _, o := range []Options{
		DefaultOptions(),
		{Customers: 1000, Transactions: 200_000, Seed: 5},
		{Customers: 50, Transactions: 200_000, Seed: 6, Days: 30},
	} {
		dir, _ := generate(t, o)
		l := load(t, dir)
		var prev time.Time
		types := map[string]int{}
		large, far := 0, 0
		for i, r := range l.txRows {
			if r[0] != strconv.Itoa(i+1) {
				t.Fatalf("row %d has id %s", i+1, r[0])
			}
			ts, _ := txpipe.ParseTimestamp(r[3])
			if ts.Before(prev) {
				t.Fatalf("row %d: timestamp %s before %s", i+1, r[3], prev)
			}
			prev = ts
			amount, err := txpipe.ParseMoney(r[4])
			if err != nil || strings.Count(r[4], ".") != 1 || len(r[4])-strings.IndexByte(r[4], '.') != 3 {
				t.Fatalf("row %d amount %q", i+1, r[4])
			}
			types[r[6]]++
			if (r[6] == "refund") != (amount < 0) {
				t.Errorf("row %d: %s of %s", i+1, r[6], r[4])
			}
			id, _ := txpipe.ParseID(r[1])
			c := l.cardByID[id]
			if 2*max(amount, -amount) >= c.CreditLimit {
				large++
			}
			if !txpipe.NearHome(r[5], l.customers[c.CustomerID].Address) {
				far++
			}
		}
		if len(types) != 6 {
			t.Errorf("transaction types %v", types)
		}
		total, declined := l.judge(t)
		sum := 0
		for _, n := range declined {
			sum += n
		}
		t.Logf("%+v: %d transactions, %d large, %d far, declined %d (%.1f%%) %v",
			o, total, large, far, sum, 100*float64(sum)/float64(total), declined)
		if large == 0 {
			t.Errorf("no amount is at least half its card's limit")
		}
		if pct := 100 * sum / total; pct < 7 || pct > 16 {
			t.Errorf("%d%% declined, want about 8-15%%", pct)
		}
	}
}

func TestBadRows(t *testing.T) {
	for _, o := range []Options{
		{Customers: 10, Transactions: 1000, Seed: 2, BadRows: 50},
		{Customers: 3, Transactions: 2, Seed: 2, BadRows: 9},
		{Customers: 3, Transactions: 0, Seed: 2, BadRows: 8},
	} {
		dir, st := generate(t, o)
		clean := o
		clean.BadRows = 0
		cleanDir, _ := generate(t, clean)
		l := load(t, dir)
		cards := map[string]bool{}
		for _, c := range l.cards {
			cards[strconv.FormatInt(c.ID, 10)] = true
		}
		// Judge every row as a consumer would, in the documented order.
		got := map[string]int{}
		seen := map[int64]bool{}
		var good [][]string
		for _, r := range l.txRows {
			if len(r) != len(txpipe.TransactionColumns) {
				got[string(txpipe.RejectFieldCount)]++
				continue
			}
			raw := txpipe.RawTransaction{TransactionID: r[0], CardID: r[1], Merchant: r[2], Timestamp: r[3], Amount: r[4], Location: r[5], Type: r[6], RelatedID: r[7]}
			tx, reason, _ := txpipe.ParseTransaction(raw)
			switch {
			case reason != "":
				got[string(reason)]++
			case !cards[r[1]]:
				got[string(txpipe.RejectUnknownCard)]++
			case seen[tx.ID]:
				got[string(txpipe.RejectDuplicate)]++
			default:
				seen[tx.ID] = true
				good = append(good, r)
			}
		}
		total := 0
		for _, n := range st.Bad {
			total += n
		}
		if total != o.BadRows || len(l.txRows) != o.Transactions+o.BadRows {
			t.Errorf("%+v: stats %v, %d rows", o, st.Bad, len(l.txRows))
		}
		if len(got) == 0 && o.BadRows > 0 || !mapsEqual(got, st.Bad) {
			t.Errorf("%+v: rejected %v, stats say %v", o, got, st.Bad)
		}
		if o.BadRows >= 7 && o.Transactions >= 7 && len(st.Bad) != 7 {
			t.Errorf("%+v: kinds %v, want all 7", o, st.Bad)
		}
		// The good rows are exactly the clean dataset's rows.
		want := readCSV(t, filepath.Join(cleanDir, TransactionsFile))[1:]
		if !slices.EqualFunc(good, want, slices.Equal) {
			t.Errorf("%+v: good rows differ from the clean dataset", o)
		}
		for _, name := range []string{CustomersFile, CardsFile} {
			x, _ := os.ReadFile(filepath.Join(dir, name))
			y, _ := os.ReadFile(filepath.Join(cleanDir, name))
			if !bytes.Equal(x, y) {
				t.Errorf("%s differs with bad rows", name)
			}
		}
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestDefaultDataset checks that the checked-in default dataset is what
// Generate makes with DefaultOptions. Run with -update to rewrite it.
func TestDefaultDataset(t *testing.T) {
	if *update {
		if _, err := Generate(context.Background(), ".", DefaultOptions()); err != nil {
			t.Fatal(err)
		}
	}
	dir, st := generate(t, DefaultOptions())
	if st.Customers != 30 || st.Cards != 50 || st.Transactions != 400 || len(st.Bad) != 0 {
		t.Errorf("stats %+v", st)
	}
	for _, name := range Files {
		got, _ := os.ReadFile(filepath.Join(dir, name))
		embedded, err := fs.ReadFile(Default, name)
		if err != nil {
			t.Fatal(err)
		}
		onDisk, _ := os.ReadFile(name)
		if !bytes.Equal(got, embedded) || !bytes.Equal(got, onDisk) {
			t.Errorf("%s: the checked-in default dataset is not what Generate makes with DefaultOptions (go test ./dataset -run TestDefaultDataset -update)", name)
		}
	}
	readme, _ := os.ReadFile("README.md")
	if !bytes.Contains(readme, []byte("txpipe gen --customers 30 --cards 50 --transactions 400 --seed 22 --out dataset")) {
		t.Error("README.md does not give the command that made the dataset")
	}
}

func TestOptionsAndErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := Generate(ctx, t.TempDir(), Options{Transactions: 5}); err == nil {
		t.Error("no customers: no error")
	}
	if _, err := Generate(ctx, t.TempDir(), Options{Customers: 1, Transactions: -1}); err == nil {
		t.Error("negative transactions: no error")
	}
	// Fewer cards than customers, a local start time.
	loc := time.FixedZone("X", 3*3600)
	dir, st := generate(t, Options{Customers: 20, Cards: 5, Transactions: 100, Seed: 1, Start: time.Date(2026, 1, 2, 3, 4, 5, 0, loc), Days: 1})
	l := load(t, dir)
	if st.Cards != 5 || len(l.cards) != 5 {
		t.Errorf("%d cards, want 5", len(l.cards))
	}
	if first := l.txRows[0][3]; first < "2026-01-02 03:04:05" || l.txRows[99][3] >= "2026-01-03 03:04:05" {
		t.Errorf("timestamps %s..%s", first, l.txRows[99][3])
	}
	// A file in the way names the file.
	bad := t.TempDir()
	if err := os.Mkdir(filepath.Join(bad, CardsFile), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Generate(ctx, bad, Options{Customers: 2, Transactions: 3})
	if err == nil || !strings.Contains(err.Error(), CardsFile) {
		t.Errorf("rename over a directory: %v", err)
	}
	// A cancelled context stops it and leaves nothing behind.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	empty := t.TempDir()
	if _, err := Generate(cctx, empty, Options{Customers: 2, Transactions: 100_000}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("cancelled run left %d files", len(entries))
	}
}

// TestGenerateMillion generates TXPIPE_BIG_N (default 1,000,000)
// transactions when TXPIPE_BIG=1, to measure time and memory.
func TestGenerateMillion(t *testing.T) {
	if os.Getenv("TXPIPE_BIG") != "1" {
		t.Skip("set TXPIPE_BIG=1 (and TXPIPE_BIG_N) to run")
	}
	n := 1_000_000
	if s := os.Getenv("TXPIPE_BIG_N"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	st, err := Generate(context.Background(), t.TempDir(), Options{Customers: 10_000, Transactions: n, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v in %v", st, time.Since(start))
}

func BenchmarkGenerate(b *testing.B) {
	dir := b.TempDir()
	for b.Loop() {
		if _, err := Generate(context.Background(), dir, Options{Customers: 1000, Transactions: 100_000, Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
}
