package dataset

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/txpipe/txpipe"
)

// Test cards: Luhn-valid card numbers by provider, a share of them
// reported stolen, written to (and read back from) a cards file:
//
//	card_id,card_number,provider,stolen,reported_at,home_zip
//	1,4929731864207713,visa,false,,10462
//	2,371449635398431,amex,true,2025-04-02 13:05:41,11208
//
// card_id is a positive integer, unique in the file; card_number its
// digits (no separators); provider one of visa, mastercard, amex,
// discover, other; stolen true or false; reported_at, for a stolen card
// only, when it was reported ("YYYY-MM-DD HH:MM:SS", UTC); home_zip the
// ZIP of the holder's address, where the simulator places most payments
// (may be empty). A dataset directory's stolen_cards.csv is such a file:
// `txpipe load initial` publishes the status of every card it lists.

// StolenCardsFile is the cards file of a dataset directory.
const StolenCardsFile = "stolen_cards.csv"

// CardsFileColumns are the columns of a cards file, in order; home_zip
// may be left out when reading.
var CardsFileColumns = []string{"card_id", "card_number", "provider", "stolen", "reported_at", "home_zip"}

// Provider is a card network.
type Provider string

// Providers. Generated cards are Visa, Mastercard or Amex; a dataset's
// cards may also be Discover or other.
const (
	Visa          Provider = "visa"
	Mastercard    Provider = "mastercard"
	Amex          Provider = "amex"
	Discover      Provider = "discover"
	OtherProvider Provider = "other"
)

var providers = []Provider{Visa, Mastercard, Amex, Discover, OtherProvider}

// TestCard is a row of a cards file.
type TestCard struct {
	ID         int64
	Number     string // digits only
	Provider   Provider
	Stolen     bool
	ReportedAt time.Time // UTC, whole seconds; zero unless Stolen
	HomeZIP    string
}

// StolenCard is the card's stolen status as master data.
func (c TestCard) StolenCard() txpipe.StolenCard {
	if !c.Stolen {
		return txpipe.StolenCard{CardID: c.ID, Cleared: true}
	}
	return txpipe.StolenCard{CardID: c.ID, ReportedAt: c.ReportedAt}
}

// ProviderShare is a provider's weight among generated cards.
type ProviderShare struct {
	Provider Provider
	Weight   float64
}

// CardsOptions says what test cards to make (or how to mark a dataset's).
type CardsOptions struct {
	Count  int     // cards to generate (GenerateCards)
	Stolen float64 // share reported stolen, 0 to 1: exactly round(n × Stolen) cards
	Seed   int64
	// Shares are the providers' weights (DefaultShares when empty); each
	// gets exactly its share of Count, rounded by largest remainder.
	Shares []ProviderShare
	// Visa13 is the share of Visa cards with 13 digits rather than 16.
	Visa13 float64
	// Reported times are spread uniformly over [ReportedFrom,
	// ReportedFrom+ReportedSpan), whole seconds.
	ReportedFrom time.Time
	ReportedSpan time.Duration
}

// DefaultShares are the providers' default weights.
var DefaultShares = []ProviderShare{{Visa, 50}, {Mastercard, 35}, {Amex, 15}}

// DefaultCardsOptions are `txpipe gen cards`'s defaults: 1,000 cards, 10 %
// stolen, reported over the four days of the default dataset.
func DefaultCardsOptions() CardsOptions {
	return CardsOptions{
		Count: 1000, Stolen: 0.1, Seed: 22, Shares: DefaultShares, Visa13: 0.1,
		ReportedFrom: defaultStart, ReportedSpan: 96 * time.Hour,
	}
}

func (o CardsOptions) check() (CardsOptions, error) {
	switch {
	case o.Count < 0 || o.Count > 100_000_000:
		return o, fmt.Errorf("cards: count %d is not between 0 and 100,000,000", o.Count)
	case !(o.Stolen >= 0 && o.Stolen <= 1):
		return o, fmt.Errorf("cards: stolen share %v is not between 0 and 1", o.Stolen)
	case !(o.Visa13 >= 0 && o.Visa13 <= 1):
		return o, fmt.Errorf("cards: 13-digit Visa share %v is not between 0 and 1", o.Visa13)
	case o.ReportedSpan < 0:
		return o, fmt.Errorf("cards: reported span %s is negative", o.ReportedSpan)
	}
	if len(o.Shares) == 0 {
		o.Shares = DefaultShares
	}
	total := 0.0
	seen := map[Provider]bool{}
	for _, s := range o.Shares {
		if s.Provider != Visa && s.Provider != Mastercard && s.Provider != Amex {
			return o, fmt.Errorf("cards: cannot generate provider %q (visa, mastercard or amex)", s.Provider)
		}
		if seen[s.Provider] {
			return o, fmt.Errorf("cards: provider %s given twice", s.Provider)
		}
		seen[s.Provider] = true
		if !(s.Weight >= 0) || math.IsInf(s.Weight, 0) {
			return o, fmt.Errorf("cards: weight %v of %s is not a non-negative number", s.Weight, s.Provider)
		}
		total += s.Weight
	}
	if !(total > 0) {
		return o, errors.New("cards: the provider weights add up to zero")
	}
	if o.ReportedFrom.IsZero() {
		o.ReportedFrom = defaultStart
	}
	o.ReportedFrom = txpipe.ReportedAtOf(o.ReportedFrom)
	return o, nil
}

// ParseShares reads provider weights such as "visa=50,mastercard=35,amex=15".
func ParseShares(s string) ([]ProviderShare, error) {
	var out []ProviderShare
	for _, part := range strings.Split(s, ",") {
		name, w, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("provider share %q is not provider=weight", part)
		}
		weight, err := strconv.ParseFloat(strings.TrimSpace(w), 64)
		if err != nil {
			return nil, fmt.Errorf("provider share %q: weight: %w", part, err)
		}
		out = append(out, ProviderShare{Provider: Provider(strings.ToLower(strings.TrimSpace(name))), Weight: weight})
	}
	return out, nil
}

// GenerateCards makes o.Count test cards with ids 1..Count: Luhn-valid,
// distinct numbers (Visa: 4, 16 or 13 digits; Mastercard: 51–55 or
// 2221–2720, 16 digits; Amex: 34 or 37, 15 digits), each provider with
// exactly its share, exactly round(Count × Stolen) of them stolen with a
// report time, and a home ZIP drawn like the dataset's customers'. The
// same options give the same cards; separate random streams make the
// numbers independent of the stolen share and the report times.
func GenerateCards(o CardsOptions) ([]TestCard, error) {
	o, err := o.check()
	if err != nil {
		return nil, err
	}
	var numRng, kindRng, zipRng rng
	numRng.seed(o.Seed, 11)
	kindRng.seed(o.Seed, 12)
	zipRng.seed(o.Seed, 15)

	// Each card's kind: the providers' exact counts, shuffled.
	weights := make([]float64, len(o.Shares))
	for i, s := range o.Shares {
		weights[i] = s.Weight
	}
	counts := apportion(o.Count, weights)
	type kind struct {
		p      Provider
		digits int
	}
	kinds := make([]kind, 0, o.Count)
	for i, s := range o.Shares {
		n := counts[i]
		if s.Provider == Visa {
			short := int(math.Round(float64(n) * o.Visa13))
			for range short {
				kinds = append(kinds, kind{Visa, 13})
			}
			n -= short
		}
		for range n {
			kinds = append(kinds, kind{s.Provider, 0})
		}
	}
	shuffle(&kindRng, len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })

	cards := make([]TestCard, o.Count)
	seen := make(map[string]struct{}, o.Count)
	for i := range cards {
		k := kinds[i]
		var num string
		for {
			num = providerNumber(&numRng, k.p, k.digits)
			if _, dup := seen[num]; !dup {
				break
			}
		}
		seen[num] = struct{}{}
		reg := &regions[pickHomeRegion(&zipRng)]
		zip := fmt.Sprintf("%05d", zipRng.between(reg.zipLo, reg.zipHi))
		cards[i] = TestCard{ID: int64(i + 1), Number: num, Provider: k.p, HomeZIP: zip}
	}
	markStolen(cards, o)
	return cards, nil
}

// MarkCards marks exactly round(len(cards) × o.Stolen) of the given cards
// (a dataset's) stolen, with report times, and the others not, and fills
// in a provider read from the number where it is missing. The cards are
// returned sorted by id; ids must be positive and distinct. The choice
// depends only on the seed, the ids and the share (for one seed, a larger
// share marks a superset).
func MarkCards(cards []TestCard, o CardsOptions) ([]TestCard, error) {
	o.Count = 0
	o, err := o.check()
	if err != nil {
		return nil, err
	}
	out := slices.Clone(cards)
	slices.SortFunc(out, func(a, b TestCard) int { return cmpInt(a.ID, b.ID) })
	for i := range out {
		c := &out[i]
		if c.ID <= 0 {
			return nil, fmt.Errorf("cards: card id %d is not positive", c.ID)
		}
		if i > 0 && out[i-1].ID == c.ID {
			return nil, fmt.Errorf("cards: card id %d given twice", c.ID)
		}
		num, err := NormalizeNumber(c.Number)
		if err != nil {
			return nil, fmt.Errorf("cards: card %d: %w", c.ID, err)
		}
		c.Number = num
		if c.Provider == "" {
			c.Provider = ProviderOf(num)
		}
	}
	markStolen(out, o)
	return out, nil
}

// markStolen marks the first round(n × share) cards of a seeded
// permutation stolen, each with a report time, in id order.
func markStolen(cards []TestCard, o CardsOptions) {
	var pickRng, timeRng rng
	pickRng.seed(o.Seed, 13)
	timeRng.seed(o.Seed, 14)
	n := len(cards)
	k := int(math.Round(float64(n) * o.Stolen))
	perm := make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	stolen := make([]bool, n)
	for i := range k { // a partial Fisher–Yates: perm[:k] is a uniform k-subset
		j := i + pickRng.intn(n-i)
		perm[i], perm[j] = perm[j], perm[i]
		stolen[perm[i]] = true
	}
	span := int64(o.ReportedSpan / time.Second)
	for i := range cards {
		cards[i].Stolen, cards[i].ReportedAt = stolen[i], time.Time{}
		if stolen[i] {
			at := o.ReportedFrom
			if span > 0 {
				at = at.Add(time.Duration(timeRng.intn(int(span))) * time.Second)
			}
			cards[i].ReportedAt = at
		}
	}
}

// apportion splits n into parts proportional to weights, by largest
// remainder (ties to the earlier weight): the parts add up to n.
func apportion(n int, weights []float64) []int {
	total := 0.0
	for _, w := range weights {
		total += w
	}
	out := make([]int, len(weights))
	rest := make([]float64, len(weights))
	given := 0
	for i, w := range weights {
		q := float64(n) * w / total
		out[i] = int(math.Floor(q))
		rest[i] = q - math.Floor(q)
		given += out[i]
	}
	order := make([]int, len(weights))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case rest[a] > rest[b]:
			return -1
		case rest[a] < rest[b]:
			return 1
		}
		return 0
	})
	for i := 0; given < n; i++ {
		out[order[i%len(order)]]++
		given++
	}
	return out
}

func shuffle(r *rng, n int, swap func(i, j int)) {
	for i := n - 1; i > 0; i-- {
		swap(i, r.intn(i+1))
	}
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// providerNumber draws a Luhn-valid number of provider p (digits: 13 or
// 16 for Visa, 0 for the provider's usual length).
func providerNumber(r *rng, p Provider, digits int) string {
	var prefix string
	switch p {
	case Visa:
		prefix = "4"
		if digits == 0 {
			digits = 16
		}
	case Mastercard:
		digits = 16
		if r.chance(750) { // the 51–55 range; the 2-series since 2017
			prefix = strconv.Itoa(r.between(51, 55))
		} else {
			prefix = strconv.Itoa(r.between(2221, 2720))
		}
	case Amex:
		digits = 15
		prefix = []string{"34", "37"}[r.intn(2)]
	}
	d := make([]byte, digits)
	n := copy(d, prefix)
	for i := range d[:n] {
		d[i] -= '0'
	}
	for i := n; i < digits-1; i++ {
		d[i] = byte(r.intn(10))
	}
	d[digits-1] = luhnCheckDigit(d[:digits-1])
	for i := range d {
		d[i] += '0'
	}
	return string(d)
}

// ProviderOf names the network of a card number by its prefix (and
// length): Visa 4; Mastercard 51–55 and 2221–2720; Amex 34 and 37;
// Discover 6011, 644–649 and 65; anything else is other.
func ProviderOf(number string) Provider {
	num, err := NormalizeNumber(number)
	if err != nil {
		return OtherProvider
	}
	p := func(n int) int {
		if len(num) < n {
			return -1
		}
		v, _ := strconv.Atoi(num[:n])
		return v
	}
	switch {
	case num[0] == '4' && (len(num) == 13 || len(num) == 16 || len(num) == 19):
		return Visa
	case len(num) == 16 && (p(2) >= 51 && p(2) <= 55 || p(4) >= 2221 && p(4) <= 2720):
		return Mastercard
	case len(num) == 15 && (p(2) == 34 || p(2) == 37):
		return Amex
	case p(4) == 6011 || p(3) >= 644 && p(3) <= 649 || p(2) == 65:
		return Discover
	}
	return OtherProvider
}

// NormalizeNumber returns a card number's digits, dropping the spaces and
// dashes that group them; anything else, or fewer than 12 or more than 19
// digits, is an error.
func NormalizeNumber(s string) (string, error) {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			b = append(b, c)
		case c == ' ' || c == '-':
		default:
			return "", fmt.Errorf("card number %q has a character other than digits, spaces and dashes", maskNumber(s))
		}
	}
	if len(b) < 12 || len(b) > 19 {
		return "", fmt.Errorf("card number %q has %d digits, not 12 to 19", maskNumber(s), len(b))
	}
	return string(b), nil
}

// maskNumber shows only the last 4 characters of a card number.
func maskNumber(s string) string {
	if len(s) <= 4 {
		return s
	}
	return strings.Repeat("*", min(len(s)-4, 15)) + s[len(s)-4:]
}

// LuhnValid reports whether a card number (digits, spaces, dashes) passes
// the Luhn check.
func LuhnValid(number string) bool {
	num, err := NormalizeNumber(number)
	if err != nil {
		return false
	}
	sum := 0
	for i := range len(num) {
		x := int(num[len(num)-1-i] - '0')
		if i%2 == 1 {
			if x *= 2; x > 9 {
				x -= 9
			}
		}
		sum += x
	}
	return sum%10 == 0
}

// WriteCardsFile writes a cards file. It refuses to replace an existing
// file unless force is set (the error wraps fs.ErrExist); the file
// appears whole or not at all.
func WriteCardsFile(path string, cards []TestCard, force bool) error {
	if !force {
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("cards file %s: %w", path, fs.ErrExist)
		}
	}
	dir := filepath.Dir(path)
	t, err := writeTemp(dir, filepath.Base(path), func(w *csv.Writer) error {
		if err := w.Write(CardsFileColumns); err != nil {
			return err
		}
		rec := make([]string, len(CardsFileColumns))
		for _, c := range cards {
			rec[0] = strconv.FormatInt(c.ID, 10)
			rec[1] = c.Number
			rec[2] = string(c.Provider)
			rec[3] = strconv.FormatBool(c.Stolen)
			rec[4] = ""
			if c.Stolen {
				rec[4] = c.ReportedAt.UTC().Format(txpipe.TimestampLayout)
			}
			rec[5] = c.HomeZIP
			if err := w.Write(rec); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if t != nil {
			t.discard()
		}
		return err
	}
	if force {
		return t.commit()
	}
	// Without force, a file that appeared meanwhile is not replaced: a
	// hard link fails when the name exists.
	defer t.discard()
	if err := os.Link(t.tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("cards file %s: %w", path, fs.ErrExist)
		}
		if _, serr := os.Lstat(path); serr == nil { // a file system without hard links: check, then rename
			return fmt.Errorf("cards file %s: %w", path, fs.ErrExist)
		}
		return t.commit()
	}
	return nil
}

// ReadCardsFile reads a cards file, strictly: a problem is an error
// naming the file, line and column.
func ReadCardsFile(path string) ([]TestCard, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open cards file: %w", err)
	}
	defer f.Close()
	return readCards(path, bufio.NewReaderSize(f, 64<<10))
}

// lineError is a problem at a line (and column) of a file.
func lineError(path string, line int, column string, err error) error {
	if column != "" {
		return fmt.Errorf("%s:%d: column %s: %w", path, line, column, err)
	}
	return fmt.Errorf("%s:%d: %w", path, line, err)
}

func readCards(path string, in io.Reader) ([]TestCard, error) {
	r := csv.NewReader(in)
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("empty file, expected a header")
		}
		return nil, lineError(path, 1, "", err)
	}
	idx := map[string]int{}
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		if _, dup := idx[h]; dup {
			return nil, lineError(path, 1, h, errors.New("column given twice"))
		}
		idx[h] = i
	}
	for _, c := range CardsFileColumns[:5] {
		if _, ok := idx[c]; !ok {
			return nil, lineError(path, 1, c, fmt.Errorf("missing column (a cards file has %s)", strings.Join(CardsFileColumns, ",")))
		}
	}
	var cards []TestCard
	lineOf := map[int64]int{}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line, _ := r.FieldPos(0)
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, lineError(path, pe.StartLine, "", pe.Err)
			}
			return nil, lineError(path, line, "", err)
		}
		if len(rec) != len(header) {
			return nil, lineError(path, line, "", fmt.Errorf("the row has %d fields, the header %d", len(rec), len(header)))
		}
		get := func(col string) string {
			if i, ok := idx[col]; ok {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		bad := func(col, format string, args ...any) error {
			return lineError(path, line, col, fmt.Errorf(format, args...))
		}
		var c TestCard
		id, ok := txpipe.ParseID(get("card_id"))
		if !ok {
			return nil, bad("card_id", "%q is not a positive integer", get("card_id"))
		}
		if first, dup := lineOf[id]; dup {
			return nil, bad("card_id", "card %d is listed twice (first on line %d)", id, first)
		}
		lineOf[id] = line
		c.ID = id
		if c.Number, err = NormalizeNumber(get("card_number")); err != nil {
			return nil, lineError(path, line, "card_number", err)
		}
		c.Provider = Provider(get("provider"))
		if !slices.Contains(providers, c.Provider) {
			return nil, bad("provider", "%q is not one of visa, mastercard, amex, discover, other", get("provider"))
		}
		switch get("stolen") {
		case "true":
			c.Stolen = true
		case "false":
		default:
			return nil, bad("stolen", "%q is not true or false", get("stolen"))
		}
		at := get("reported_at")
		switch {
		case c.Stolen && at == "":
			return nil, bad("reported_at", "a stolen card needs the time it was reported")
		case !c.Stolen && at != "":
			return nil, bad("reported_at", "%q given for a card that is not stolen", at)
		case c.Stolen:
			t, ok := txpipe.ParseTimestamp(at)
			if !ok {
				return nil, bad("reported_at", "%q is not YYYY-MM-DD HH:MM:SS", at)
			}
			c.ReportedAt = t
		}
		c.HomeZIP = get("home_zip")
		cards = append(cards, c)
	}
	return cards, nil
}
