package stream

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/txpipe/txpipe"
)

// The wire format is flat JSON objects whose keys are the CSV column names.
// Encoding and decoding are hand-written: they run once per record on the
// hot path and allocate little.

// knownKeys are the keys of txpipe's records, interned: looking one up
// does not allocate.
var knownKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"transaction_id", "card_id", "merchant_name", "timestamp", "amount", "location", "transaction_type",
		"related_transaction_id", "status", "pending_balance", "decline_reason", "seq", "reason", "detail", "source",
		"pending", "last", "validated_next", "customer_id", "card_type_id", "card_number", "expiration_date",
		"credit_limit", "current_balance", "issue_date", "name", "phone_number", "address", "email", "credit_score",
		"annual_income", "event_date_origin", "reported_at", "position", "at",
	} {
		m[k] = k
	}
	return m
}()

// internKey returns key as a string, without allocating for a known one.
func internKey(key []byte) string {
	if k, ok := knownKeys[string(key)]; ok { // the lookup does not allocate
		return k
	}
	return string(key)
}

// flatObject walks a flat JSON object, calling fn with each key and its
// value: strings unescaped, numbers as written, true/false as written and
// null as isNull. Nested values are an error.
func flatObject(b []byte, fn func(key string, val []byte, isString, isNull bool) error) error {
	var scratch []byte
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errors.New("not a JSON object")
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		if skipWS(b, i+1) != len(b) {
			return errors.New("trailing data after the JSON object")
		}
		return nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return fmt.Errorf("expected a key at byte %d", i)
		}
		key, next, err := readString(b, i, nil)
		if err != nil {
			return err
		}
		k := internKey(key)
		i = skipWS(b, next)
		if i >= len(b) || b[i] != ':' {
			return fmt.Errorf("expected ':' at byte %d", i)
		}
		i = skipWS(b, i+1)
		if i >= len(b) {
			return errors.New("unexpected end of JSON")
		}
		switch c := b[i]; {
		case c == '"':
			val, next, err := readString(b, i, scratch[:0])
			if err != nil {
				return err
			}
			if len(val) > 0 && &val[0] != &b[i+1] { // unescaped into scratch: reuse it
				scratch = val[:0]
			}
			if err := fn(k, val, true, false); err != nil {
				return err
			}
			i = next
		case c == '{' || c == '[':
			return fmt.Errorf("field %q: nested values are not accepted", k)
		default:
			j := i
			for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ' ' && b[j] != '\n' && b[j] != '\t' && b[j] != '\r' {
				j++
			}
			lit := b[i:j]
			switch {
			case string(lit) == "null":
				err = fn(k, nil, false, true)
			case string(lit) == "true" || string(lit) == "false" || isJSONNumber(lit):
				err = fn(k, lit, false, false)
			default:
				return fmt.Errorf("field %q: invalid value %q", k, lit)
			}
			if err != nil {
				return err
			}
			i = j
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return errors.New("unexpected end of JSON")
		}
		if b[i] == '}' {
			if skipWS(b, i+1) != len(b) {
				return errors.New("trailing data after the JSON object")
			}
			return nil
		}
		if b[i] != ',' {
			return fmt.Errorf("expected ',' or '}' at byte %d", i)
		}
		i = skipWS(b, i+1)
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

func isJSONNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i, digits = i+1, digits+1
	}
	if digits == 0 {
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i, d = i+1, d+1
		}
		if d == 0 {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i, d = i+1, d+1
		}
		if d == 0 {
			return false
		}
	}
	return i == len(b)
}

// readString reads the JSON string starting at b[i] == '"'. Without escapes
// it returns a slice of b; otherwise it unescapes into scratch.
func readString(b []byte, i int, scratch []byte) ([]byte, int, error) {
	start := i + 1
	for j := start; j < len(b); j++ {
		switch b[j] {
		case '"':
			return b[start:j], j + 1, nil
		case '\\':
			return unescape(b, start, scratch)
		}
		if b[j] < 0x20 {
			return nil, 0, fmt.Errorf("control character in string at byte %d", j)
		}
	}
	return nil, 0, errors.New("unterminated string")
}

func unescape(b []byte, start int, out []byte) ([]byte, int, error) {
	for j := start; j < len(b); j++ {
		c := b[j]
		switch {
		case c == '"':
			return out, j + 1, nil
		case c < 0x20:
			return nil, 0, fmt.Errorf("control character in string at byte %d", j)
		case c != '\\':
			out = append(out, c)
			continue
		}
		j++
		if j >= len(b) {
			break
		}
		switch b[j] {
		case '"', '\\', '/':
			out = append(out, b[j])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if j+4 >= len(b) {
				return nil, 0, errors.New("short \\u escape")
			}
			r, err := strconv.ParseUint(string(b[j+1:j+5]), 16, 32)
			if err != nil {
				return nil, 0, fmt.Errorf("bad \\u escape at byte %d", j)
			}
			j += 4
			rr := rune(r)
			if rr >= 0xD800 && rr < 0xDC00 && j+6 < len(b) && b[j+1] == '\\' && b[j+2] == 'u' {
				if lo, err := strconv.ParseUint(string(b[j+3:j+7]), 16, 32); err == nil && lo >= 0xDC00 && lo < 0xE000 {
					rr = (rr-0xD800)<<10 + (rune(lo) - 0xDC00) + 0x10000
					j += 6
				}
			}
			out = utf8.AppendRune(out, rr)
		default:
			return nil, 0, fmt.Errorf("bad escape at byte %d", j)
		}
	}
	return nil, 0, errors.New("unterminated string")
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	clean := 0 // the leading bytes that need no escape go in one copy
	for clean < len(s) && s[clean] >= 0x20 && s[clean] != '"' && s[clean] != '\\' {
		clean++
	}
	b = append(b, s[:clean]...)
	for i := clean; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// EncodeTransaction appends the wire form of a raw transaction (every field
// a string, exactly as written; related_transaction_id null when empty).
func EncodeTransaction(b []byte, r txpipe.RawTransaction) []byte {
	b = append(b, `{"transaction_id":`...)
	b = appendString(b, r.TransactionID)
	b = append(b, `,"card_id":`...)
	b = appendString(b, r.CardID)
	b = append(b, `,"merchant_name":`...)
	b = appendString(b, r.Merchant)
	b = append(b, `,"timestamp":`...)
	b = appendString(b, r.Timestamp)
	b = append(b, `,"amount":`...)
	b = appendString(b, r.Amount)
	b = append(b, `,"location":`...)
	b = appendString(b, r.Location)
	b = append(b, `,"transaction_type":`...)
	b = appendString(b, r.Type)
	b = append(b, `,"related_transaction_id":`...)
	if r.RelatedID == "" {
		b = append(b, "null"...)
	} else {
		b = appendString(b, r.RelatedID)
	}
	if r.Origin != "" {
		b = append(b, `,"event_date_origin":`...)
		b = appendString(b, r.Origin)
	}
	return append(b, '}')
}

// DecodeTransaction reads a transaction as txpipe's producer or the Python
// reference's producer writes it: ids, amounts and timestamps as strings or
// numbers (a numeric timestamp is Unix seconds, or milliseconds when above
// 10^11), null for an empty related id. Unknown fields are ignored. A value
// that is not JSON comes back as an error; field values are judged later.
func DecodeTransaction(b []byte) (txpipe.RawTransaction, error) {
	return decodeTransaction(b, false)
}

// decodeTransaction is DecodeTransaction; with alias, strings without
// escapes share b's memory instead of being copied, so b must never be
// modified afterwards (the validator's fetched records are not).
func decodeTransaction(b []byte, alias bool) (txpipe.RawTransaction, error) {
	var r txpipe.RawTransaction
	seen := 0
	err := flatObject(b, func(key string, val []byte, isString, isNull bool) error {
		var dst *string
		switch key {
		case "transaction_id":
			dst = &r.TransactionID
		case "card_id":
			dst = &r.CardID
		case "merchant_name":
			dst = &r.Merchant
		case "timestamp":
			if !isString && !isNull {
				ts, err := numericTimestamp(val)
				if err != nil {
					return err
				}
				r.Timestamp = ts
				seen++
				return nil
			}
			dst = &r.Timestamp
		case "amount":
			dst = &r.Amount
		case "location":
			dst = &r.Location
		case "transaction_type":
			dst = &r.Type
		case "related_transaction_id":
			dst = &r.RelatedID
		case "event_date_origin":
			dst = &r.Origin
		default:
			return nil
		}
		seen++
		switch {
		case isNull:
		case alias && within(b, val):
			*dst = unsafe.String(&val[0], len(val))
		default:
			*dst = string(val)
		}
		return nil
	})
	if err == nil && seen == 0 {
		err = errors.New("no transaction fields in the JSON object")
	}
	return r, err
}

// within reports whether val is a non-empty part of b's memory (a string
// read without escapes) rather than an unescaped copy.
func within(b, val []byte) bool {
	if len(val) == 0 || len(b) == 0 {
		return false
	}
	p, lo := uintptr(unsafe.Pointer(&val[0])), uintptr(unsafe.Pointer(&b[0]))
	return p >= lo && p < lo+uintptr(len(b))
}

func numericTimestamp(val []byte) (string, error) {
	f, err := strconv.ParseFloat(string(val), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e15 {
		return string(val), nil // left as written: judged bad_timestamp later
	}
	if f > 1e11 {
		f /= 1000
	}
	sec := math.Floor(f)
	return time.Unix(int64(sec), 0).UTC().Format(txpipe.TimestampLayout), nil
}

// EncodeResult appends the wire form of a judged transaction on the
// validated topic: the input fields (ids and money as JSON numbers), the
// decision and the input order.
func EncodeResult(b []byte, r txpipe.Result) []byte {
	b = append(b, `{"transaction_id":`...)
	b = strconv.AppendInt(b, r.ID, 10)
	b = append(b, `,"card_id":`...)
	b = strconv.AppendInt(b, r.CardID, 10)
	b = append(b, `,"merchant_name":`...)
	b = appendString(b, r.Merchant)
	b = append(b, `,"timestamp":"`...)
	b = txpipe.AppendTimestamp(b, r.Timestamp)
	b = append(b, `","amount":`...)
	b = r.Amount.Append(b)
	b = append(b, `,"location":`...)
	b = appendString(b, r.Location)
	b = append(b, `,"transaction_type":`...)
	b = appendString(b, r.Type)
	b = append(b, `,"related_transaction_id":`...)
	if r.RelatedID == "" {
		b = append(b, "null"...)
	} else {
		b = appendString(b, r.RelatedID)
	}
	b = append(b, `,"status":"`...)
	b = append(b, r.Status...)
	b = append(b, `","pending_balance":`...)
	b = r.PendingBalance.Append(b)
	b = append(b, `,"decline_reason":"`...)
	b = append(b, r.DeclineReason...)
	b = append(b, `","seq":`...)
	b = strconv.AppendInt(b, r.Seq, 10)
	if !r.Origin.IsZero() {
		b = append(b, `,"event_date_origin":"`...)
		b = r.Origin.AppendFormat(b, txpipe.OriginLayout)
		b = append(b, '"')
	}
	return append(b, '}')
}

// DecodeResult reads a record of the validated topic.
func DecodeResult(b []byte) (txpipe.Result, error) {
	var raw txpipe.RawTransaction
	var res txpipe.Result
	var balance, seq string
	err := flatObject(b, func(key string, val []byte, isString, isNull bool) error {
		if isNull {
			return nil
		}
		v := string(val)
		switch key {
		case "transaction_id":
			raw.TransactionID = v
		case "card_id":
			raw.CardID = v
		case "merchant_name":
			raw.Merchant = v
		case "timestamp":
			raw.Timestamp = v
		case "amount":
			raw.Amount = v
		case "location":
			raw.Location = v
		case "transaction_type":
			raw.Type = v
		case "related_transaction_id":
			raw.RelatedID = v
		case "event_date_origin":
			raw.Origin = v
		case "status":
			res.Status = txpipe.Status(v)
		case "pending_balance":
			balance = v
		case "decline_reason":
			res.DeclineReason = txpipe.DeclineReason(v)
		case "seq":
			seq = v
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	tx, reason, detail := txpipe.ParseTransaction(raw)
	if reason != "" {
		return res, fmt.Errorf("validated record: %s: %s", reason, detail)
	}
	res.Transaction = tx
	if res.PendingBalance, err = txpipe.ParseMoney(balance); err != nil {
		return res, fmt.Errorf("validated record: pending_balance: %w", err)
	}
	if res.Seq, err = strconv.ParseInt(seq, 10, 64); err != nil {
		return res, fmt.Errorf("validated record: seq %q: %w", seq, err)
	}
	switch res.Status {
	case txpipe.StatusPending, txpipe.StatusDeclined, txpipe.StatusApproved:
	default:
		return res, fmt.Errorf("validated record: unknown status %q", res.Status)
	}
	return res, nil
}

// EncodeRejected appends the wire form of a rejected record on the
// dead-letter topic.
func EncodeRejected(b []byte, r txpipe.Rejected) []byte {
	b = EncodeTransaction(b, r.Raw)
	b = b[:len(b)-1]
	b = append(b, `,"reason":`...)
	b = appendString(b, string(r.Reason))
	b = append(b, `,"detail":`...)
	b = appendString(b, r.Detail)
	b = append(b, `,"source":`...)
	b = appendString(b, r.Source)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, r.Seq, 10)
	return append(b, '}')
}

// DecodeRejected reads a record of the dead-letter topic.
func DecodeRejected(b []byte) (txpipe.Rejected, error) {
	var r txpipe.Rejected
	raw, err := DecodeTransaction(b)
	if err != nil {
		return r, err
	}
	r.Raw = raw
	err = flatObject(b, func(key string, val []byte, isString, isNull bool) error {
		switch key {
		case "reason":
			r.Reason = txpipe.RejectReason(val)
		case "detail":
			r.Detail = string(val)
		case "source":
			r.Source = string(val)
		case "seq":
			n, err := strconv.ParseInt(string(val), 10, 64)
			if err != nil {
				return fmt.Errorf("seq %q: %w", val, err)
			}
			r.Seq = n
		}
		return nil
	})
	return r, err
}

// EncodeState appends a card's checkpointed state: its pending balance and
// the latest event time it judged (its ids go to segments of their own).
func EncodeState(b []byte, s txpipe.CardState) []byte {
	b = append(b, `{"pending":`...)
	b = s.Pending.Append(b)
	b = append(b, `,"last":`...)
	b = strconv.AppendInt(b, s.Last, 10)
	return append(b, '}')
}

// DecodeState reads a card's checkpointed state.
func DecodeState(b []byte) (txpipe.CardState, error) {
	var s txpipe.CardState
	var pending []byte
	haveLast := false
	err := flatObject(b, func(key string, val []byte, isString, isNull bool) error {
		switch key {
		case "pending":
			pending = append(pending[:0], val...)
		case "last":
			n, err := strconv.ParseInt(string(val), 10, 64)
			if err != nil {
				return fmt.Errorf("last %q: %w", val, err)
			}
			s.Last, haveLast = n, true
		}
		return nil
	})
	if err != nil {
		return s, err
	}
	if !haveLast {
		return s, errors.New("card state: no last event time")
	}
	s.Pending, err = txpipe.ParseMoney(string(pending))
	return s, err
}
