package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/batch/analytics"
	"github.com/txpipe/txpipe/internal/mask"
	"github.com/txpipe/txpipe/internal/mysqltest"
	"github.com/txpipe/txpipe/serving/api"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/serving/mysqlstore"
)

// eventsData is a stream's alerts and staged events, made up.
type eventsData struct {
	alerts []txpipe.Alert // in the API's order
	events []txpipe.Event
}

const eventsTopic = "ev.alerts"

var eventsStart = time.Date(2025, 4, 1, 12, 0, 0, 0, time.UTC)

// makeEvents makes n alerts over 8 cards, two partitions, and 3n staged
// events with latencies from 1 ms to a few seconds.
func makeEvents(n int) eventsData {
	rng := rand.New(rand.NewPCG(7, 9))
	var d eventsData
	next := map[int32]int64{}
	for i := range n {
		part := int32(rng.IntN(2))
		card := int64(1 + rng.IntN(8))
		typ := txpipe.EventAlert
		to := eventsStart.Add(time.Duration(1+i/3) * 5 * time.Second) // several alerts share a window end
		from := to.Add(-5 * time.Second)
		if rng.IntN(3) == 0 {
			typ, from = txpipe.EventAlertSummary, to.Add(-time.Hour)
		}
		a := txpipe.Alert{Type: typ, CardID: card, From: from, To: to, Late: rng.IntN(10) == 0, Count: int64(1 + rng.IntN(4)),
			Total: txpipe.Money(rng.Int64N(100000) - 5000), First: from.Add(time.Second), Last: to.Add(-time.Millisecond), Origin: to.Add(-time.Millisecond),
			Pos: txpipe.Position{Topic: eventsTopic, Partition: part, Offset: next[part]}}
		// A merchant named after a card number: the API masks it; the
		// transaction id, 18 digits as the simulator's are, it keeps.
		a.JSON = fmt.Sprintf(`{"event_type":%q,"card_id":%d,"payments":[{"transaction_id":%d,"merchant_name":"Pay 4111111111111111","amount":%s}]}`,
			typ, card, 255346903699420000+i, a.Total)
		next[part]++
		d.alerts = append(d.alerts, a)
	}
	for i := range 3 * n {
		part := int32(rng.IntN(2))
		typ := []string{txpipe.EventPayment, txpipe.EventPayment, txpipe.EventAlert, txpipe.EventAlertSummary}[rng.IntN(4)]
		origin := eventsStart.Add(time.Duration(i) * 700 * time.Millisecond)
		lat := time.Duration(1+rng.IntN(3000)) * time.Millisecond
		if rng.IntN(50) == 0 {
			lat = time.Duration(2+rng.IntN(5)) * time.Second
		}
		lat += time.Duration(rng.IntN(1000)) * time.Microsecond
		d.events = append(d.events, txpipe.Event{Type: typ, CardID: int64(1 + rng.IntN(8)), Origin: origin, Registered: origin.Add(lat),
			JSON: `{}`, Pos: txpipe.Position{Topic: eventsTopic, Partition: part, Offset: next[part]}})
		next[part]++
	}
	slices.SortStableFunc(d.alerts, func(a, b txpipe.Alert) int { return a.Key().Compare(b.Key()) })
	return d
}

// batch is the data as one view batch, with the next offsets.
func (d eventsData) batch() *txpipe.ViewBatch {
	next := map[int32]int64{}
	for _, a := range d.alerts {
		next[a.Pos.Partition] = max(next[a.Pos.Partition], a.Pos.Offset+1)
	}
	for _, e := range d.events {
		next[e.Pos.Partition] = max(next[e.Pos.Partition], e.Pos.Offset+1)
	}
	vb := &txpipe.ViewBatch{Alerts: d.alerts, Events: d.events}
	for p, n := range next {
		vb.Next = append(vb.Next, txpipe.Offset{Topic: eventsTopic, Partition: p, Next: n})
	}
	return vb
}

// wantLatency computes the latency answer from the events.
func (d eventsData) wantLatency(from, to time.Time) []txpipe.LatencyStats {
	h := map[string]*analytics.LatencyHist{}
	for _, e := range d.events {
		if !from.IsZero() && e.Origin.Before(from) || !to.IsZero() && e.Origin.After(to) {
			continue
		}
		if h[e.Type] == nil {
			h[e.Type] = &analytics.LatencyHist{}
		}
		h[e.Type].Add(e.Registered.Sub(e.Origin).Microseconds())
	}
	return analytics.Latencies(h)
}

type alertPageJSON struct {
	Items []struct {
		Type     string          `json:"alert_type"`
		CardID   int64           `json:"card_id"`
		WindowTo string          `json:"window_to"`
		Late     bool            `json:"late"`
		Total    string          `json:"total"`
		Alert    json.RawMessage `json:"alert"`
		Topic    string          `json:"kafka_topic"`
		Part     int32           `json:"kafka_partition"`
		Offset   int64           `json:"kafka_offset"`
	} `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// allAlerts pages through an alerts query and returns "partition/offset"
// of each alert in order.
func allAlerts(t *testing.T, c *client, query string, pageSize int) []string {
	t.Helper()
	var out []string
	cursor := ""
	for range 1000 {
		u := "/api/alerts?limit=" + fmt.Sprint(pageSize) + query
		if cursor != "" {
			u += "&cursor=" + url.QueryEscape(cursor)
		}
		var page alertPageJSON
		if !c.get(u, &page) {
			return out
		}
		for _, a := range page.Items {
			out = append(out, fmt.Sprintf("%d/%d", a.Part, a.Offset))
			if strings.Contains(string(a.Alert), "4111111111111111") || !json.Valid(a.Alert) || !strings.HasPrefix(string(a.Alert), "{") ||
				!strings.Contains(string(a.Alert), `"transaction_id":2553469036994`) {
				t.Errorf("alert %d/%d: %s", a.Part, a.Offset, a.Alert)
			}
		}
		if cursor = page.NextCursor; cursor == "" {
			return out
		}
	}
	t.Fatalf("%s: more than 1000 pages", query)
	return nil
}

// TestAlertsAndLatency writes one stream's alerts and staged events
// through both sinks (MySQL and the CSV segments, merged) and asks both
// modes of the API: every filter, every page, and the latency of every
// range answer what the data says, alike in both.
func TestAlertsAndLatency(t *testing.T) {
	d := makeEvents(300)
	ctx := context.Background()

	db, err := mysqlstore.Open(ctx, mysqltest.NewDatabase(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.WriteViews(ctx, "events-test", d.batch()); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	segs, err := csvfile.NewSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := segs.Open(ctx, eventsTopic, "id1", []int32{0, 1}); err != nil {
		t.Fatal(err)
	}
	if err := segs.Write(ctx, d.batch()); err != nil {
		t.Fatal(err)
	}
	segs.CloseAll()
	if err := csvfile.Merge(dir, eventsTopic); err != nil {
		t.Fatal(err)
	}

	clients := map[string]*client{}
	for mode, ev := range map[string]txpipe.EventStore{modeMySQL: db.Queries(), modeMemory: csvfile.Events{Dir: dir}} {
		srv := &api.Server{Addr: "127.0.0.1:0", Store: fakeStore{}, Log: quietLog, Events: ev}
		if err := srv.Open(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		clients[mode] = newClient(t, srv, "")
	}
	at := func(i int) time.Time { return eventsStart.Add(time.Duration(i) * 5 * time.Second) }
	ts := func(t time.Time) string { return url.QueryEscape(t.Format(time.RFC3339Nano)) }
	for mode, c := range clients {
		t.Run(mode, func(t *testing.T) {
			c.t = t
			for _, q := range []struct {
				query string
				keep  func(a txpipe.Alert) bool
			}{
				{"", func(txpipe.Alert) bool { return true }},
				{"&card=3", func(a txpipe.Alert) bool { return a.CardID == 3 }},
				{"&type=PAYMENT_ALERT_SUMMARY", func(a txpipe.Alert) bool { return a.Type == txpipe.EventAlertSummary }},
				{"&from=" + ts(at(20)) + "&to=" + ts(at(40)), func(a txpipe.Alert) bool { return !a.To.Before(at(20)) && !a.To.After(at(40)) }},
				{"&card=5&type=PAYMENT_ALERT&from=2025-04-01%2012:03:00", func(a txpipe.Alert) bool {
					return a.CardID == 5 && a.Type == txpipe.EventAlert && !a.To.Before(eventsStart.Add(3*time.Minute))
				}},
				{"&card=99", func(txpipe.Alert) bool { return false }},
			} {
				var want []string
				for _, a := range d.alerts {
					if q.keep(a) {
						want = append(want, fmt.Sprintf("%d/%d", a.Pos.Partition, a.Pos.Offset))
					}
				}
				for _, size := range []int{7, 1000} {
					if got := allAlerts(t, c, q.query, size); !slices.Equal(got, want) {
						t.Errorf("alerts%s (pages of %d): %d alerts %v\nwant %d %v", q.query, size, len(got), got, len(want), want)
					}
				}
			}
			var one alertPageJSON
			c.get("/api/alerts?limit=1", &one)
			a := d.alerts[0]
			if len(one.Items) != 1 || one.Items[0].Total != a.Total.String() || one.Items[0].WindowTo != a.To.Format("2006-01-02 15:04:05.000") ||
				one.Items[0].Late != a.Late || one.Items[0].Topic != eventsTopic || !strings.Contains(string(one.Items[0].Alert), mask.Card("4111111111111111")) {
				t.Errorf("first alert %+v, want %+v", one.Items, a)
			}

			for _, r := range []struct{ from, to time.Time }{
				{},
				{eventsStart.Add(time.Minute), time.Time{}},
				{eventsStart.Add(2 * time.Minute), eventsStart.Add(5 * time.Minute)},
				{eventsStart.Add(-time.Hour), eventsStart.Add(-time.Minute)},
			} {
				q := ""
				if !r.from.IsZero() {
					q += "&from=" + ts(r.from)
				}
				if !r.to.IsZero() {
					q += "&to=" + ts(r.to)
				}
				var got struct {
					Events []struct {
						Type  string      `json:"event_type"`
						Count int64       `json:"count"`
						P50   json.Number `json:"p50_seconds"`
						P95   json.Number `json:"p95_seconds"`
						P99   json.Number `json:"p99_seconds"`
						Max   json.Number `json:"max_seconds"`
					} `json:"events"`
				}
				c.get("/api/latency?"+strings.TrimPrefix(q, "&"), &got)
				want := d.wantLatency(r.from, r.to)
				if len(got.Events) != len(want) {
					t.Errorf("latency%s: %+v, want %+v", q, got.Events, want)
					continue
				}
				for i, w := range want {
					g := got.Events[i]
					sec := func(d time.Duration) json.Number {
						return json.Number(fmt.Sprintf("%d.%06d", d.Microseconds()/1e6, d.Microseconds()%1e6))
					}
					if g.Type != w.Type || g.Count != w.Count || g.P50 != sec(w.P50) || g.P95 != sec(w.P95) || g.P99 != sec(w.P99) || g.Max != sec(w.Max) {
						t.Errorf("latency%s %s: %+v, want %+v", q, w.Type, g, w)
					}
				}
			}

			for _, e := range []struct{ path, param string }{
				{"/api/alerts?card=0", "card"},
				{"/api/alerts?card=x", "card"},
				{"/api/alerts?type=PAYMENT_EVENT", "type"},
				{"/api/alerts?from=soon", "from"},
				{"/api/alerts?from=2025-04-02%2000:00:00&to=2025-04-01%2000:00:00", "to"},
				{"/api/alerts?cursor=abc", "cursor"},
				{"/api/alerts?limit=1001", "limit"},
				{"/api/latency?to=later", "to"},
				{"/api/latency?card=1", "card"},
			} {
				code, b := c.do("GET", e.path)
				var body struct{ Parameter string }
				if json.Unmarshal(b, &body); code != 400 || body.Parameter != e.param {
					t.Errorf("GET %s: %d %s, want 400 naming %s", e.path, code, b, e.param)
				}
			}
		})
	}
	t.Run("same answers", func(t *testing.T) {
		for _, c := range clients {
			c.t = t
		}
		for _, path := range []string{"/api/alerts?limit=1000", "/api/alerts?limit=5&card=2", "/api/latency", "/api/latency?from=2025-04-01%2012:01:00"} {
			_, a := clients[modeMySQL].do("GET", path)
			_, b := clients[modeMemory].do("GET", path)
			if string(a) != string(b) {
				t.Errorf("GET %s: the modes differ:\nmysql:  %.400s\nmemory: %.400s", path, a, b)
			}
		}
	})
}

// TestAlertsWithoutData: before any alert or event is stored, both
// endpoints answer empty, not an error.
func TestAlertsWithoutData(t *testing.T) {
	srv := &api.Server{Addr: "127.0.0.1:0", Store: fakeStore{}, Log: quietLog, Events: csvfile.Events{Dir: t.TempDir()}}
	if err := srv.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	c := newClient(t, srv, "")
	for path, want := range map[string]string{"/api/alerts": `{"items":[]}`, "/api/latency": `{"events":[]}`} {
		if code, b := c.do("GET", path); code != 200 || strings.TrimSpace(string(b)) != want {
			t.Errorf("GET %s: %d %s, want %s", path, code, b, want)
		}
	}
}
