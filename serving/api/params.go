package api

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/txpipe/txpipe"
)

// Page sizes.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// maxParamLen bounds any one parameter value.
const maxParamLen = 256

// params reads a request's parameters against its route: unknown query
// parameters, repeated ones and values too long are errors.
type params struct {
	r     *http.Request
	query map[string]string
}

func readParams(r *http.Request, rt *Route) (*params, error) {
	p := &params{r: r, query: map[string]string{}}
	allowed := map[string]bool{}
	for _, q := range rt.Query {
		allowed[q] = true
	}
	for name, vals := range r.URL.Query() {
		if !allowed[name] {
			if len(name) > 40 || !utf8.ValidString(name) {
				name = "(unknown)"
			}
			return nil, badParam(name, "unknown parameter")
		}
		if len(vals) > 1 {
			return nil, badParam(name, "given %d times", len(vals))
		}
		if len(vals[0]) > maxParamLen {
			return nil, badParam(name, "longer than %d bytes", maxParamLen)
		}
		if !utf8.ValidString(vals[0]) {
			return nil, badParam(name, "not UTF-8")
		}
		p.query[name] = vals[0]
	}
	for _, name := range rt.wild {
		v := r.PathValue(name)
		if len(v) > maxParamLen {
			return nil, badParam(name, "longer than %d bytes", maxParamLen)
		}
		if !utf8.ValidString(v) {
			return nil, badParam(name, "not UTF-8")
		}
	}
	return p, nil
}

// id reads a positive integer path parameter.
func (p *params) id(name string) (int64, error) {
	v := p.r.PathValue(name)
	id, ok := txpipe.ParseID(v)
	if !ok || id <= 0 {
		return 0, badParam(name, "%q is not a positive integer", clip(v))
	}
	return id, nil
}

// text reads a non-empty path parameter.
func (p *params) text(name string) (string, error) {
	v := p.r.PathValue(name)
	if v == "" {
		return "", badParam(name, "empty")
	}
	return v, nil
}

// str reads an optional query parameter.
func (p *params) str(name string) string { return p.query[name] }

// limit reads ?limit= (DefaultLimit when absent).
func (p *params) limit() (int, error) {
	v, ok := p.query["limit"]
	if !ok {
		return DefaultLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxLimit {
		return 0, badParam("limit", "%q is not a page size from 1 to %d", clip(v), MaxLimit)
	}
	return n, nil
}

// Time layouts accepted in from and to.
const apiTimeLayout = txpipe.TimestampLayout

// parseTime reads YYYY-MM-DD HH:MM:SS (a transaction's time, as written)
// or RFC 3339 (converted to UTC, which transaction times are read as).
func parseTime(v string) (time.Time, bool) {
	if t, ok := txpipe.ParseTimestamp(v); ok {
		return t, true
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, false
	}
	return t.UTC(), true
}

// timeRange reads ?from= and ?to= (both optional, both included).
func (p *params) timeRange() (from, to time.Time, err error) {
	for _, x := range []struct {
		name string
		dst  *time.Time
	}{{"from", &from}, {"to", &to}} {
		v, ok := p.query[x.name]
		if !ok {
			continue
		}
		t, ok := parseTime(v)
		if !ok {
			return from, to, badParam(x.name, "%q is not a time as YYYY-MM-DD HH:MM:SS or RFC 3339", clip(v))
		}
		*x.dst = t
	}
	if !from.IsZero() && !to.IsZero() && to.Before(from) {
		return from, to, badParam("to", "%s is before from %s", to.Format(apiTimeLayout), from.Format(apiTimeLayout))
	}
	return from, to, nil
}

// Cursors are opaque to clients: base64url of a kind letter and the key
// of the last item of the page, which the next page starts after.
const (
	cursorTx       = 't' // transactions: unix seconds, id
	cursorRejected = 'r' // rejected rows: partition, offset, topic
	cursorRun      = 'b' // batch runs: run id
)

func encodeCursor(kind byte, fields ...string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(string(kind) + "|" + strings.Join(fields, "|")))
}

// cursor decodes ?cursor= of kind into n fields (nil when absent).
func (p *params) cursor(kind byte, n int) ([]string, error) {
	v, ok := p.query["cursor"]
	if !ok {
		return nil, nil
	}
	bad := badParam("cursor", "not a cursor of this endpoint: pass next_cursor of the previous page as it is")
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(b) < 2 || b[0] != kind || b[1] != '|' {
		return nil, bad
	}
	fields := strings.SplitN(string(b[2:]), "|", n)
	if len(fields) != n {
		return nil, bad
	}
	return fields, nil
}

func txCursor(k txpipe.TxKey) string {
	return encodeCursor(cursorTx, strconv.FormatInt(k.Timestamp.Unix(), 10), strconv.FormatInt(k.ID, 10))
}

func (p *params) txCursor() (*txpipe.TxKey, error) {
	f, err := p.cursor(cursorTx, 2)
	if f == nil || err != nil {
		return nil, err
	}
	sec, err1 := strconv.ParseInt(f[0], 10, 64)
	id, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil || sec < -62135596800 || sec > 253402300799 {
		return nil, badParam("cursor", "not a cursor of this endpoint: pass next_cursor of the previous page as it is")
	}
	return &txpipe.TxKey{Timestamp: time.Unix(sec, 0).UTC(), ID: id}, nil
}

func rejectedCursor(pos txpipe.Position) string {
	return encodeCursor(cursorRejected, strconv.Itoa(int(pos.Partition)), strconv.FormatInt(pos.Offset, 10), pos.Topic)
}

func (p *params) rejectedCursor() (*txpipe.Position, error) {
	f, err := p.cursor(cursorRejected, 3)
	if f == nil || err != nil {
		return nil, err
	}
	part, err1 := strconv.ParseInt(f[0], 10, 32)
	off, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil || !utf8.ValidString(f[2]) {
		return nil, badParam("cursor", "not a cursor of this endpoint: pass next_cursor of the previous page as it is")
	}
	return &txpipe.Position{Topic: f[2], Partition: int32(part), Offset: off}, nil
}

func runCursor(id int64) string { return encodeCursor(cursorRun, strconv.FormatInt(id, 10)) }

func (p *params) runCursor() (int64, error) {
	f, err := p.cursor(cursorRun, 1)
	if f == nil || err != nil {
		return 0, err
	}
	id, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || id <= 0 {
		return 0, badParam("cursor", "not a cursor of this endpoint: pass next_cursor of the previous page as it is")
	}
	return id, nil
}

// clip shortens a value quoted in an error message.
func clip(s string) string {
	if len(s) > 40 {
		s = s[:40]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		return s + "…"
	}
	return s
}
