package txpipe

import (
	"testing"
	"time"
)

func TestStolenAt(t *testing.T) {
	at := time.Date(2025, 4, 2, 10, 0, 0, 0, time.UTC)
	s := StolenCard{CardID: 7, ReportedAt: at}
	for _, tc := range []struct {
		t    time.Time
		want bool
	}{
		{at.Add(-time.Second), false},
		{at, true}, // the same second counts as after the report
		{at.Add(time.Hour), true},
	} {
		if got := s.StolenAt(tc.t); got != tc.want {
			t.Errorf("StolenAt(%s) = %v", tc.t, got)
		}
	}
	if (StolenCard{CardID: 7, ReportedAt: at, Cleared: true}).StolenAt(at.Add(time.Hour)) {
		t.Error("a cleared card is stolen")
	}
	if got := ReportedAtOf(time.Date(2025, 4, 2, 12, 0, 0, 999, time.FixedZone("X", 2*3600))); got != at {
		t.Errorf("ReportedAtOf = %s", got)
	}
}
