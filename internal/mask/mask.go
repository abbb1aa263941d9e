// Package mask hides card numbers. Every answer of the API and every log
// line of every command goes through it: a card number keeps its last four
// digits only.
package mask

import (
	"context"
	"fmt"
	"log/slog"
)

// Card masks a card number for display: every digit but the last four
// becomes '*', separators stay ("6466-8783-6394-0621" →
// "****-****-****-0621"). Any other character is masked too, so that
// nothing but the last four digits of the number is ever shown.
func Card(number string) string {
	b := []byte(number)
	keep := 4
	for i := len(b) - 1; i >= 0; i-- {
		switch c := b[i]; {
		case isDigit(c) && keep > 0:
			keep--
		case c == '-' || c == ' ':
		default:
			b[i] = '*'
		}
	}
	return string(b)
}

// Min and Max bound the number of digits that Digits treats as a card
// number (ISO/IEC 7812 primary account numbers have 13 to 19 digits).
const (
	Min = 13
	Max = 19
)

// Digits masks, in free text, every card number: a maximal run of Min to
// Max digits, or a group of four digits followed by groups of one to six
// joined by the same dash or space ("6466-8783-6394-0621", "4111 1111 1111
// 1111", "3782-822463-10005") that hold Min to Max digits together. All
// digits but the last four become '*'.
func Digits(s string) string {
	spans := numbers(s)
	if len(spans) == 0 {
		return s
	}
	b := []byte(s)
	for _, sp := range spans {
		keep := 4
		for j := sp[1] - 1; j >= sp[0]; j-- {
			if !isDigit(b[j]) {
				continue
			}
			if keep > 0 {
				keep--
				continue
			}
			b[j] = '*'
		}
	}
	return string(b)
}

// Leaks returns the card numbers in s that Digits would mask: tests grep
// logs and answers with it.
func Leaks(s string) []string {
	var out []string
	for _, sp := range numbers(s) {
		out = append(out, s[sp[0]:sp[1]])
	}
	return out
}

// numbers returns the spans of s that look like card numbers.
func numbers(s string) [][2]int {
	if !hasLongRun(s) {
		return nil
	}
	var out [][2]int
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		// A maximal run of digits, then groups joined by one separator
		// the way card numbers are printed: a first group of four, the
		// others of one to six digits, all with the same separator.
		k := i
		for k < len(s) && isDigit(s[k]) {
			k++
		}
		digits, end := k-i, k
		if digits == 4 && k+1 < len(s) && (s[k] == '-' || s[k] == ' ') {
			sep := s[k]
			for end < len(s)-1 && s[end] == sep && isDigit(s[end+1]) {
				m := end + 1
				for m < len(s) && isDigit(s[m]) {
					m++
				}
				if m-(end+1) > 6 || digits+m-(end+1) > Max {
					break
				}
				digits += m - (end + 1)
				end = m
			}
		}
		if digits >= Min && digits <= Max {
			out = append(out, [2]int{i, end})
		}
		i = end
	}
	return out
}

// hasLongRun reports whether s has at least Min digits in all: a quick
// test that spares most log lines any copying.
func hasLongRun(s string) bool {
	n := 0
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			if n++; n >= Min {
				return true
			}
		}
	}
	return false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// Handler wraps a slog.Handler so that no record it writes carries a card
// number: the message and every attribute value (strings, errors, anything
// printed with fmt) go through Digits.
type Handler struct{ next slog.Handler }

// NewHandler returns next with masking.
func NewHandler(next slog.Handler) *Handler { return &Handler{next: next} }

// Enabled reports whether next handles level.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle masks r and passes it on.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, Digits(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(Attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

// WithAttrs masks attrs once, when they are added.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	masked := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		masked[i] = Attr(a)
	}
	return &Handler{next: h.next.WithAttrs(masked)}
}

// WithGroup opens a group on next.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name)}
}

// Attr masks an attribute's value (groups recursively).
func Attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		if s := v.String(); hasLongRun(s) {
			return slog.String(a.Key, Digits(s))
		}
	case slog.KindGroup:
		group := v.Group()
		masked := make([]slog.Attr, len(group))
		for i, g := range group {
			masked[i] = Attr(g)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(masked...)}
	case slog.KindAny:
		var s string
		if err, ok := v.Any().(error); ok && err != nil {
			s = err.Error()
		} else {
			s = fmt.Sprint(v.Any())
		}
		if hasLongRun(s) {
			return slog.String(a.Key, Digits(s))
		}
	case slog.KindInt64:
		// An integer is as long as a card number only when it could be one.
		if n := v.Int64(); n >= 1e12 || n <= -1e12 {
			return slog.String(a.Key, Digits(v.String()))
		}
	case slog.KindUint64:
		if v.Uint64() >= 1e12 {
			return slog.String(a.Key, Digits(v.String()))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
