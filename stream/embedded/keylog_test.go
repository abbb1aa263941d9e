package embedded

import (
	"testing"
	"time"
)

var (
	commit = []byte{0, 0, 0, 1}
	abort  = []byte{0, 0, 0, 0}
)

// TestKeyLogNeeded: the oldest record still needed is the latest committed
// value of a key, a tombstone younger than the hold, or a record of a
// transaction still open; aborted records and superseded values are not.
func TestKeyLogNeeded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	k := newKeyLog([16]byte{1}, 0)
	put := func(key string, tomb bool) { k.follow(k.next, []byte(key), tomb, false, false, 0, now) }
	txn := func(pid int64, key string) { k.follow(k.next, []byte(key), false, false, true, pid, now) }
	end := func(pid int64, marker []byte) { k.follow(k.next, marker, false, true, false, pid, now) }

	put("a", false) // 0
	put("b", false) // 1
	put("a", false) // 2: a's value at 0 is superseded
	if got := k.needed(now); got != 1 {
		t.Fatalf("needed %d, want 1 (b's only value)", got)
	}
	put("b", false) // 3
	if got := k.needed(now); got != 2 {
		t.Fatalf("needed %d, want 2", got)
	}
	// A transaction that aborts leaves the values before it needed.
	txn(7, "a") // 4
	txn(7, "b") // 5
	if got := k.needed(now); got != 2 {
		t.Fatalf("open transaction: needed %d, want 2", got)
	}
	end(7, abort) // 6
	if got := k.needed(now); got != 2 || k.live["a"] != 2 || k.live["b"] != 3 {
		t.Fatalf("after an abort: needed %d, live %v", got, k.live)
	}
	// One that commits supersedes them; its first record is needed
	// until its marker is read.
	txn(8, "a")     // 7
	put("c", false) // 8
	txn(8, "b")     // 9
	if got := k.needed(now); got != 2 {
		t.Fatalf("open transaction of a and b: needed %d, want 2", got)
	}
	end(8, commit) // 10
	if got := k.needed(now); got != 7 {
		t.Fatalf("after the commit: needed %d, want 7", got)
	}
	// A tombstone is held for TombstoneHold, then nothing of its key is needed.
	put("a", true) // 11: a deleted
	put("b", false)
	put("c", false) // 13
	if got := k.needed(now); got != 11 {
		t.Fatalf("tombstone held: needed %d, want 11", got)
	}
	if got := k.needed(now.Add(TombstoneHold)); got != 12 {
		t.Fatalf("tombstone past its hold: needed %d, want 12", got)
	}
	if _, ok := k.dead["a"]; ok {
		t.Fatal("a tombstone past its hold is still followed")
	}
	// Nothing live: everything read may go.
	put("b", true)
	put("c", true)
	if got := k.needed(now.Add(2 * TombstoneHold)); got != k.next {
		t.Fatalf("all deleted: needed %d, want %d", got, k.next)
	}
}

func TestClassify(t *testing.T) {
	s := func(v string) *string { return &v }
	for _, tc := range []struct {
		name string
		cfg  map[string]*string
		want topicKind
	}{
		{"transactions", nil, kindBounded},
		{"transactions.validated", map[string]*string{"retention.ms": s("3600000")}, kindBounded},
		{"txpipe.cards", map[string]*string{"cleanup.policy": s("compact")}, kindCompact},
		{"x", map[string]*string{"cleanup.policy": s("compact,delete")}, kindCompact},
		{"transactions.card-state", map[string]*string{"cleanup.policy": s("delete"), "retention.ms": s("-1")}, kindTrimmed},
		{"txpipe.producer-positions", map[string]*string{"cleanup.policy": s("delete"), "retention.ms": s("-1")}, kindTrimmed},
		{"archive", map[string]*string{"retention.ms": s("-1")}, kindKept},
		{".card-state", map[string]*string{"retention.ms": s("-1")}, kindKept},
		{"transactions.card-state", nil, kindBounded}, // not kept whole by its creator: no reason to trim
	} {
		if got := classify(tc.name, tc.cfg); got != tc.want {
			t.Errorf("classify(%s, %v) = %d, want %d", tc.name, tc.cfg, got, tc.want)
		}
	}
	if got := DefaultRetention().wantConfigs(); got["retention.ms"] != "86400000" || got["retention.bytes"] != "33554432" {
		t.Fatalf("default configs %v", got)
	}
	if got := (Retention{Bytes: 10}).wantConfigs(); got["retention.ms"] == "-1" {
		t.Fatal("no bound by age must not read as kept whole")
	}
}
