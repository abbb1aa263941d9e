package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/internal/mask"
)

// eventRoutes are the endpoints of the stream's alerts and latency.
func eventRoutes(s *Server) []Route {
	return []Route{
		{Method: "GET", Path: "/api/alerts", Query: []string{"card", "type", "from", "to", "cursor", "limit"}, h: s.alerts},
		{Method: "GET", Path: "/api/latency", Query: []string{"from", "to"}, h: s.latency},
	}
}

// alertTimeLayout is how alert times are written: milliseconds, UTC.
const alertTimeLayout = "2006-01-02 15:04:05.000"

const cursorAlert = 'a' // alerts: window end (unix ms), partition, offset, topic

func alertCursor(k txpipe.AlertKey) string {
	return encodeCursor(cursorAlert, strconv.FormatInt(k.To.UnixMilli(), 10), strconv.Itoa(int(k.Pos.Partition)),
		strconv.FormatInt(k.Pos.Offset, 10), k.Pos.Topic)
}

func (p *params) alertCursor() (*txpipe.AlertKey, error) {
	f, err := p.cursor(cursorAlert, 4)
	if f == nil || err != nil {
		return nil, err
	}
	ms, err1 := strconv.ParseInt(f[0], 10, 64)
	part, err2 := strconv.ParseInt(f[1], 10, 32)
	off, err3 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || ms < -62135596800000 || ms > 253402300799000 || !utf8.ValidString(f[3]) {
		return nil, badParam("cursor", "not a cursor of this endpoint: pass next_cursor of the previous page as it is")
	}
	return &txpipe.AlertKey{To: time.UnixMilli(ms).UTC(), Pos: txpipe.Position{Topic: f[3], Partition: int32(part), Offset: off}}, nil
}

// alertJSON is an alert as the API answers it.
type alertJSON struct {
	Type            string `json:"alert_type"`
	CardID          int64  `json:"card_id"`
	WindowFrom      string `json:"window_from"`
	WindowTo        string `json:"window_to"`
	Late            bool   `json:"late"`
	Payments        int64  `json:"payments"`
	Total           string `json:"total"`
	FirstSeen       string `json:"first_seen"`
	LastSeen        string `json:"last_seen"`
	EventDateOrigin string `json:"event_date_origin"`
	// Alert is the alert record as the stream emitted it (free text in it
	// masked like every other).
	Alert          json.RawMessage `json:"alert"`
	KafkaTopic     string          `json:"kafka_topic"`
	KafkaPartition int32           `json:"kafka_partition"`
	KafkaOffset    int64           `json:"kafka_offset"`
}

func toAlert(a txpipe.Alert) alertJSON {
	raw, err := maskJSONStrings(a.JSON)
	if err != nil { // not JSON: the text, masked
		raw, _ = json.Marshal(mask.Digits(a.JSON))
	}
	f := func(t time.Time) string { return t.UTC().Format(alertTimeLayout) }
	return alertJSON{Type: a.Type, CardID: a.CardID, WindowFrom: f(a.From), WindowTo: f(a.To), Late: a.Late, Payments: a.Count,
		Total: a.Total.String(), FirstSeen: f(a.First), LastSeen: f(a.Last), EventDateOrigin: f(a.Origin), Alert: raw,
		KafkaTopic: a.Pos.Topic, KafkaPartition: a.Pos.Partition, KafkaOffset: a.Pos.Offset}
}

// maskJSONStrings re-encodes a JSON document with every string masked
// (mask.Digits: merchant names and locations may hold card numbers) and
// every number, key and the order of the keys as they were: transaction
// ids are numbers of up to 19 digits, not card numbers.
func maskJSONStrings(doc string) (json.RawMessage, error) {
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.UseNumber()
	var out []byte
	// after[i] says whether the container at depth i has had a value
	// (a comma goes before the next); key says an object awaits a key.
	type level struct {
		object, any, key bool
	}
	var stack []level
	sep := func() {
		if n := len(stack); n > 0 {
			l := &stack[n-1]
			if l.object && !l.key { // a value after its key
				out = append(out, ':')
				l.key = true
				return
			}
			if l.any {
				out = append(out, ',')
			}
			l.any = true
			if l.object {
				l.key = false
			}
		}
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				sep()
				out = append(out, byte(v))
				stack = append(stack, level{object: v == '{', key: true})
			default:
				out = append(out, byte(v))
				stack = stack[:len(stack)-1]
			}
			continue
		case string:
			sep()
			if n := len(stack); n > 0 && stack[n-1].object && !stack[n-1].key {
				b, _ := json.Marshal(v) // a key, as it is
				out = append(out, b...)
				continue
			}
			b, _ := json.Marshal(mask.Digits(v))
			out = append(out, b...)
		case json.Number:
			sep()
			out = append(out, v...)
		case bool:
			sep()
			out = strconv.AppendBool(out, v)
		case nil:
			sep()
			out = append(out, "null"...)
		}
	}
	if !json.Valid(out) {
		return nil, fmt.Errorf("alert JSON re-encoded invalid")
	}
	return out, nil
}

func (s *Server) alerts(w http.ResponseWriter, r *http.Request, p *params) error {
	var q txpipe.AlertQuery
	var err error
	if v, ok := p.query["card"]; ok {
		id, ok := txpipe.ParseID(v)
		if !ok || id <= 0 {
			return badParam("card", "%q is not a card id (a positive integer)", clip(v))
		}
		q.CardID = id
	}
	switch v := p.str("type"); v {
	case "", txpipe.EventAlert, txpipe.EventAlertSummary:
		q.Type = v
	default:
		return badParam("type", "%q is not %s or %s", clip(v), txpipe.EventAlert, txpipe.EventAlertSummary)
	}
	if q.From, q.To, err = p.timeRange(); err != nil {
		return err
	}
	if q.After, err = p.alertCursor(); err != nil {
		return err
	}
	if q.Limit, err = p.limit(); err != nil {
		return err
	}
	page, err := s.Events.Alerts(r.Context(), q)
	if err != nil {
		return err
	}
	out := struct {
		Items      []alertJSON `json:"items"`
		NextCursor string      `json:"next_cursor,omitempty"`
	}{Items: make([]alertJSON, 0, len(page.Rows))}
	for _, a := range page.Rows {
		out.Items = append(out.Items, toAlert(a))
	}
	if page.More && len(page.Rows) > 0 {
		out.NextCursor = alertCursor(page.Rows[len(page.Rows)-1].Key())
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// latencyJSON is the latency of an event type.
type latencyJSON struct {
	EventType string      `json:"event_type"`
	Count     int64       `json:"count"`
	P50       json.Number `json:"p50_seconds"`
	P95       json.Number `json:"p95_seconds"`
	P99       json.Number `json:"p99_seconds"`
	Max       json.Number `json:"max_seconds"`
}

// seconds writes a duration as seconds with six decimals, exactly (a
// float would print 0.7018879999999998).
func seconds(d time.Duration) json.Number {
	us := d.Microseconds()
	sign := ""
	if us < 0 {
		sign, us = "-", -us
	}
	return json.Number(fmt.Sprintf("%s%d.%06d", sign, us/1e6, us%1e6))
}

func (s *Server) latency(w http.ResponseWriter, r *http.Request, p *params) error {
	from, to, err := p.timeRange()
	if err != nil {
		return err
	}
	stats, err := s.Events.Latency(r.Context(), from, to)
	if err != nil {
		return err
	}
	out := struct {
		From   string        `json:"from,omitempty"`
		To     string        `json:"to,omitempty"`
		Events []latencyJSON `json:"events"`
	}{Events: []latencyJSON{}}
	if !from.IsZero() {
		out.From = from.Format(apiTimeLayout)
	}
	if !to.IsZero() {
		out.To = to.Format(apiTimeLayout)
	}
	for _, st := range stats {
		out.Events = append(out.Events, latencyJSON{EventType: st.Type, Count: st.Count,
			P50: seconds(st.P50), P95: seconds(st.P95), P99: seconds(st.P99), Max: seconds(st.Max)})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
