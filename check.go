package txpipe

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// Widths of the master-data text columns, in characters: the VARCHAR(n)
// of migrations/00001_schema.sql (a test holds them to it).
const (
	MaxCustomerName = 255
	MaxPhone        = 64
	MaxAddress      = 512
	MaxEmail        = 255
	MaxCardTypeName = 64
	MaxCardNumber   = 32
	MaxExpiration   = 8
	MaxIssueDate    = 16
)

// MaxRecordBytes is the largest Kafka record every broker takes with its
// default settings (message.max.bytes is 1 MiB and a few bytes; a
// producer's max.request.size 1 MiB).
const MaxRecordBytes = 1 << 20

// FieldError says which field of a row does not fit and why.
type FieldError struct {
	Column string
	Err    error
}

func (e *FieldError) Error() string { return "column " + e.Column + ": " + e.Err.Error() }

func (e *FieldError) Unwrap() error { return e.Err }

// Errors of CheckText.
var (
	ErrNotUTF8   = errors.New("not valid UTF-8")
	ErrTooLong   = errors.New("longer than its column")
	ErrControl   = errors.New("control character")
	ErrIntRange  = errors.New("out of the range of an INT column")
	ErrNotNumber = errors.New("not a plain decimal")
)

// CheckText checks a text value against a VARCHAR(max) column: valid
// UTF-8, at most max characters, and no control characters (NUL, escape,
// DEL, ...) except those in allow (a line break in an address).
func CheckText(s string, max int, allow string) error {
	if !utf8.ValidString(s) {
		return ErrNotUTF8
	}
	n := 0
	for i, r := range s {
		n++
		if unicode.IsControl(r) && !containsRune(allow, r) {
			return fmt.Errorf("%w %U at byte %d", ErrControl, r, i)
		}
	}
	if n > max {
		return fmt.Errorf("%w: %d characters, at most %d fit", ErrTooLong, n, max)
	}
	return nil
}

func containsRune(s string, r rune) bool {
	for _, c := range s {
		if c == r {
			return true
		}
	}
	return false
}

// checkInt checks a value for an INT column.
func checkInt(n int64) error {
	if n < math.MinInt32 || n > math.MaxInt32 {
		return fmt.Errorf("%d: %w", n, ErrIntRange)
	}
	return nil
}

// CheckDecimal checks that s is a plain decimal that fits DECIMAL(p, scale):
// an optional sign, digits with an optional fraction, at most p-scale
// digits before the point and scale significant digits after it. It
// rejects exponents, hex floats, NaN, infinities and blanks.
func CheckDecimal(s string, p, scale int) error {
	i := 0
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		i++
	}
	intDigits, fracDigits, lead := 0, 0, true
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		if lead && s[i] == '0' {
			continue // leading zeros take no room
		}
		lead = false
		intDigits++
	}
	seen := i > 0 && s[i-1] >= '0' && s[i-1] <= '9'
	if i < len(s) && s[i] == '.' {
		i++
		sig := 0
		for j := i; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			seen = true
			fracDigits++
			if s[i] != '0' {
				sig = i - j + 1
			}
		}
		fracDigits = sig
	}
	if i != len(s) || !seen {
		return fmt.Errorf("%s: %w", strconv.Quote(Excerpt(s, 40)), ErrNotNumber)
	}
	if intDigits > p-scale || fracDigits > scale {
		return fmt.Errorf("%s does not fit DECIMAL(%d,%d)", Excerpt(s, 40), p, scale)
	}
	return nil
}

// Excerpt cuts s to at most n bytes at a character boundary, with "…"
// when it was cut: for quoting a value in a message.
func Excerpt(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && cut > n-utf8.UTFMax && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

type textField struct {
	column, value string
	max           int
	allow         string
}

func checkFields(fields []textField) error {
	for _, f := range fields {
		if err := CheckText(f.value, f.max, f.allow); err != nil {
			return &FieldError{Column: f.column, Err: err}
		}
	}
	return nil
}

// Check checks a customer against the customers table: every text fits
// its column (UTF-8, width, no control characters; the address may hold
// line breaks and tabs), the credit score fits an INT. Money already fits
// DECIMAL(12,2) by ParseMoney.
func (c Customer) Check() error {
	if err := checkFields([]textField{
		{"name", c.Name, MaxCustomerName, ""},
		{"phone_number", c.Phone, MaxPhone, ""},
		{"address", c.Address, MaxAddress, "\n\r\t"},
		{"email", c.Email, MaxEmail, ""},
	}); err != nil {
		return err
	}
	if err := checkInt(c.CreditScore); err != nil {
		return &FieldError{Column: "credit_score", Err: err}
	}
	return checkMoney("annual_income", c.AnnualIncome)
}

// Check checks a card type against the credit_card_types table.
func (c CardType) Check() error {
	if err := checkFields([]textField{{"name", c.Name, MaxCardTypeName, ""}}); err != nil {
		return err
	}
	for _, f := range []struct {
		column string
		n      int64
	}{{"credit_score_min", c.ScoreMin}, {"credit_score_max", c.ScoreMax}} {
		if err := checkInt(f.n); err != nil {
			return &FieldError{Column: f.column, Err: err}
		}
	}
	for _, f := range []struct {
		column string
		m      Money
	}{{"credit_limit_min", c.LimitMin}, {"credit_limit_max", c.LimitMax}, {"annual_fee", c.AnnualFee}} {
		if err := checkMoney(f.column, f.m); err != nil {
			return err
		}
	}
	if err := CheckDecimal(c.RewardsRate, 8, 5); err != nil {
		return &FieldError{Column: "rewards_rate", Err: err}
	}
	return nil
}

// Check checks a card against the cards table. A card number is digits,
// spaces and dashes (a NUL byte or any other character in it is refused).
func (c Card) Check() error {
	if err := checkFields([]textField{
		{"card_number", c.Number, MaxCardNumber, ""},
		{"expiration_date", c.Expiration, MaxExpiration, ""},
		{"issue_date", c.IssueDate, MaxIssueDate, ""},
	}); err != nil {
		return err
	}
	for i := 0; i < len(c.Number); i++ {
		if b := c.Number[i]; (b < '0' || b > '9') && b != ' ' && b != '-' {
			return &FieldError{Column: "card_number", Err: fmt.Errorf("%q at byte %d: a card number is digits, spaces and dashes", rune(b), i)}
		}
	}
	if err := checkMoney("credit_limit", c.CreditLimit); err != nil {
		return err
	}
	return checkMoney("current_balance", c.CurrentBalance)
}

func checkMoney(column string, m Money) error {
	if m <= -MaxMoney || m >= MaxMoney {
		return &FieldError{Column: column, Err: ErrMoneyRange}
	}
	return nil
}

// Master records travel as flat JSON objects (see the stream package's
// codec): every value is a number or a JSON string, and a character of a
// string takes at most 6 bytes there (a control character written
// \u00XX; no other character takes more than 4). Their largest encoded
// sizes, for records that passed Check, are thus bounded by the column
// widths; a test holds the codec to these bounds, and both are far below
// MaxRecordBytes.
const (
	jsonInt64Bytes  = 20 // -9223372036854775808
	jsonMoneyBytes  = 14 // -9999999999.99
	jsonStringBytes = 2  // the quotes

	MaxCustomerRecordBytes = len(`{"customer_id":,"name":,"phone_number":,"address":,"email":,"credit_score":,"annual_income":}`) +
		jsonInt64Bytes + 4*jsonStringBytes + 6*(MaxCustomerName+MaxPhone+MaxAddress+MaxEmail) + 11 + jsonMoneyBytes
	MaxCardRecordBytes = len(`{"card_id":,"customer_id":,"card_type_id":,"card_number":,"expiration_date":,"credit_limit":,"current_balance":,"issue_date":}`) +
		3*jsonInt64Bytes + 3*jsonStringBytes + 6*(MaxCardNumber+MaxExpiration+MaxIssueDate) + 2*jsonMoneyBytes
)

// CheckTransactionText checks the text fields of a raw transaction as
// ParseTransaction does: valid UTF-8 that fits the tables' columns. It
// returns RejectText and a detail, or "" when they fit.
func CheckTransactionText(raw RawTransaction) (RejectReason, string) {
	for _, f := range [...]struct {
		name, value string
		max         int
	}{
		{"merchant_name", raw.Merchant, MaxMerchant}, {"location", raw.Location, MaxLocation},
		{"transaction_type", raw.Type, MaxType}, {"related_transaction_id", raw.RelatedID, MaxRelatedID},
	} {
		if !utf8.ValidString(f.value) {
			return RejectText, f.name + " is not valid UTF-8"
		}
		if n := utf8.RuneCountInString(f.value); n > f.max {
			return RejectText, fmt.Sprintf("%s has %d characters, at most %d fit", f.name, n, f.max)
		}
	}
	return "", ""
}

// Size is the number of bytes of the raw fields together.
func (r RawTransaction) Size() int {
	return len(r.TransactionID) + len(r.CardID) + len(r.Merchant) + len(r.Timestamp) + len(r.Amount) +
		len(r.Location) + len(r.Type) + len(r.RelatedID)
}

// CheckSize says whether a raw transaction row can travel at all: its text
// fields fit their columns (CheckTransactionText) and its fields together
// are at most maxBytes bytes (maxBytes ≤ 0: no byte bound). It checks
// every field, whatever else is wrong with the row, so that a producer can
// refuse a row before anything is sent. It returns RejectText and a
// detail, or "" when the row fits.
func CheckSize(raw RawTransaction, maxBytes int) (RejectReason, string) {
	if reason, detail := CheckTransactionText(raw); reason != "" {
		return reason, detail
	}
	if n := raw.Size(); maxBytes > 0 && n > maxBytes {
		return RejectText, fmt.Sprintf("the row's fields take %d bytes, at most %d fit in a record", n, maxBytes)
	}
	return "", ""
}
