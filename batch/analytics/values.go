package analytics

import (
	"math/big"
	"strconv"
	"strings"
	"time"
)

var pow10 = [...]int64{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000}

// AppendFixed appends v / 10^scale with scale decimals.
func AppendFixed(b []byte, v int64, scale int) []byte {
	if scale == 0 {
		return strconv.AppendInt(b, v, 10)
	}
	u := uint64(v)
	if v < 0 {
		b = append(b, '-')
		u = uint64(-v) // -MinInt64 wraps to itself, which is its magnitude as a uint64
	}
	p := uint64(pow10[scale])
	b = strconv.AppendUint(b, u/p, 10)
	b = append(b, '.')
	frac := strconv.FormatUint(u%p, 10)
	for range scale - len(frac) {
		b = append(b, '0')
	}
	return append(b, frac...)
}

// FormatFixed is AppendFixed to a string.
func FormatFixed(v int64, scale int) string { return string(AppendFixed(nil, v, scale)) }

// Ratio returns num/den × 10^scale rounded half away from zero, computed
// exactly (the fraction is rounded once), and false when den is 0.
func Ratio(num, den int64, scale int) (int64, bool) {
	if den == 0 {
		return 0, false
	}
	n := new(big.Int).Mul(big.NewInt(num), big.NewInt(pow10[scale]))
	d := big.NewInt(den)
	neg := (n.Sign() < 0) != (d.Sign() < 0)
	n.Abs(n)
	d.Abs(d)
	q, r := new(big.Int).QuoRem(n, d, new(big.Int))
	if r.Lsh(r, 1).Cmp(d) >= 0 {
		q.Add(q, big.NewInt(1))
	}
	if neg {
		q.Neg(q)
	}
	return q.Int64(), true
}

// Rate is Ratio with RateScale decimals.
func Rate(num, den int64) (int64, bool) { return Ratio(num, den, RateScale) }

// DivRound returns num/den rounded half away from zero (den > 0), for
// averages of cents.
func DivRound(num, den int64) int64 {
	v, _ := Ratio(num, den, 0)
	return v
}

// Region is a state and city parsed from an address.
type Region struct {
	State, City string
}

// ParseRegion parses the state and city of an address of the form
// "street, City, ST 12345" (the last comma-separated part is the state
// and the ZIP, the one before it the city). It returns false when the
// address does not have that form. The strings returned are substrings of
// address.
func ParseRegion(address string) (Region, bool) {
	last := strings.LastIndexByte(address, ',')
	if last < 0 {
		return Region{}, false
	}
	tail := strings.TrimSpace(address[last+1:])
	sp := strings.IndexByte(tail, ' ')
	if sp != 2 || !upper(tail[0]) || !upper(tail[1]) {
		return Region{}, false
	}
	zip := strings.TrimSpace(tail[sp+1:])
	if len(zip) < 5 || !digits(zip[:5]) {
		return Region{}, false
	}
	head := address[:last]
	city := strings.TrimSpace(head[strings.LastIndexByte(head, ',')+1:])
	if city == "" {
		return Region{}, false
	}
	return Region{State: tail[:2], City: city}, true
}

func upper(c byte) bool { return c >= 'A' && c <= 'Z' }

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// DateLayout is the layout of Date values.
const DateLayout = time.DateOnly

// Day is a calendar day as the number of days since 1970-01-01.
type Day int64

// DayOf returns the day of a wall-clock time in microseconds since the
// epoch (an Arrow timestamp[us]).
func DayOf(micros int64) Day {
	const perDay = 86400 * 1000000
	d := micros / perDay
	if micros%perDay < 0 {
		d--
	}
	return Day(d)
}

// Time is midnight of the day, UTC.
func (d Day) Time() time.Time { return time.Unix(int64(d)*86400, 0).UTC() }

// Weekday is the ISO weekday, 1 (Monday) to 7 (Sunday).
func (d Day) Weekday() int {
	w := int((int64(d)+3)%7) + 1 // 1970-01-01 was a Thursday (4)
	if w <= 0 {
		w += 7
	}
	return w
}

// Monday is the Monday of the day's week.
func (d Day) Monday() Day { return d - Day(d.Weekday()-1) }

func (d Day) String() string { return d.Time().Format(DateLayout) }

// ParseDay parses YYYY-MM-DD.
func ParseDay(s string) (Day, bool) {
	t, err := time.Parse(DateLayout, s)
	if err != nil {
		return 0, false
	}
	return Day(t.Unix() / 86400), true
}

// WeekdayNames are the names of the ISO weekdays 1..7 at index 0..6.
var WeekdayNames = [7]string{"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}
