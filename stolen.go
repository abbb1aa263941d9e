package txpipe

import "time"

// StolenCard is a card's stolen status, master data like its limit: the
// card was reported stolen at ReportedAt or, when Cleared, is no longer
// reported (the report was withdrawn or the card replaced).
//
// On Kafka it is a record of the stolen-cards topic keyed by the card id:
// {"card_id":N,"reported_at":"YYYY-MM-DD HH:MM:SS"}, or a tombstone (no
// value) for a cleared card.
type StolenCard struct {
	CardID int64
	// ReportedAt is when the card was reported stolen, in UTC and whole
	// seconds (the topic's precision); zero when Cleared.
	ReportedAt time.Time
	Cleared    bool
}

// StolenAt reports whether a payment at event time t is on a stolen
// card: the card is reported, at or before t (a payment in the same
// second as the report counts as after it).
func (s StolenCard) StolenAt(t time.Time) bool {
	return !s.Cleared && !t.Before(s.ReportedAt)
}

// ReportedAtOf returns t as a report time: UTC, truncated to the second.
func ReportedAtOf(t time.Time) time.Time { return t.UTC().Truncate(time.Second) }
