// Package dataset generates deterministic, realistic input datasets
// (customers, credit card types, cards and transactions) in the CSV format
// of the reference dataset, and carries the repository's default dataset.
package dataset

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/txpipe/txpipe"
)

// The files Generate writes, in the order they are written.
const (
	CustomersFile    = "customers.csv"
	CardTypesFile    = "credit_card_types.csv"
	CardsFile        = "cards.csv"
	TransactionsFile = "transactions.csv"
)

// Files lists the dataset's files.
var Files = []string{CustomersFile, CardTypesFile, CardsFile, TransactionsFile}

// Options says what to generate.
type Options struct {
	Customers    int
	Transactions int
	Cards        int       // 0 = about 1.6 per customer
	Seed         int64     // same options, same bytes
	Start        time.Time // first day of the transactions; zero = 2025-04-01 00:00:00 UTC
	Days         int       // days the transactions span; 0 = 4
	BadRows      int       // malformed transaction rows to inject; 0 = none
	// Demographics adds the optional age and gender columns to
	// customers.csv; the other columns and files stay byte for byte
	// those without it.
	Demographics bool
}

// DefaultOptions are the options of the repository's default dataset
// (`txpipe gen --customers 30 --cards 50 --transactions 400 --seed 22 --out dataset`).
func DefaultOptions() Options {
	return Options{Customers: 30, Cards: 50, Transactions: 400, Seed: 22}
}

// Stats says what Generate wrote. Transactions counts the good rows (ids
// 1..Transactions); Bad counts the injected malformed rows by the reject
// reason (txpipe.RejectReason) a reader must give them.
type Stats struct {
	Customers, Cards, Transactions int
	Bad                            map[string]int
}

// defaultStart is the first day of the transactions when Options.Start is zero.
var defaultStart = time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)

func (o Options) normalize() (Options, error) {
	switch {
	case o.Customers < 1:
		return o, fmt.Errorf("dataset: customers must be at least 1, got %d", o.Customers)
	case o.Transactions < 0:
		return o, fmt.Errorf("dataset: transactions must not be negative, got %d", o.Transactions)
	case o.Cards < 0:
		return o, fmt.Errorf("dataset: cards must not be negative, got %d", o.Cards)
	case o.Days < 0:
		return o, fmt.Errorf("dataset: days must not be negative, got %d", o.Days)
	case o.BadRows < 0:
		return o, fmt.Errorf("dataset: bad rows must not be negative, got %d", o.BadRows)
	}
	if o.Cards == 0 {
		o.Cards = max(1, (o.Customers*16+5)/10)
	}
	if o.Days == 0 {
		o.Days = 4
	}
	if o.Start.IsZero() {
		o.Start = defaultStart
	}
	// Keep the wall clock as given but count in UTC, so that no daylight
	// saving change can make timestamps go backwards.
	y, m, d := o.Start.Date()
	h, mi, s := o.Start.Clock()
	o.Start = time.Date(y, m, d, h, mi, s, 0, time.UTC)
	return o, nil
}

// Generate writes dir/customers.csv, dir/credit_card_types.csv, dir/cards.csv
// and dir/transactions.csv. The same options give byte-identical files.
// Transactions are streamed in timestamp order, so memory grows with the
// customers and cards only. Each file is written to a temporary file in dir
// and renamed into place once all four are complete.
func Generate(ctx context.Context, dir string, o Options) (Stats, error) {
	o, err := o.normalize()
	if err != nil {
		return Stats{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Stats{}, fmt.Errorf("dataset: %w", err)
	}
	g := &generator{o: o, stats: Stats{Bad: map[string]int{}}}
	// One independent stream per purpose, so that, say, more transactions
	// or bad rows do not change the customers or the good rows.
	g.custRng.seed(o.Seed, 1)
	g.cardRng.seed(o.Seed, 2)
	g.txRng.seed(o.Seed, 3)
	g.timeRng.seed(o.Seed, 4)
	g.badRng.seed(o.Seed, 5)
	g.demoRng.seed(o.Seed, 6)

	steps := []struct {
		name string
		fn   func(*csv.Writer) error
	}{
		{CustomersFile, g.writeCustomers},
		{CardTypesFile, g.writeCardTypes},
		{CardsFile, g.writeCards},
		{TransactionsFile, g.writeTransactions},
	}
	var temps []*tempFile
	defer func() {
		for _, t := range temps {
			t.discard()
		}
	}()
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return Stats{}, fmt.Errorf("dataset: %s: %w", s.name, err)
		}
		g.ctx = ctx
		t, err := writeTemp(dir, s.name, s.fn)
		if t != nil {
			temps = append(temps, t)
		}
		if err != nil {
			return Stats{}, err
		}
	}
	for len(temps) > 0 {
		if err := temps[0].commit(); err != nil {
			return Stats{}, err
		}
		temps = temps[1:]
	}
	return g.stats, nil
}

// tempFile is a complete file waiting to be renamed into place.
type tempFile struct{ tmp, path string }

func (t *tempFile) commit() error {
	if err := os.Rename(t.tmp, t.path); err != nil {
		return fmt.Errorf("dataset: %s: %w", t.path, err)
	}
	return nil
}

func (t *tempFile) discard() { os.Remove(t.tmp) }

// writeTemp writes a CSV file to a temporary file next to dir/name with fn.
// It returns the temporary file (to discard) even when it fails.
func writeTemp(dir, name string, fn func(*csv.Writer) error) (*tempFile, error) {
	path := filepath.Join(dir, name)
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("dataset: %s: %w", path, err)
	}
	t := &tempFile{tmp: f.Name(), path: path}
	fail := func(err error) (*tempFile, error) {
		f.Close()
		return t, fmt.Errorf("dataset: %s: %w", path, err)
	}
	bw := bufio.NewWriterSize(f, 256<<10)
	w := csv.NewWriter(bw)
	if err := fn(w); err != nil {
		return fail(err)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fail(err)
	}
	if err := bw.Flush(); err != nil {
		return fail(err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return t, fmt.Errorf("dataset: %s: %w", path, err)
	}
	return t, nil
}

// rng draws integers from a PCG. Only integer arithmetic is used, so the
// output is the same on every platform and Go release.
type rng struct{ rand.PCG }

// seed seeds the PCG for one stream of a seed. PCG takes its state as
// given, so the seed is scrambled first (SplitMix64) lest small seeds give
// poorly mixed first draws.
func (r *rng) seed(seed int64, stream uint64) {
	x := uint64(seed) ^ stream*0x9e3779b97f4a7c15
	mix := func() uint64 {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		return z ^ z>>31
	}
	hi := mix()
	r.Seed(hi, mix())
}

// intn returns a uniform integer in [0, n), n > 0 (Lemire's method).
func (r *rng) intn(n int) int {
	un := uint64(n)
	hi, lo := bits.Mul64(r.Uint64(), un)
	if lo < un {
		thresh := -un % un
		for lo < thresh {
			hi, lo = bits.Mul64(r.Uint64(), un)
		}
	}
	return int(hi)
}

// between returns a uniform integer in [lo, hi].
func (r *rng) between(lo, hi int) int { return lo + r.intn(hi-lo+1) }

// chance reports true with probability perMille/1000.
func (r *rng) chance(perMille int) bool { return r.intn(1000) < perMille }

func (r *rng) pick(list []string) string { return list[r.intn(len(list))] }

// cardTypes are the five card types of the reference dataset. Limits and
// fees are whole units.
var cardTypes = []struct {
	id                 int
	name               string
	scoreMin, scoreMax int
	limitMin, limitMax int
	fee                int
	rewards            string
}{
	{1, "Basic", 580, 669, 1000, 5000, 0, "0.005"},
	{2, "Gold", 670, 739, 5000, 10000, 95, "0.01"},
	{3, "Platinum", 740, 799, 10000, 25000, 195, "0.02"},
	{4, "Diamond", 800, 850, 25000, 50000, 495, "0.03"},
	{5, "Black", 800, 850, 50000, 100000, 695, "0.05"},
}

// customer is what the cards and transactions need of a customer.
type customer struct {
	score  int
	region uint8
	zip    string
}

// card is what the transactions need of a card: its customer's home and
// the pending balance the stream layer will compute for it.
type card struct {
	region  uint8
	zip     string
	limit   txpipe.Money
	pending txpipe.Money
}

type generator struct {
	o     Options
	ctx   context.Context
	stats Stats

	custRng, cardRng, txRng, timeRng, badRng, demoRng rng

	customers []customer
	cards     []card
	cumWeight []int // cumulative activity weights of the cards
}

func (g *generator) writeCustomers(w *csv.Writer) error {
	r := &g.custRng
	header := []string{"customer_id", "name", "phone_number", "address", "email", "credit_score", "annual_income"}
	if g.o.Demographics {
		header = append(header, "age", "gender")
	}
	if err := w.Write(header); err != nil {
		return err
	}
	g.customers = make([]customer, g.o.Customers)
	for i := range g.customers {
		first, last, name, female := personName(r)
		reg := pickHomeRegion(r)
		street, zip := streetAddress(r, &regions[reg], "")
		// Scores by band: Basic 22%, Gold 33%, Platinum 33%, the top 12%.
		var score int
		switch p := r.intn(100); {
		case p < 22:
			score = r.between(580, 669)
		case p < 55:
			score = r.between(670, 739)
		case p < 88:
			score = r.between(740, 799)
		default:
			score = r.between(800, 850)
		}
		var income int // in hundreds
		switch p := r.intn(100); {
		case p < 70:
			income = r.between(250, 1500)
		case p < 93:
			income = r.between(1500, 4000)
		default:
			income = r.between(4000, 9000)
		}
		g.customers[i] = customer{score: score, region: reg, zip: zip}
		rec := []string{
			strconv.Itoa(i + 1),
			name,
			phone(r),
			street,
			email(r, first, last),
			strconv.Itoa(score),
			strconv.Itoa(income*100) + ".0",
		}
		if g.o.Demographics {
			gender := "M"
			if female {
				gender = "F"
			}
			rec = append(rec, strconv.Itoa(g.age()), gender)
		}
		if err := w.Write(rec); err != nil {
			return err
		}
		if i%4096 == 0 {
			if err := g.ctx.Err(); err != nil {
				return err
			}
		}
	}
	g.stats.Customers = len(g.customers)
	return nil
}

func (g *generator) writeCardTypes(w *csv.Writer) error {
	if err := w.Write([]string{"card_type_id", "name", "credit_score_min", "credit_score_max", "credit_limit_min", "credit_limit_max", "annual_fee", "rewards_rate"}); err != nil {
		return err
	}
	for _, t := range cardTypes {
		rec := []string{
			strconv.Itoa(t.id), t.name,
			strconv.Itoa(t.scoreMin), strconv.Itoa(t.scoreMax),
			strconv.Itoa(t.limitMin), strconv.Itoa(t.limitMax),
			strconv.Itoa(t.fee), t.rewards,
		}
		if err := w.Write(rec); err != nil {
			return err
		}
	}
	return nil
}

// cardCounts spreads o.Cards cards over the customers: every customer has
// one (while there are enough) and a few have two or three.
func (g *generator) cardCounts() []int {
	r := &g.cardRng
	n, total := len(g.customers), g.o.Cards
	counts := make([]int, n)
	if total < n {
		perm := make([]int, n)
		for i := range perm {
			perm[i] = i
		}
		for i := range total {
			j := i + r.intn(n-i)
			perm[i], perm[j] = perm[j], perm[i]
			counts[perm[i]] = 1
		}
		return counts
	}
	for i := range counts {
		counts[i] = 1
	}
	capacity := max(3, (total+n-1)/n+1)
	for extra := total - n; extra > 0; {
		i := r.intn(n)
		if counts[i] < capacity {
			counts[i]++
			extra--
		}
	}
	return counts
}

func (g *generator) writeCards(w *csv.Writer) error {
	r := &g.cardRng
	if err := w.Write([]string{"card_id", "customer_id", "card_type_id", "card_number", "expiration_date", "credit_limit", "current_balance", "issue_date"}); err != nil {
		return err
	}
	counts := g.cardCounts()
	g.cards = make([]card, 0, g.o.Cards)
	g.cumWeight = make([]int, 0, g.o.Cards)
	numbers := make(map[uint64]struct{}, g.o.Cards)
	start := g.o.Start
	weight := 0
	for ci, c := range g.customers {
		for range counts[ci] {
			// The card's type matches the customer's score band; the top
			// band has two types.
			var types []int
			for ti, t := range cardTypes {
				if t.scoreMin <= c.score && c.score <= t.scoreMax {
					types = append(types, ti)
				}
			}
			t := cardTypes[types[0]]
			if len(types) > 1 && r.chance(400) {
				t = cardTypes[types[1]]
			}
			limitUnits := t.limitMin + 100*r.intn((t.limitMax-t.limitMin)/100+1)
			limit := txpipe.Money(limitUnits) * 100
			// A balance of 0.05% to 6% of the limit.
			balance := limit*txpipe.Money(r.between(5, 600))/10000 + txpipe.Money(r.intn(100))
			balance = min(balance, limit)
			num := cardNumber(r, numbers)
			issue := start.AddDate(0, 0, -r.between(30, 1030))
			years := 3 + r.intn(2)
			exp := time.Date(issue.Year()+years, issue.Month(), 1, 0, 0, 0, 0, time.UTC)
			id := len(g.cards) + 1
			g.cards = append(g.cards, card{region: c.region, zip: c.zip, limit: limit, pending: balance})
			weight += 1 + r.intn(4)
			g.cumWeight = append(g.cumWeight, weight)
			rec := []string{
				strconv.Itoa(id),
				strconv.Itoa(ci + 1),
				strconv.Itoa(t.id),
				num,
				fmt.Sprintf("%02d/%02d", int(exp.Month()), exp.Year()%100),
				strconv.Itoa(limitUnits) + ".0",
				balance.String(),
				issue.Format(time.DateOnly),
			}
			if err := w.Write(rec); err != nil {
				return err
			}
		}
		if ci%4096 == 0 {
			if err := g.ctx.Err(); err != nil {
				return err
			}
		}
	}
	g.stats.Cards = len(g.cards)
	return nil
}

// cardNumber returns a new Luhn-valid 16-digit number as 1234-5678-9012-3456.
func cardNumber(r *rng, seen map[uint64]struct{}) string {
	for {
		var d [16]byte
		p := r.pick(cardPrefixes)
		n := copy(d[:], p)
		for i := range d[:n] {
			d[i] -= '0'
		}
		for i := n; i < 15; i++ {
			d[i] = byte(r.intn(10))
		}
		d[15] = luhnCheckDigit(d[:15])
		var v uint64
		for _, x := range d {
			v = v*10 + uint64(x)
		}
		if _, dup := seen[v]; dup {
			continue
		}
		seen[v] = struct{}{}
		b := make([]byte, 0, 19)
		for i, x := range d {
			if i > 0 && i%4 == 0 {
				b = append(b, '-')
			}
			b = append(b, '0'+x)
		}
		return string(b)
	}
}

// cardPrefixes are issuer prefixes (Visa most often).
var cardPrefixes = []string{"4", "4", "4", "51", "52", "53", "54", "55", "2221", "6011", "65", "644", "646", "648", "34", "37"}

// luhnCheckDigit returns the digit that makes digits+digit Luhn-valid.
func luhnCheckDigit(digits []byte) byte {
	sum := 0
	for i := len(digits) - 1; i >= 0; i-- {
		x := int(digits[i])
		if (len(digits)-i)%2 == 1 { // doubled once the check digit is appended
			x *= 2
			if x > 9 {
				x -= 9
			}
		}
		sum += x
	}
	return byte((10 - sum%10) % 10)
}

// The kinds of malformed rows, in the order they are injected.
var badKinds = []txpipe.RejectReason{
	txpipe.RejectFieldCount,
	txpipe.RejectTransactionID,
	txpipe.RejectCardID,
	txpipe.RejectAmount,
	txpipe.RejectTimestamp,
	txpipe.RejectUnknownCard,
	txpipe.RejectDuplicate,
}

var transactionTypes = []string{"purchase", "bill_payment", "wire_transfer", "p2p_transfer", "atm_withdrawal"}

func (g *generator) writeTransactions(w *csv.Writer) error {
	if err := w.Write(txpipe.TransactionColumns); err != nil {
		return err
	}
	r, tr := &g.txRng, &g.timeRng
	n, bad := g.o.Transactions, g.o.BadRows
	span := int64(g.o.Days) * 86400
	start := g.o.Start
	totalWeight := 0
	if len(g.cumWeight) > 0 {
		totalWeight = g.cumWeight[len(g.cumWeight)-1]
	}
	var last []string // the last good row written
	nextBad := 0
	// badAfter is the number of good rows written before bad row k.
	badAfter := func(k int) int { return int(int64(k+1) * int64(n) / int64(bad+1)) }
	writeBad := func(written int) error {
		for nextBad < bad && badAfter(nextBad) <= written {
			if err := w.Write(g.badRow(nextBad, last)); err != nil {
				return err
			}
			nextBad++
		}
		return nil
	}
	rec := make([]string, 8)
	for i := range n {
		if err := writeBad(i); err != nil {
			return err
		}
		if i%4096 == 0 {
			if err := g.ctx.Err(); err != nil {
				return err
			}
		}
		// Stratified event times: event i falls in its own slice of the
		// span, so times never decrease and need no sorting.
		lo := int64(i) * span / int64(n)
		hi := int64(i+1) * span / int64(n)
		sec := lo
		if hi > lo {
			sec += int64(tr.intn(int(hi - lo)))
		}
		ts := start.Add(time.Duration(sec) * time.Second)

		ci := sort.SearchInts(g.cumWeight, r.intn(totalWeight)+1)
		c := &g.cards[ci]

		// Customers rarely push a card past its limit: the fuller the card,
		// the likelier a refund.
		util := int(c.pending * 100 / c.limit)
		refundPerMille := 167
		if util > 40 {
			refundPerMille = min(167+(util-40)*15, 700)
		}
		var typ string
		var amount txpipe.Money
		switch {
		case r.chance(refundPerMille):
			typ = "refund"
			amount = -txpipe.Money(r.between(500, 50000))
		default:
			typ = transactionTypes[r.intn(len(transactionTypes))]
			switch {
			case typ == "atm_withdrawal":
				amount = txpipe.Money(r.between(1, 25)) * 2000
			case r.chance(40): // an occasional large one, mostly over half the limit
				amount = c.limit*txpipe.Money(r.between(35, 90))/100 + txpipe.Money(r.intn(100))
			default:
				amount = txpipe.Money(r.between(500, 50000))
			}
		}
		var location string
		if r.chance(85) {
			location = farLocation(r, c.region)
		} else {
			location, _ = streetAddress(r, &regions[c.region], "")
		}
		if status, _, p := txpipe.Decide(amount, location, c.limit, c.zip, c.pending); status == txpipe.StatusPending {
			c.pending = p
		}
		rec[0] = strconv.Itoa(i + 1)
		rec[1] = strconv.Itoa(ci + 1)
		rec[2] = merchant(r)
		rec[3] = ts.Format(txpipe.TimestampLayout)
		rec[4] = amount.String()
		rec[5] = location
		rec[6] = typ
		rec[7] = ""
		if err := w.Write(rec); err != nil {
			return err
		}
		if bad > 0 {
			last = append(last[:0], rec...)
		}
	}
	if err := writeBad(n); err != nil {
		return err
	}
	g.stats.Transactions = n
	return nil
}

// badRow returns malformed row k, made from the last good row (or a made-up
// one before the first), and counts it.
func (g *generator) badRow(k int, last []string) []string {
	r := &g.badRng
	kind := badKinds[k%len(badKinds)]
	if kind == txpipe.RejectDuplicate && last == nil {
		kind = txpipe.RejectUnknownCard // nothing to duplicate yet
	}
	g.stats.Bad[string(kind)]++
	if kind == txpipe.RejectDuplicate {
		return append([]string(nil), last...)
	}
	var row []string
	if last != nil {
		row = append([]string(nil), last...)
	} else {
		loc, _ := streetAddress(r, &regions[0], "")
		row = []string{"", "1", merchant(r), g.o.Start.Format(txpipe.TimestampLayout), "10.00", loc, "purchase", ""}
	}
	// Ids past the good ones, so no bad row shadows a good id.
	row[0] = strconv.Itoa(g.o.Transactions + 1 + k)
	round := k / len(badKinds)
	switch kind {
	case txpipe.RejectFieldCount:
		if round%2 == 0 {
			row = row[:7]
		} else {
			row = append(row, "extra")
		}
	case txpipe.RejectTransactionID:
		row[0] = []string{"abc", "0", "-3", "7.5"}[round%4]
	case txpipe.RejectCardID:
		row[1] = []string{"x12", "", "3.0", "-1"}[round%4]
	case txpipe.RejectAmount:
		row[4] = []string{"12.505", "1e3", "NaN", ""}[round%4]
	case txpipe.RejectTimestamp:
		row[3] = []string{"2025-13-01 00:00:00", "yesterday", "2025-04-31 12:00:00"}[round%3]
	case txpipe.RejectUnknownCard:
		row[1] = strconv.Itoa(len(g.cards) + 1 + r.intn(1000))
	}
	return row
}

// region is a US state with its ZIP range and cities.
type region struct {
	state        string
	zipLo, zipHi int
	cities       []string // nil: made-up city names
}

// regions: the first four are home regions, NY by far the most common.
var regions = []region{
	{"NY", 10001, 14999, []string{"New York", "Brooklyn", "Queens", "Bronx", "Staten Island", "Buffalo", "Rochester", "Yonkers", "Syracuse", "Albany", "New Rochelle", "Mount Vernon", "Schenectady", "Utica", "White Plains", "Troy", "Niagara Falls", "Binghamton", "Cheektowaga", "Ithaca"}},
	{"NJ", 7001, 8999, []string{"Newark", "Jersey City", "Paterson", "Elizabeth", "Trenton", "Camden", "Hoboken", "Clifton"}},
	{"CT", 6001, 6999, []string{"Hartford", "New Haven", "Stamford", "Bridgeport", "Waterbury", "Norwalk"}},
	{"PA", 15001, 19699, []string{"Philadelphia", "Pittsburgh", "Allentown", "Erie", "Scranton", "Reading"}},
	{"MA", 1001, 2791, nil},
	{"VT", 5001, 5907, nil},
	{"OH", 43001, 45999, nil},
	{"IL", 60001, 62999, nil},
	{"TX", 75001, 79999, nil},
	{"FL", 32003, 34997, nil},
	{"GA", 30002, 31999, nil},
	{"CA", 90001, 96162, nil},
	{"WA", 98001, 99403, nil},
	{"CO", 80001, 81658, nil},
	{"AZ", 85001, 86556, nil},
}

// farRegions[h] are the regions whose ZIPs start with another digit than
// home region h's.
var farRegions = func() [4][]uint8 {
	var far [4][]uint8
	for h := range far {
		for i, reg := range regions {
			if reg.zipLo/10000 != regions[h].zipLo/10000 { // no range spans two first digits
				far[h] = append(far[h], uint8(i))
			}
		}
	}
	return far
}()

func pickHomeRegion(r *rng) uint8 {
	switch p := r.intn(100); {
	case p < 94:
		return 0
	case p < 97:
		return 1
	case p < 99:
		return 2
	default:
		return 3
	}
}

// farLocation is an address in a region whose ZIPs start with another digit
// than the home region's.
func farLocation(r *rng, home uint8) string {
	far := farRegions[home]
	reg := &regions[far[r.intn(len(far))]]
	city := ""
	if reg.cities == nil {
		city = madeUpCity(r)
	}
	addr, _ := streetAddress(r, reg, city)
	return addr
}

// streetAddress returns "7326 John Ridge, Buffalo, NY 11513" and its ZIP.
func streetAddress(r *rng, reg *region, city string) (string, string) {
	if city == "" {
		if reg.cities != nil {
			city = r.pick(reg.cities)
		} else {
			city = madeUpCity(r)
		}
	}
	var streetName string
	if r.chance(600) {
		streetName = r.pick(firstNames[r.intn(2)])
	} else {
		streetName = r.pick(lastNames)
	}
	zip := r.between(reg.zipLo, reg.zipHi)
	zs := strconv.Itoa(zip)
	if len(zs) < 5 {
		zs = strings.Repeat("0", 5-len(zs)) + zs
	}
	var b strings.Builder
	b.Grow(64)
	b.WriteString(strconv.Itoa(r.between(1, 9999)))
	b.WriteByte(' ')
	b.WriteString(streetName)
	b.WriteByte(' ')
	b.WriteString(r.pick(streetSuffixes))
	b.WriteString(", ")
	b.WriteString(city)
	b.WriteString(", ")
	b.WriteString(reg.state)
	b.WriteByte(' ')
	b.WriteString(zs)
	return b.String(), zs
}

func madeUpCity(r *rng) string {
	base := r.pick(firstNames[r.intn(2)])
	if r.chance(300) {
		base = r.pick(lastNames)
	}
	city := base + r.pick(citySuffixes)
	if r.chance(400) {
		city = r.pick(cityPrefixes) + " " + city
	}
	return city
}

// age draws an adult's age in years (18 to 90, most between 25 and 64).
func (g *generator) age() int {
	r := &g.demoRng
	switch p := r.intn(100); {
	case p < 12:
		return r.between(18, 24)
	case p < 85:
		return r.between(25, 64)
	default:
		return r.between(65, 90)
	}
}

// personName returns a first and last name, the full name (sometimes with
// a title or a suffix) and whether the first name is a woman's.
func personName(r *rng) (first, last, full string, female bool) {
	female = r.intn(2) == 0
	if female {
		first = r.pick(firstNames[0])
	} else {
		first = r.pick(firstNames[1])
	}
	last = r.pick(lastNames)
	full = first + " " + last
	if r.chance(60) {
		if female {
			full = r.pick([]string{"Mrs.", "Ms.", "Miss", "Dr."}) + " " + full
		} else {
			full = r.pick([]string{"Mr.", "Dr."}) + " " + full
		}
	}
	if r.chance(40) {
		full += " " + r.pick([]string{"MD", "DDS", "PhD", "DVM", "Jr.", "II"})
	}
	return first, last, full, female
}

func phone(r *rng) string {
	return fmt.Sprintf("%03d-%03d-%04d", r.between(201, 999), r.between(200, 999), r.intn(10000))
}

func email(r *rng, first, last string) string {
	f, l := strings.ToLower(first), strings.ToLower(last)
	var user string
	switch r.intn(6) {
	case 0:
		user = f + l
	case 1:
		user = l + f
	case 2:
		user = f[:1] + l
	case 3:
		user = f + "." + l
	case 4:
		user = f + fmt.Sprintf("%02d", r.intn(100))
	default:
		user = l + fmt.Sprintf("%02d", r.intn(100))
	}
	return user + "@" + r.pick([]string{"example.com", "example.org", "example.net"})
}

// merchant returns a company name such as "Barrett LLC", "Davidson-Moreno"
// or "Nelson, Bell and Huynh".
func merchant(r *rng) string {
	switch p := r.intn(100); {
	case p < 45:
		return r.pick(lastNames) + " " + r.pick(companySuffixes)
	case p < 80:
		return r.pick(lastNames) + "-" + r.pick(lastNames)
	default:
		return r.pick(lastNames) + ", " + r.pick(lastNames) + " and " + r.pick(lastNames)
	}
}

var firstNames = [2][]string{
	{ // female
		"Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah", "Karen",
		"Lisa", "Nancy", "Betty", "Sandra", "Margaret", "Ashley", "Kimberly", "Emily", "Donna", "Michelle",
		"Carol", "Amanda", "Melissa", "Deborah", "Stephanie", "Rebecca", "Sharon", "Laura", "Cynthia", "Amy",
		"Kathleen", "Angela", "Shirley", "Brenda", "Emma", "Anna", "Pamela", "Nicole", "Samantha", "Katherine",
		"Christine", "Helen", "Debra", "Rachel", "Carolyn", "Janet", "Maria", "Catherine", "Heather", "Diane",
		"Olivia", "Julie", "Joyce", "Victoria", "Ruth", "Virginia", "Lauren", "Kelly", "Christina", "Joan",
		"Evelyn", "Judith", "Andrea", "Hannah", "Megan", "Cheryl", "Jacqueline", "Martha", "Madison", "Teresa",
		"Gloria", "Sara", "Janice", "Ann", "Kathryn", "Abigail", "Sophia", "Frances", "Jean", "Alice",
		"Judy", "Isabella", "Julia", "Grace", "Amber", "Denise", "Danielle", "Marilyn", "Beverly", "Charlotte",
		"Natalie", "Theresa", "Diana", "Brittany", "Doris", "Kayla", "Alexis", "Lori", "Marie", "Monica",
		"Tammy", "Destiny", "Heidi", "Claudia", "Cassandra", "Deanna", "Shelby", "Meghan", "Tamara", "Molly",
	},
	{ // male
		"James", "Robert", "John", "Michael", "David", "William", "Richard", "Joseph", "Thomas", "Christopher",
		"Charles", "Daniel", "Matthew", "Anthony", "Mark", "Donald", "Steven", "Andrew", "Paul", "Joshua",
		"Kenneth", "Kevin", "Brian", "George", "Timothy", "Ronald", "Jason", "Edward", "Jeffrey", "Ryan",
		"Jacob", "Gary", "Nicholas", "Eric", "Jonathan", "Stephen", "Larry", "Justin", "Scott", "Brandon",
		"Benjamin", "Samuel", "Gregory", "Alexander", "Patrick", "Frank", "Raymond", "Jack", "Dennis", "Jerry",
		"Tyler", "Aaron", "Jose", "Adam", "Nathan", "Henry", "Zachary", "Douglas", "Peter", "Kyle",
		"Noah", "Ethan", "Jeremy", "Walter", "Christian", "Keith", "Roger", "Terry", "Austin", "Sean",
		"Gerald", "Carl", "Harold", "Dylan", "Arthur", "Lawrence", "Jordan", "Jesse", "Bryan", "Billy",
		"Bruce", "Gabriel", "Joe", "Logan", "Alan", "Juan", "Albert", "Willie", "Elijah", "Wayne",
		"Randy", "Vincent", "Mason", "Roy", "Ralph", "Bobby", "Russell", "Bradley", "Philip", "Eugene",
		"Gordon", "Oscar", "Carlos", "Corey", "Devin", "Ernest", "Miles", "Wade", "Kirk", "Luis",
	},
}

var lastNames = []string{
	"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
	"Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
	"Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
	"Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores",
	"Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts",
	"Gomez", "Phillips", "Evans", "Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes",
	"Stewart", "Morris", "Morales", "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper",
	"Peterson", "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson",
	"Watson", "Brooks", "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes",
	"Price", "Alvarez", "Castillo", "Sanders", "Patel", "Myers", "Long", "Ross", "Foster", "Jimenez",
	"Powell", "Jenkins", "Perry", "Russell", "Sullivan", "Bell", "Coleman", "Butler", "Henderson", "Barnes",
	"Gonzales", "Fisher", "Vasquez", "Simmons", "Romero", "Jordan", "Patterson", "Alexander", "Hamilton", "Graham",
	"Reynolds", "Griffin", "Wallace", "Moreno", "West", "Cole", "Hayes", "Bryant", "Herrera", "Gibson",
	"Ellis", "Tran", "Medina", "Aguilar", "Stevens", "Murray", "Ford", "Castro", "Marshall", "Owens",
	"Harrison", "Fernandez", "Mcdonald", "Woods", "Washington", "Kennedy", "Wells", "Vargas", "Henry", "Chen",
	"Freeman", "Webb", "Tucker", "Guzman", "Burns", "Crawford", "Olson", "Simpson", "Porter", "Hunter",
	"Gordon", "Mendez", "Silva", "Shaw", "Snyder", "Mason", "Dixon", "Munoz", "Hunt", "Hicks",
	"Holmes", "Palmer", "Wagner", "Black", "Robertson", "Boyd", "Rose", "Stone", "Salazar", "Fox",
	"Warren", "Mills", "Meyer", "Rice", "Schmidt", "Garza", "Daniels", "Ferguson", "Nichols", "Stephens",
	"Barrett", "Davidson", "Walsh", "Schwartz", "Duffy", "Huynh", "Pineda", "Gaines", "Cherry", "Byrd",
	"Dean", "Foster", "Russo", "Singleton", "Wade", "Orozco", "Sparks", "Rodgers", "Malone", "Greene",
	"Holland", "Wilkerson", "Gross", "Vaughn", "Miranda", "Pugh", "Maldonado", "Weber", "Carson", "Lamb",
	"Ramsey", "Hogan", "Rosario", "Winters", "Reyes", "Curtis", "Stephenson", "Bird", "Blanchard", "Buckley",
	"Johnston", "Esparza", "Bender", "Flowers", "Christensen", "Nixon", "Mack", "Shields", "Allison", "Valenzuela",
}

var streetSuffixes = []string{
	"Ridge", "Spur", "Prairie", "Inlet", "Junctions", "Landing", "Mills", "Extension", "Rue", "Crest",
	"Creek", "Roads", "Place", "Terrace", "Shores", "Meadows", "River", "Pass", "Pine", "Cliff",
	"Springs", "Island", "Mall", "Harbors", "Gardens", "Heights", "Lake", "Lodge", "Walk", "Hill",
	"Forest", "Orchard", "Street", "Avenue", "Road", "Lane", "Drive", "Court", "Way", "Loop",
	"Park", "Trail", "Square", "Ports", "Field", "Bypass", "Summit", "Forges", "Isle", "Burgs",
	"Falls", "Freeway", "Flats", "Track", "Fields", "Brook", "Village", "Motorway", "Overpass", "Green",
	"Rest", "Stravenue", "Oval", "Pike", "Plaza", "Station", "Valley", "View", "Well", "Wells",
}

var citySuffixes = []string{
	"stad", "ville", "mouth", "borough", "burgh", "side", "haven", "town", "view", "chester",
	"land", "bury", "fort", "port", "berg", "furt", "shire",
}

var cityPrefixes = []string{"North", "South", "East", "West", "New", "Lake", "Port"}

var companySuffixes = []string{"LLC", "Inc", "Ltd", "PLC", "Group", "and Sons"}
