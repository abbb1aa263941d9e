package txpipe

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// ZIP returns the last whitespace-separated token of an address or a
// location, or "" when there is none.
func ZIP(address string) string {
	end := len(address)
	for end > 0 && isSpace(address[end-1]) {
		end--
	}
	start := end
	for start > 0 && !isSpace(address[start-1]) {
		start--
	}
	if start == end {
		return ""
	}
	if !isASCII(address[:end]) { // rare: let strings.Fields judge Unicode spaces
		f := strings.Fields(address)
		if len(f) == 0 {
			return ""
		}
		return f[len(f)-1]
	}
	return address[start:end]
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// NearHome reports whether a merchant location is close to the customer's
// address: both ZIPs are at least 5 characters long and share their first
// character.
func NearHome(location, address string) bool {
	return nearZIP(ZIP(location), ZIP(address))
}

func nearZIP(a, b string) bool {
	return len(a) >= 5 && len(b) >= 5 && a[0] == b[0]
}

// Decide judges one transaction against its card's limit, its customer's
// address and the card's pending balance before it. A declined transaction
// leaves the pending balance unchanged; an accepted one adds its amount
// (refunds are negative).
func Decide(amount Money, location string, creditLimit Money, customerAddress string, pending Money) (Status, DeclineReason, Money) {
	return decide(amount, ZIP(location), creditLimit, ZIP(customerAddress), pending)
}

func decide(amount Money, locationZIP string, creditLimit Money, homeZIP string, pending Money) (Status, DeclineReason, Money) {
	abs := amount
	if abs < 0 {
		abs = -abs
	}
	switch {
	case 2*abs >= creditLimit:
		return StatusDeclined, DeclineOverHalf, pending
	case !nearZIP(locationZIP, homeZIP):
		return StatusDeclined, DeclineLocation, pending
	case pending+amount > creditLimit:
		return StatusDeclined, DeclineOverLimit, pending
	}
	return StatusPending, DeclineNone, pending + amount
}

// Settle is the batch status of a stream status: pending becomes approved,
// anything else stays.
func Settle(s Status) Status {
	if s == StatusPending {
		return StatusApproved
	}
	return s
}

// ScoreChange is the credit-score change for a customer whose cards owe
// totalBalance against totalLimit. Usage bands are compared exactly
// (100 × balance ≤ band × limit). A customer without credit (totalLimit ≤ 0)
// keeps the score.
func ScoreChange(totalBalance, totalLimit Money) int64 {
	if totalLimit <= 0 {
		return 0
	}
	bands := [...]struct{ pct, change int64 }{
		{10, 15}, {20, 10}, {30, 5}, {50, -5}, {70, -15},
	}
	b, l := int64(totalBalance)*100, int64(totalLimit)
	for _, band := range bands {
		if b <= band.pct*l {
			return band.change
		}
	}
	return -25
}

// LimitFactor is the percentage a card limit keeps after a score change:
// change ≤ −20 → 85, ≤ −10 → 90, any other negative change → 95, and 100
// for no change or a positive one.
func LimitFactor(change int64) int64 {
	switch {
	case change >= 0:
		return 100
	case change <= -20:
		return 85
	case change <= -10:
		return 90
	default:
		return 95
	}
}

// CutLimit applies a score change to a credit limit: for a negative change
// the limit is multiplied by LimitFactor and rounded to a multiple of 100
// (ties to even: 2850 → 2800, 950 → 1000). Other changes keep the limit.
func CutLimit(limit Money, change int64) Money {
	f := LimitFactor(change)
	if f == 100 {
		return limit
	}
	const step = 100 * 100  // a hundred units, in cents
	num := int64(limit) * f // cents × percent
	den := int64(step * 100)
	q, r := num/den, num%den
	if r < 0 { // floor division for negative limits (never valid input)
		q, r = q-1, r+den
	}
	switch {
	case 2*r > den, 2*r == den && q%2 != 0:
		q++
	}
	return Money(q * step)
}

// SortByEvent orders transactions by timestamp; equal timestamps keep their
// input order.
func SortByEvent(txs []Transaction) {
	slices.SortStableFunc(txs, func(a, b Transaction) int {
		return a.Timestamp.Compare(b.Timestamp)
	})
}

// ParseTimestamp parses a timestamp written exactly as YYYY-MM-DD HH:MM:SS.
func ParseTimestamp(s string) (time.Time, bool) {
	if len(s) != len(TimestampLayout) || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	num := func(i, n int) int {
		v := 0
		for j := i; j < i+n; j++ {
			c := s[j]
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	y, mo, d, h, mi, sec := num(0, 4), num(5, 2), num(8, 2), num(11, 2), num(14, 2), num(17, 2)
	if y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59 {
		return time.Time{}, false
	}
	if d > daysIn(time.Month(mo), y) {
		return time.Time{}, false
	}
	return time.Date(y, time.Month(mo), d, h, mi, sec, 0, time.UTC), true
}

func daysIn(m time.Month, year int) int {
	switch m {
	case time.February:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}

// AppendTimestamp appends t as YYYY-MM-DD HH:MM:SS.
func AppendTimestamp(b []byte, t time.Time) []byte {
	y, mo, d := t.Date()
	h, mi, sec := t.Clock()
	if y < 0 || y > 9999 {
		return t.AppendFormat(b, TimestampLayout)
	}
	two := func(b []byte, v int) []byte { return append(b, byte('0'+v/10), byte('0'+v%10)) }
	b = append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-')
	b = two(b, int(mo))
	b = append(b, '-')
	b = two(b, d)
	b = append(b, ' ')
	b = two(b, h)
	b = append(b, ':')
	b = two(b, mi)
	b = append(b, ':')
	return two(b, sec)
}

// ParseID parses a positive decimal identifier.
func ParseID(s string) (int64, bool) {
	if s == "" || s[0] == '+' || s[0] == '-' {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n > 0
}

// ParseTransaction checks the fields of a raw transaction that can be
// judged without state, in the documented order: transaction id, card id,
// amount, timestamp, then the text fields (valid UTF-8 that fits the
// tables' columns). The reasons that need state (unknown card, duplicate
// id) are the caller's.
func ParseTransaction(raw RawTransaction) (Transaction, RejectReason, string) {
	var tx Transaction
	var ok bool
	if tx.ID, ok = ParseID(raw.TransactionID); !ok {
		return tx, RejectTransactionID, "transaction_id " + quoteValue(raw.TransactionID) + " is not a positive integer"
	}
	if tx.CardID, ok = ParseID(raw.CardID); !ok {
		return tx, RejectCardID, "card_id " + quoteValue(raw.CardID) + " is not a positive integer"
	}
	amount, err := ParseMoney(raw.Amount)
	if err != nil {
		return tx, RejectAmount, "amount: " + err.Error()
	}
	tx.Amount = amount
	if tx.Timestamp, ok = ParseTimestamp(raw.Timestamp); !ok {
		return tx, RejectTimestamp, "timestamp " + quoteValue(raw.Timestamp) + " is not YYYY-MM-DD HH:MM:SS"
	}
	if raw.Origin != "" {
		if tx.Origin, err = time.Parse(time.RFC3339Nano, raw.Origin); err != nil {
			return tx, RejectTimestamp, "event_date_origin " + quoteValue(raw.Origin) + " is not an RFC 3339 time"
		}
		tx.Origin = tx.Origin.UTC()
	}
	if reason, detail := CheckTransactionText(raw); reason != "" {
		return tx, reason, detail
	}
	tx.Merchant, tx.Location, tx.Type, tx.RelatedID = raw.Merchant, raw.Location, raw.Type, raw.RelatedID
	return tx, "", ""
}

func originString(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(OriginLayout)
}

// OriginLayout is how event_date_origin is written: RFC 3339, UTC, to the
// millisecond.
const OriginLayout = "2006-01-02T15:04:05.000Z07:00"

// Longest text fields a transaction may have (the widths of the tables'
// columns, in characters).
const (
	MaxMerchant  = 255
	MaxLocation  = 512
	MaxType      = 64
	MaxRelatedID = 64
)

// Raw returns the transaction's fields as they are written in CSV and JSON.
func (t Transaction) Raw() RawTransaction {
	return RawTransaction{
		TransactionID: strconv.FormatInt(t.ID, 10),
		CardID:        strconv.FormatInt(t.CardID, 10),
		Merchant:      t.Merchant,
		Timestamp:     string(AppendTimestamp(make([]byte, 0, len(TimestampLayout)), t.Timestamp)),
		Amount:        t.Amount.String(),
		Location:      t.Location,
		Type:          t.Type,
		RelatedID:     t.RelatedID,
		Origin:        originString(t.Origin),
	}
}

// Fields returns the raw fields in the column order of transactions.csv.
func (r RawTransaction) Fields() []string {
	return []string{r.TransactionID, r.CardID, r.Merchant, r.Timestamp, r.Amount, r.Location, r.Type, r.RelatedID}
}

// TransactionColumns are the columns of transactions.csv, in order.
var TransactionColumns = []string{
	"transaction_id", "card_id", "merchant_name", "timestamp", "amount",
	"location", "transaction_type", "related_transaction_id",
}
