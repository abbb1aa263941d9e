package dataset

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/txpipe/txpipe"
)

func genCards(t *testing.T, o CardsOptions) []TestCard {
	t.Helper()
	cards, err := GenerateCards(o)
	if err != nil {
		t.Fatal(err)
	}
	return cards
}

func TestLuhn(t *testing.T) {
	for num, want := range map[string]bool{
		"4111 1111 1111 1111": true, "4111111111111112": false, "4222222222222": true,
		"378282246310005": true, "371449635398431": true, "5555-5555-5555-4444": true,
		"2221000000000009": true, "6011111111111117": true, "1234": false, "4111x111111111111": false,
	} {
		if got := LuhnValid(num); got != want {
			t.Errorf("LuhnValid(%q) = %v, want %v", num, got, want)
		}
	}
}

// TestGeneratedCards: every number is Luhn-valid, distinct and of its
// provider's form; each provider has exactly its share, the stolen ones
// exactly theirs, with report times in the span.
func TestGeneratedCards(t *testing.T) {
	o := DefaultCardsOptions()
	o.Count = 10000
	cards := genCards(t, o)
	if len(cards) != o.Count {
		t.Fatalf("%d cards, want %d", len(cards), o.Count)
	}
	byProvider := map[Provider]int{}
	visa13, mc2, stolen := 0, 0, 0
	numbers := map[string]bool{}
	for i, c := range cards {
		if c.ID != int64(i+1) {
			t.Fatalf("card %d has id %d", i, c.ID)
		}
		if !LuhnValid(c.Number) || !luhnValid(c.Number) {
			t.Fatalf("card %d: %s is not Luhn-valid", c.ID, c.Number)
		}
		if numbers[c.Number] {
			t.Fatalf("card %d: number %s twice", c.ID, c.Number)
		}
		numbers[c.Number] = true
		if got := ProviderOf(c.Number); got != c.Provider {
			t.Fatalf("card %d: %s is %s by its prefix, generated as %s", c.ID, c.Number, got, c.Provider)
		}
		switch n := c.Number; c.Provider {
		case Visa:
			if n[0] != '4' || len(n) != 16 && len(n) != 13 {
				t.Fatalf("visa %s", n)
			}
			if len(n) == 13 {
				visa13++
			}
		case Mastercard:
			if len(n) != 16 || !(n[:2] >= "51" && n[:2] <= "55" || n[:4] >= "2221" && n[:4] <= "2720") {
				t.Fatalf("mastercard %s", n)
			}
			if n[0] == '2' {
				mc2++
			}
		case Amex:
			if len(n) != 15 || n[:2] != "34" && n[:2] != "37" {
				t.Fatalf("amex %s", n)
			}
		default:
			t.Fatalf("card %d: provider %s", c.ID, c.Provider)
		}
		byProvider[c.Provider]++
		if len(c.HomeZIP) != 5 {
			t.Fatalf("card %d: home ZIP %q", c.ID, c.HomeZIP)
		}
		if c.Stolen {
			stolen++
			if c.ReportedAt.Before(o.ReportedFrom) || !c.ReportedAt.Before(o.ReportedFrom.Add(o.ReportedSpan)) || c.ReportedAt.Nanosecond() != 0 {
				t.Fatalf("card %d reported at %s", c.ID, c.ReportedAt)
			}
		} else if !c.ReportedAt.IsZero() {
			t.Fatalf("card %d not stolen but reported at %s", c.ID, c.ReportedAt)
		}
	}
	if want := map[Provider]int{Visa: 5000, Mastercard: 3500, Amex: 1500}; !mapsEqualP(byProvider, want) {
		t.Fatalf("providers %v, want %v", byProvider, want)
	}
	if visa13 != 500 || stolen != 1000 {
		t.Fatalf("%d 13-digit Visa (want 500), %d stolen (want 1000)", visa13, stolen)
	}
	if mc2 == 0 || mc2 == 3500 {
		t.Fatalf("%d of 3500 Mastercards in the 2-series", mc2)
	}

	// Uneven weights are rounded by largest remainder and add up.
	o = CardsOptions{Count: 7, Stolen: 0.5, Seed: 1, Shares: []ProviderShare{{Visa, 1}, {Mastercard, 1}, {Amex, 1}}}
	byProvider = map[Provider]int{}
	stolen = 0
	for _, c := range genCards(t, o) {
		byProvider[c.Provider]++
		if c.Stolen {
			stolen++
		}
	}
	if want := map[Provider]int{Visa: 3, Mastercard: 2, Amex: 2}; !mapsEqualP(byProvider, want) || stolen != 4 {
		t.Fatalf("7 cards in thirds: %v, %d stolen", byProvider, stolen)
	}
}

func mapsEqualP(a, b map[Provider]int) bool {
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

// TestCardsDeterministic: the same seed gives the same cards; another seed
// others; the stolen share changes neither the numbers nor, for a larger
// share, the cards already stolen.
func TestCardsDeterministic(t *testing.T) {
	o := DefaultCardsOptions()
	a, b := genCards(t, o), genCards(t, o)
	if !slices.Equal(a, b) {
		t.Fatal("the same options gave different cards")
	}
	o2 := o
	o2.Seed++
	if c := genCards(t, o2); slices.Equal(a, c) {
		t.Fatal("another seed gave the same cards")
	}
	o3 := o
	o3.Stolen = 0.3
	more := genCards(t, o3)
	n := 0
	for i := range a {
		if a[i].Number != more[i].Number || a[i].Provider != more[i].Provider {
			t.Fatalf("card %d: the stolen share changed its number", a[i].ID)
		}
		if a[i].Stolen && !more[i].Stolen {
			t.Fatalf("card %d stolen at 10 %% but not at 30 %%", a[i].ID)
		}
		if more[i].Stolen {
			n++
		}
	}
	if n != 300 {
		t.Fatalf("%d stolen at 30 %%", n)
	}
}

// TestMarkDatasetCards marks the cards of a generated dataset: the ids and
// numbers stay, exactly the share is stolen, the same seed marks the
// same cards.
func TestMarkDatasetCards(t *testing.T) {
	dir, _ := generate(t, Options{Customers: 300, Cards: 500, Transactions: 10, Seed: 5})
	l := load(t, dir)
	var in []TestCard
	for _, c := range slices.Backward(l.cards) { // any order
		in = append(in, TestCard{ID: c.ID, Number: c.Number, HomeZIP: txpipe.ZIP(l.customers[c.CustomerID].Address)})
	}
	o := CardsOptions{Stolen: 0.1, Seed: 9}
	marked, err := MarkCards(in, o)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := MarkCards(in, o)
	if !slices.Equal(marked, again) {
		t.Fatal("marking is not deterministic")
	}
	stolen := 0
	for i, c := range marked {
		src := l.cards[i]
		if c.ID != src.ID || c.Number != strings.ReplaceAll(src.Number, "-", "") || c.HomeZIP == "" {
			t.Fatalf("card %d became %+v (was %+v)", src.ID, c, src)
		}
		if c.Provider != ProviderOf(src.Number) { // the dataset's 16-digit 34/37 numbers are no Amex: other
			t.Fatalf("card %d: provider %s of %s", c.ID, c.Provider, src.Number)
		}
		if c.Stolen {
			stolen++
			if c.ReportedAt.IsZero() {
				t.Fatalf("card %d stolen without a report time", c.ID)
			}
		}
	}
	if stolen != 50 {
		t.Fatalf("%d of 500 stolen, want 50", stolen)
	}
	if _, err := MarkCards(append(in, in[0]), o); err == nil {
		t.Fatal("a card given twice was accepted")
	}
	if _, err := MarkCards([]TestCard{{ID: 1, Number: "12ab"}}, o); err == nil {
		t.Fatal("a bad number was accepted")
	}
}

func TestCardsFile(t *testing.T) {
	cards := genCards(t, CardsOptions{Count: 200, Stolen: 0.25, Seed: 3})
	path := filepath.Join(t.TempDir(), StolenCardsFile)
	if err := WriteCardsFile(path, cards, false); err != nil {
		t.Fatal(err)
	}
	got, err := ReadCardsFile(path)
	if err != nil || !slices.Equal(got, cards) {
		t.Fatalf("round trip: %v", err)
	}
	head, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(head), "card_id,card_number,provider,stolen,reported_at,home_zip\n") {
		t.Fatalf("header: %.80s", head)
	}
	// No overwrite without force; force overwrites.
	err = WriteCardsFile(path, cards[:1], false)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("overwrite without force: %v", err)
	}
	if err := WriteCardsFile(path, cards[:1], true); err != nil {
		t.Fatal(err)
	}
	if got, _ := ReadCardsFile(path); len(got) != 1 {
		t.Fatalf("after --force: %d cards", len(got))
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*")); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}

	// home_zip may be left out; other problems name line and column.
	ok := "card_id,card_number,provider,stolen,reported_at\n1,4111111111111111,visa,true,2025-04-01 00:00:00\n"
	if cards, err := readCards("x.csv", strings.NewReader(ok)); err != nil || len(cards) != 1 || cards[0].ReportedAt != time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC) {
		t.Fatalf("without home_zip: %+v, %v", cards, err)
	}
	hdr := "card_id,card_number,provider,stolen,reported_at,home_zip\n"
	for _, tc := range []struct{ in, want string }{
		{"", "x.csv:1: empty file"},
		{"card_id,card_number\n", "x.csv:1: column provider: missing column"},
		{hdr + "1,4111111111111111,visa,false,,10001\nx,4111111111111111,visa,false,,1\n", "x.csv:3: column card_id:"},
		{hdr + "1,4111111111111111,visa,false,,10001\n1,4111111111111111,visa,false,,1\n", "x.csv:3: column card_id: card 1 is listed twice (first on line 2)"},
		{hdr + "1,41111x1111111111,visa,false,,1\n", "x.csv:2: column card_number:"},
		{hdr + "1,4111111111111111,diners,false,,1\n", "x.csv:2: column provider:"},
		{hdr + "1,4111111111111111,visa,yes,,1\n", "x.csv:2: column stolen:"},
		{hdr + "1,4111111111111111,visa,true,,1\n", "x.csv:2: column reported_at: a stolen card needs"},
		{hdr + "1,4111111111111111,visa,true,2025-02-30 00:00:00,1\n", "x.csv:2: column reported_at:"},
		{hdr + "1,4111111111111111,visa,false,2025-02-03 00:00:00,1\n", "x.csv:2: column reported_at:"},
		{hdr + "1,4111111111111111,visa,false,,1,extra\n", "x.csv:2: the row has 7 fields"},
		{hdr + "1,\"4111,visa,false,,1\n", "x.csv:2:"},
	} {
		_, err := readCards("x.csv", strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.in, err, tc.want)
		}
	}
	// Card numbers never appear whole in an error.
	_, err = readCards("x.csv", strings.NewReader(hdr+"1,4111111111111111x,visa,false,,1\n"))
	if err == nil || strings.Contains(err.Error(), "411111111111") {
		t.Fatalf("unmasked number: %v", err)
	}
}

func TestCardsOptionsErrors(t *testing.T) {
	base := DefaultCardsOptions()
	for name, mod := range map[string]func(*CardsOptions){
		"negative count": func(o *CardsOptions) { o.Count = -1 },
		"stolen > 1":     func(o *CardsOptions) { o.Stolen = 1.5 },
		"stolen NaN":     func(o *CardsOptions) { o.Stolen = math.NaN() },
		"visa13":         func(o *CardsOptions) { o.Visa13 = -0.1 },
		"provider":       func(o *CardsOptions) { o.Shares = []ProviderShare{{Discover, 1}} },
		"zero weights":   func(o *CardsOptions) { o.Shares = []ProviderShare{{Visa, 0}} },
		"twice":          func(o *CardsOptions) { o.Shares = []ProviderShare{{Visa, 1}, {Visa, 2}} },
		"span":           func(o *CardsOptions) { o.ReportedSpan = -time.Second },
	} {
		o := base
		mod(&o)
		if _, err := GenerateCards(o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if s, err := ParseShares("visa=60, Mastercard=30,amex=10"); err != nil || !slices.Equal(s, []ProviderShare{{Visa, 60}, {Mastercard, 30}, {Amex, 10}}) {
		t.Fatalf("ParseShares: %v, %v", s, err)
	}
	for _, bad := range []string{"visa", "visa=x", ""} {
		if _, err := ParseShares(bad); err == nil {
			t.Errorf("ParseShares(%q): no error", bad)
		}
	}
}
