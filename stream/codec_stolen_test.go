package stream

import (
	"strings"
	"testing"
	"time"

	"github.com/txpipe/txpipe"
)

func TestStolenRoundTrip(t *testing.T) {
	for _, s := range []txpipe.StolenCard{
		{CardID: 1, ReportedAt: time.Date(2025, 4, 1, 7, 59, 54, 0, time.UTC)},
		{CardID: 1<<63 - 1, ReportedAt: time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)},
		{CardID: 42, ReportedAt: time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)},
	} {
		b := EncodeStolen(nil, s)
		got, err := DecodeStolen(b)
		if err != nil || got != s {
			t.Fatalf("%s: %+v, %v; want %+v", b, got, err, s)
		}
		rec := StolenRecord(TopicsFor("t"), s)
		if got, err := DecodeStolenRecord(rec.Key, rec.Value); err != nil || got != s {
			t.Fatalf("record %s=%s: %+v, %v", rec.Key, rec.Value, got, err)
		}
	}
	// The value is exactly the documented form; times are UTC, whole seconds.
	at := time.Date(2025, 4, 1, 9, 59, 54, 999, time.FixedZone("CEST", 2*3600))
	if got := string(EncodeStolen(nil, txpipe.StolenCard{CardID: 17, ReportedAt: at})); got != `{"card_id":17,"reported_at":"2025-04-01 07:59:54"}` {
		t.Fatalf("EncodeStolen = %s", got)
	}
	// A cleared card is a tombstone keyed by its id.
	rec := StolenRecord(TopicsFor("t"), txpipe.StolenCard{CardID: 17, Cleared: true})
	if rec.Topic != "txpipe.stolen-cards" || string(rec.Key) != "17" || rec.Value != nil {
		t.Fatalf("tombstone: %+v", rec)
	}
	if got, err := DecodeStolenRecord(rec.Key, nil); err != nil || got != (txpipe.StolenCard{CardID: 17, Cleared: true}) {
		t.Fatalf("tombstone decodes to %+v, %v", got, err)
	}
}

func TestDecodeStolenStrict(t *testing.T) {
	ok := `{"card_id":17,"reported_at":"2025-04-01 07:59:54"}`
	if _, err := DecodeStolen([]byte(` { "reported_at" : "2025-04-01 07:59:54" , "card_id" : 17 } `)); err != nil {
		t.Fatalf("spaces and key order: %v", err)
	}
	for _, bad := range []string{
		``, `null`, `[]`, `{}`, ok[:len(ok)-1], ok + `x`,
		`{"card_id":17}`,
		`{"reported_at":"2025-04-01 07:59:54"}`,
		`{"card_id":"17","reported_at":"2025-04-01 07:59:54"}`,
		`{"card_id":0,"reported_at":"2025-04-01 07:59:54"}`,
		`{"card_id":-3,"reported_at":"2025-04-01 07:59:54"}`,
		`{"card_id":017,"reported_at":"2025-04-01 07:59:54"}`,
		`{"card_id":1.5,"reported_at":"2025-04-01 07:59:54"}`,
		`{"card_id":1e3,"reported_at":"2025-04-01 07:59:54"}`,
		`{"card_id":null,"reported_at":"2025-04-01 07:59:54"}`,
		`{"card_id":99999999999999999999,"reported_at":"2025-04-01 07:59:54"}`,
		`{"card_id":17,"reported_at":"2025-04-31 07:59:54"}`,
		`{"card_id":17,"reported_at":"2025-04-01T07:59:54Z"}`,
		`{"card_id":17,"reported_at":1743494394}`,
		`{"card_id":17,"reported_at":null}`,
		`{"card_id":17,"card_id":18,"reported_at":"2025-04-01 07:59:54"}`,
		`{"card_id":17,"reported_at":"2025-04-01 07:59:54","reported_at":"2025-04-01 07:59:55"}`,
		`{"card_id":17,"reported_at":"2025-04-01 07:59:54","extra":1}`,
		`{"card_id":17,"reported_at":{"x":1}}`,
	} {
		if s, err := DecodeStolen([]byte(bad)); err == nil {
			t.Errorf("DecodeStolen(%s) = %+v, want an error", bad, s)
		}
	}
	for _, tc := range []struct{ key, value string }{
		{"x", ok}, {"", ok}, {"-17", ok}, {"18", ok}, {"017x", ok},
	} {
		if s, err := DecodeStolenRecord([]byte(tc.key), []byte(tc.value)); err == nil {
			t.Errorf("DecodeStolenRecord(%q, %s) = %+v, want an error", tc.key, tc.value, s)
		}
	}
	_, err := DecodeStolenRecord([]byte("18"), []byte(ok))
	if err == nil || !strings.Contains(err.Error(), "key 18 but card_id 17") {
		t.Fatalf("a record under another card's key: %v", err)
	}
}

func FuzzDecodeStolen(f *testing.F) {
	f.Add([]byte(`{"card_id":17,"reported_at":"2025-04-01 07:59:54"}`))
	f.Add([]byte(`{"reported_at":"2025-02-29 07:59:54","card_id":1}`))
	f.Add([]byte(`{"card_id":17,"reported_at":"\u0032025-04-01 07:59:54"}`))
	f.Add([]byte(`{"card_id":9223372036854775807,"reported_at":"0000-01-01 00:00:00"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeStolen(b)
		if err != nil {
			if s != (txpipe.StolenCard{}) {
				t.Fatalf("an error with a value: %+v", s)
			}
			return
		}
		if s.CardID <= 0 || s.Cleared || s.ReportedAt.Location() != time.UTC || s.ReportedAt.Nanosecond() != 0 {
			t.Fatalf("decoded %q to %+v", b, s)
		}
		enc := EncodeStolen(nil, s)
		again, err := DecodeStolen(enc)
		if err != nil || again != s {
			t.Fatalf("re-encoding %q as %s: %+v, %v", b, enc, again, err)
		}
		if back := EncodeStolen(nil, again); string(back) != string(enc) {
			t.Fatalf("encoding is not canonical: %s then %s", enc, back)
		}
	})
}
