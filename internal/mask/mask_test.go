package mask

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestCard(t *testing.T) {
	for in, want := range map[string]string{
		"6466-8783-6394-0621": "****-****-****-0621",
		"4111111111111111":    "************1111",
		"4111 1111 1111 1111": "**** **** **** 1111",
		"1234":                "1234",
		"12":                  "12",
		"x4111111111111111":   "*************1111",
	} {
		if got := Card(in); got != want {
			t.Errorf("Card(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDigits(t *testing.T) {
	for in, want := range map[string]string{
		"card 6466-8783-6394-0621 declined":    "card ****-****-****-0621 declined",
		"n=4111111111111111,":                  "n=************1111,",
		"4111 1111 1111 1111":                  "**** **** **** 1111",
		"amex 3782-822463-10005":               "amex ****-******-*0005",
		"ts 2025-04-09 12:00:00 id 1000001":    "ts 2025-04-09 12:00:00 id 1000001",
		"ids 1000001 1000002":                  "ids 1000001 1000002",
		"short 123456789012":                   "short 123456789012",
		"too long 12345678901234567890":        "too long 12345678901234567890",
		"partitions 0 1 2 3 4 5 6 7 8 9 10 11": "partitions 0 1 2 3 4 5 6 7 8 9 10 11",
		"":                                     "",
	} {
		if got := Digits(in); got != want {
			t.Errorf("Digits(%q) = %q, want %q", in, got, want)
		}
		if leaks := Leaks(Digits(in)); len(leaks) > 0 {
			t.Errorf("Leaks(Digits(%q)) = %q", in, leaks)
		}
	}
	if got := Leaks("a 6466-8783-6394-0621 b 4111111111111111"); len(got) != 2 {
		t.Errorf("Leaks found %q, want two numbers", got)
	}
}

type stringer struct{}

func (stringer) String() string { return "number 4111111111111111" }

// TestHandler logs card numbers every way slog takes them: none is written.
func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewHandler(slog.NewTextHandler(&buf, nil)))
	log = log.With("card", "6466-8783-6394-0621").WithGroup("g")
	log.Info("declined 4111 1111 1111 1111",
		"err", errors.New("bad line: 5300-0012-2594-1883"),
		"any", stringer{},
		"n", int64(4111111111111111),
		slog.Group("inner", "num", "3782-822463-10005"),
		"ok", "nothing here 12345")
	out := buf.String()
	if leaks := Leaks(out); len(leaks) > 0 {
		t.Fatalf("log line leaks %q:\n%s", leaks, out)
	}
	for _, want := range []string{"****-****-****-0621", "**** **** **** 1111", "****-****-****-1883", "number ************1111", "nothing here 12345"} {
		if !strings.Contains(out, want) {
			t.Errorf("log line lacks %q:\n%s", want, out)
		}
	}
}
