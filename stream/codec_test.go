package stream

import (
	"slices"
	"testing"

	"github.com/txpipe/txpipe"
)

func TestRejectedRoundTrip(t *testing.T) {
	in := txpipe.Rejected{
		Raw:    txpipe.RawTransaction{TransactionID: "30003", CardID: "x12", Merchant: "Pineda, \"and\" Sons", Timestamp: "2025-04-01 07:59:54", Amount: "25.87", Location: "5852 Reyes Landing,\tAlbany, NY 13574\n", Type: "purchase", RelatedID: ""},
		Reason: txpipe.RejectCardID, Detail: `card_id "x12" is not a positive integer`, Source: "transactions.csv:9 (t/1/2)", Seq: 9,
	}
	b := EncodeRejected(nil, in)
	out, err := DecodeRejected(b)
	if err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if out != in {
		t.Fatalf("round trip:\n%+v\n%+v", out, in)
	}
}

func TestDecodeTransactionForms(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want txpipe.RawTransaction
	}{
		// txpipe's producer: every field a string.
		{`{"transaction_id":"1","card_id":"26","merchant_name":"Barrett LLC","timestamp":"2025-04-01 01:21:09","amount":"131.76","location":"4395 Brenda Lake, Queens, NY 10859","transaction_type":"bill_payment","related_transaction_id":null}`,
			txpipe.RawTransaction{TransactionID: "1", CardID: "26", Merchant: "Barrett LLC", Timestamp: "2025-04-01 01:21:09", Amount: "131.76", Location: "4395 Brenda Lake, Queens, NY 10859", Type: "bill_payment"}},
		// the Python reference's producer: numbers, null, other key order, spaces.
		{`{ "card_id": 26, "transaction_id": 1, "amount": -12.5, "timestamp": "2025-04-01 01:21:09", "merchant_name": "A \"B\" \u00e9", "location": "x NY 10859", "transaction_type": "refund", "related_transaction_id": 7 , "extra": true}`,
			txpipe.RawTransaction{TransactionID: "1", CardID: "26", Merchant: `A "B" é`, Timestamp: "2025-04-01 01:21:09", Amount: "-12.5", Location: "x NY 10859", Type: "refund", RelatedID: "7"}},
		// a numeric timestamp: Unix seconds, or milliseconds.
		{`{"transaction_id":1,"card_id":2,"timestamp":1743470469,"amount":1}`, txpipe.RawTransaction{TransactionID: "1", CardID: "2", Timestamp: "2025-04-01 01:21:09", Amount: "1"}},
		{`{"transaction_id":1,"card_id":2,"timestamp":1743470469000,"amount":1}`, txpipe.RawTransaction{TransactionID: "1", CardID: "2", Timestamp: "2025-04-01 01:21:09", Amount: "1"}},
	} {
		got, err := DecodeTransaction([]byte(tc.in))
		if err != nil || got != tc.want {
			t.Errorf("DecodeTransaction(%s) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{``, `[]`, `{`, `{"a":1`, `{"transaction_id":{"x":1}}`, `{"transaction_id":1,}`, `{"transaction_id":NaN}`, `{} x`, `{}`, `{"a" 1}`, `"x"`} {
		if _, err := DecodeTransaction([]byte(bad)); err == nil {
			t.Errorf("DecodeTransaction(%q): no error", bad)
		}
	}
}

func FuzzDecodeTransaction(f *testing.F) {
	f.Add([]byte(`{"transaction_id":"1","card_id":"26","amount":"1.00","related_transaction_id":null}`))
	f.Add([]byte(`{"a":"\u00e9\ud83d\ude00\n"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		raw, err := DecodeTransaction(b)
		if err != nil {
			return
		}
		again, err := DecodeTransaction(EncodeTransaction(nil, raw))
		if err != nil || again != raw {
			t.Fatalf("re-encoding %q: %+v, %v", b, again, err)
		}
	})
}

func TestStateRoundTrip(t *testing.T) {
	for _, s := range []txpipe.CardState{{Pending: -1234, Last: -5}, {Pending: 5, Last: 1743465600}} {
		got, err := DecodeState(EncodeState(nil, s))
		if err != nil || got.Pending != s.Pending || got.Last != s.Last {
			t.Fatalf("state round trip %+v: %+v, %v", s, got, err)
		}
	}
	if _, err := DecodeState([]byte(`{"pending":1.00}`)); err == nil {
		t.Fatal("a state without its last event time was accepted")
	}
}

func TestSegmentRoundTrip(t *testing.T) {
	in := []segEntry{{card: 1, id: 2, at: 1743465600}, {card: 1 << 40, id: 1<<62 + 5, at: -62135596800}, {card: 7, id: 1, at: 0}}
	got, err := decodeSegment(encodeSegment(in))
	if err != nil || !slices.Equal(got, in) {
		t.Fatalf("segment round trip: %v, %v", got, err)
	}
	for _, bad := range [][]byte{nil, {2}, {1, 0x80}, {1, 1, 2}} {
		if _, err := decodeSegment(bad); err == nil {
			t.Errorf("segment %x accepted", bad)
		}
	}
}
