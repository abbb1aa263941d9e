package txpipe

import (
	"errors"
	"fmt"
	"strconv"
)

// Money is an exact amount of money in integer cents. It is never computed
// with float64.
type Money int64

// MaxMoney bounds every amount: DECIMAL(12,2) holds |x| < 10^10.
const MaxMoney Money = 1_000_000_000_000 // 10^10 units in cents

// Errors returned by ParseMoney.
var (
	ErrMoneySyntax    = errors.New("not a plain decimal")
	ErrMoneyPrecision = errors.New("more than 2 significant decimals")
	ErrMoneyRange     = errors.New("out of range, |x| must be below 10^10")
)

// ParseMoney parses a plain decimal such as "2500.0", "120.67", "-12" or
// "12.500" into cents. It rejects exponents, NaN, blanks, a sign without
// digits, more than two significant decimals ("12.505") and |x| ≥ 10^10.
func ParseMoney(s string) (Money, error) {
	if s == "" {
		return 0, fmt.Errorf("money %s: %w", quoteValue(s), ErrMoneySyntax)
	}
	i, neg := 0, false
	switch s[0] {
	case '-':
		neg, i = true, 1
	case '+':
		i = 1
	}
	var units int64
	intDigits := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		if units > int64(MaxMoney/100) {
			return 0, fmt.Errorf("money %s: %w", quoteValue(s), ErrMoneyRange)
		}
		units = units*10 + int64(s[i]-'0')
		intDigits++
	}
	var frac int64
	fracDigits := 0
	if i < len(s) && s[i] == '.' {
		i++
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			d := int64(s[i] - '0')
			switch {
			case fracDigits < 2:
				frac = frac*10 + d
			case d != 0:
				return 0, fmt.Errorf("money %s: %w", quoteValue(s), ErrMoneyPrecision)
			}
			fracDigits++
		}
	}
	if i != len(s) || intDigits+fracDigits == 0 {
		return 0, fmt.Errorf("money %s: %w", quoteValue(s), ErrMoneySyntax)
	}
	for n := min(fracDigits, 2); n < 2; n++ {
		frac *= 10
	}
	m := Money(units*100 + frac)
	if m >= MaxMoney {
		return 0, fmt.Errorf("money %s: %w", quoteValue(s), ErrMoneyRange)
	}
	if neg {
		m = -m
	}
	return m, nil
}

// quoteValue quotes a value for a message, cut to a readable length.
func quoteValue(s string) string { return strconv.Quote(Excerpt(s, 40)) }

// String formats m with exactly two decimals ("-12.05", "0.00"); zero is
// never written as "-0.00".
func (m Money) String() string {
	return string(m.Append(nil))
}

// Append appends the two-decimal form of m to b.
func (m Money) Append(b []byte) []byte {
	u := int64(m)
	if u < 0 {
		b = append(b, '-')
		u = -u
	}
	b = strconv.AppendInt(b, u/100, 10)
	c := u % 100
	return append(b, '.', byte('0'+c/10), byte('0'+c%10))
}
