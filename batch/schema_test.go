package batch

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/txpipe/txpipe"
)

func TestCardIndex(t *testing.T) {
	for name, ids := range map[string][]int64{
		"dense":  {3, 1, 7, 2},
		"sparse": {5, 1 << 40, 9, 77777777},
	} {
		cards := make([]txpipe.Card, len(ids))
		for i, id := range ids {
			cards[i].ID = id
		}
		x := newCardIndex(cards)
		if (x.dense != nil) != (name == "dense") {
			t.Errorf("%s: dense table %v", name, x.dense != nil)
		}
		for i, id := range ids {
			if k, ok := x.get(id); !ok || k != i {
				t.Errorf("%s: get(%d) = %d, %v; want %d", name, id, k, ok, i)
			}
		}
		for _, id := range []int64{0, -1, 4, 6, 8, 1<<40 + 1, 1 << 62} {
			if k, ok := x.get(id); ok {
				t.Errorf("%s: get(%d) = %d, want no card", name, id, k)
			}
		}
	}
}

// appendTimestamp formats one timestamp.
func appendTimestamp(dst []byte, ts arrow.Timestamp) []byte {
	var f tsFormat
	return f.append(dst, ts)
}

// The timestamps are parsed and printed by arithmetic: as package time
// does, over every year a timestamp can have.
func TestTimestampsAsPackageTime(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	lo := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	hi := time.Date(9999, 12, 31, 23, 59, 59, 999999, time.UTC).UnixMicro()
	for i := range 200000 {
		us := lo + rng.Int64N(hi-lo+1)
		switch i {
		case 0:
			us = lo
		case 1:
			us = hi
		case 2:
			us = -1
		case 3:
			us = 0
		}
		want := time.UnixMicro(us).UTC().Format(txpipe.TimestampLayout)
		if got := string(appendTimestamp(nil, arrow.Timestamp(us))); got != want {
			t.Fatalf("appendTimestamp(%d) = %q, want %q", us, got, want)
		}
		ts, ok := parseTimestamp([]byte(want))
		wt, _ := txpipe.ParseTimestamp(want)
		if !ok || int64(ts) != wt.UnixMicro() {
			t.Fatalf("parseTimestamp(%q) = %d, %v; want %d", want, ts, ok, wt.UnixMicro())
		}
	}
	// One formatter over rising timestamps (its date remembered), across
	// days, years and the epoch.
	var f tsFormat
	us := time.Date(1969, 12, 30, 23, 0, 0, 0, time.UTC).UnixMicro()
	for range 100000 {
		us += rng.Int64N(7200e6)
		if rng.IntN(1000) == 0 {
			us += rng.Int64N(400 * 86400e6)
		}
		want := time.UnixMicro(us).UTC().Format(txpipe.TimestampLayout)
		if got := string(f.append(nil, arrow.Timestamp(us))); got != want {
			t.Fatalf("tsFormat.append(%d) = %q, want %q", us, got, want)
		}
	}
	// Every day of some years, and the impossible ones.
	for _, y := range []int{0, 1, 4, 100, 400, 1600, 1900, 1970, 2000, 2024, 2025, 2100, 9999} {
		for m := 1; m <= 12; m++ {
			for d := 1; d <= 32; d++ {
				s := time.Date(y, time.Month(m), 1, 0, 0, 0, 0, time.UTC).Format("2006-01") + "-" + string(rune('0'+d/10)) + string(rune('0'+d%10)) + " 12:34:56"
				want, wok := txpipe.ParseTimestamp(s)
				got, gok := parseTimestamp([]byte(s))
				if gok != wok || gok && int64(got) != want.UnixMicro() {
					t.Fatalf("parseTimestamp(%q) = %d, %v; ParseTimestamp %v, %v", s, got, gok, want, wok)
				}
			}
		}
	}
	if got, want := string(appendTimestamp(nil, arrow.Timestamp(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()))), "10000-01-01 00:00:00"; got != want {
		t.Errorf("year 10000: %q, want %q", got, want)
	}
}
