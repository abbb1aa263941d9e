package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/batch/analytics"
	"github.com/txpipe/txpipe/internal/metrics"
	"github.com/txpipe/txpipe/serving/api"
	"github.com/txpipe/txpipe/serving/csvfile"
)

// fakeStore answers with fixed data; card 13 panics, card 14 is
// unavailable, card 15 fails with an internal error.
type fakeStore struct{}

var fakeCard = txpipe.Card{ID: 1, CustomerID: 2, Number: "6466-8783-6394-0621", CreditLimit: 300000, CurrentBalance: 1000}

func (fakeStore) Card(_ context.Context, id int64) (txpipe.CardView, txpipe.BatchInfo, error) {
	switch id {
	case 1:
		return txpipe.CardView{Card: fakeCard, CreditLimit: 250000, Settled: 2000, Pending: 500,
				SettledCounts: txpipe.StatusCounts{txpipe.StatusApproved: 3}, PendingCounts: txpipe.StatusCounts{txpipe.StatusPending: 1}},
			txpipe.BatchInfo{RunID: 4, Cutoffs: txpipe.Cutoffs{Batch: true, Topic: "t.validated", Next: map[int32]int64{0: 10, 1: 7}}}, nil
	case 13:
		panic("boom")
	case 14:
		return txpipe.CardView{}, txpipe.BatchInfo{}, fmt.Errorf("%w: database down", txpipe.ErrUnavailable)
	case 15:
		return txpipe.CardView{}, txpipe.BatchInfo{}, errors.New("secret internals of 10.0.0.7")
	}
	return txpipe.CardView{}, txpipe.BatchInfo{}, fmt.Errorf("card %d: %w", id, txpipe.ErrNotFound)
}

func (fakeStore) CardByNumber(_ context.Context, number string) (int64, error) {
	if number == fakeCard.Number {
		return 1, nil
	}
	return 0, txpipe.ErrNotFound
}

func (fakeStore) Transactions(_ context.Context, q txpipe.TxQuery) (txpipe.TxPage, error) {
	ts := time.Date(2025, 4, 1, 10, 0, 0, 0, time.UTC)
	var page txpipe.TxPage
	for id := int64(1); id <= 5; id++ {
		r := txpipe.TxRow{Settled: id <= 2}
		r.ID, r.CardID, r.Timestamp, r.Amount, r.Merchant = id, 1, ts.Add(time.Duration(id)*time.Minute), 1234, "Shop 4111111111111111"
		r.Status, r.Pos = txpipe.StatusPending, txpipe.Position{Partition: 0, Offset: id}
		if q.After != nil && r.Key().Compare(*q.After) <= 0 {
			continue
		}
		if len(page.Rows) == q.Limit {
			page.More = true
			break
		}
		page.Rows = append(page.Rows, r)
	}
	return page, nil
}

func (fakeStore) Customer(_ context.Context, id int64) (txpipe.CustomerView, txpipe.BatchInfo, error) {
	if id != 2 {
		return txpipe.CustomerView{}, txpipe.BatchInfo{}, txpipe.ErrNotFound
	}
	return txpipe.CustomerView{Customer: txpipe.Customer{ID: 2, Name: "Ann", CreditScore: 700}, ScoreAfter: 695,
		Cards: []txpipe.CardView{{Card: fakeCard, CreditLimit: 300000, Settled: 100000}}}, txpipe.BatchInfo{}, nil
}

func (fakeStore) Rejected(context.Context, txpipe.RejectedQuery) (txpipe.RejectedPage, error) {
	return txpipe.RejectedPage{Rows: []txpipe.Rejected{{Raw: txpipe.RawTransaction{CardID: "5300-0012-2594-1883"}, Reason: txpipe.RejectCardID,
		Detail: "card_id 5300-0012-2594-1883 is not an integer", Pos: txpipe.Position{Topic: "t.dlq", Partition: 1, Offset: 3}}}}, nil
}

func (fakeStore) BatchRuns(context.Context, txpipe.RunQuery) (txpipe.RunPage, error) {
	return txpipe.RunPage{Runs: []txpipe.BatchRun{{ID: 1, StartedAt: time.Unix(0, 0), Status: "ok", Cutoffs: map[int32]int64{0: 1}}}}, nil
}

func openFake(t *testing.T, addr, token string, checks ...metrics.Check) *api.Server {
	t.Helper()
	srv := &api.Server{Addr: addr, Token: token, Store: fakeStore{}, Checks: checks, Log: quietLog,
		Analytics: analytics.Files(fakeAnalytics(t)), Events: csvfile.Events{Dir: t.TempDir()}}
	if err := srv.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func TestAnswers(t *testing.T) {
	c := newClient(t, openFake(t, "127.0.0.1:0", ""), "")
	var card map[string]any
	c.get("/api/cards/1", &card)
	if card["card_number"] != "****-****-****-0621" || card["available_credit"] != "2475.00" || card["pending_amount"] != "5.00" {
		t.Errorf("card %v", card)
	}
	var page txPageJSON
	c.get("/api/cards/1/transactions?limit=2", &page)
	if len(page.Items) != 2 || page.NextCursor == "" || page.Items[0].Layer != "batch" || page.Items[0].Amount != "12.34" {
		t.Fatalf("page %+v", page)
	}
	if all := c.allTransactions("/api/cards/1/transactions", 2); len(all) != 5 || all[4].Layer != "stream" || *all[4].KafkaOffset != 5 {
		t.Errorf("all pages: %+v", all)
	}
	var cust map[string]any
	c.get("/api/customers/2", &cust)
	if cust["usage_percent"] != "33.33" || cust["score_change"] != float64(-5) {
		t.Errorf("customer %v", cust)
	}
	code, b := c.do("GET", "/api/rejected")
	if code != 200 || !strings.Contains(string(b), "****-****-****-1883") {
		t.Errorf("rejected: %d %s", code, b)
	}
	for path, want := range map[string]int{
		"/api/cards/13": 500, "/api/cards/14": 503, "/api/cards/15": 500, "/api/cards/16": 404,
		"/api/transactions?card_number=6466-8783-6394-0621": 200, "/api/transactions?card_number=1234-8783-6394-0621": 404,
		"/api/transactions?card_number=" + strings.Repeat("1", 40):     400,
		"/api/merchants/" + strings.Repeat("m", 300) + "/transactions": 400,
		"/api/openapi.json": 200, "/healthz": 200, "/readyz": 200, "/metrics": 200,
	} {
		code, b := c.do("GET", path)
		if code != want {
			t.Errorf("GET %s: %d %s, want %d", path, code, b, want)
		}
		if strings.Contains(string(b), "10.0.0.7") || strings.Contains(string(b), "boom") || strings.Contains(string(b), "1234-8783") {
			t.Errorf("GET %s tells too much: %s", path, b)
		}
	}
	if n := testutil.ToFloat64(metrics.HTTPRequests.WithLabelValues("GET /api/cards/{id}", "404")); n < 1 {
		t.Errorf("txpipe_http_requests_total{route=\"GET /api/cards/{id}\",code=\"404\"} = %v", n)
	}
}

func TestLimits(t *testing.T) {
	srv := openFake(t, "127.0.0.1:0", "")
	req, _ := http.NewRequest("GET", srv.URL()+"/api/cards/1", strings.NewReader(strings.Repeat("x", 4096)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a 4 KiB body: %d", resp.StatusCode)
	}
	req, _ = http.NewRequest("GET", srv.URL()+"/api/cards/1", nil)
	req.Header.Set("X-Big", strings.Repeat("x", 64<<10))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("64 KiB of headers: %d", resp.StatusCode)
	}
}

// TestAuth: loopback needs no token; any other bind refuses to start
// without one; with one, every /api request needs it (health does not).
func TestAuth(t *testing.T) {
	for addr, loopback := range map[string]bool{"127.0.0.1:0": true, "[::1]:0": true, "localhost:0": true, "0.0.0.0:0": false, ":0": false, "192.0.2.1:0": false} {
		got, err := api.IsLoopback(addr)
		if err != nil || got != loopback {
			t.Errorf("IsLoopback(%s) = %v, %v", addr, got, err)
		}
	}
	srv := &api.Server{Addr: "0.0.0.0:0", Store: fakeStore{}, Log: quietLog}
	if err := srv.Open(); err == nil || !strings.Contains(err.Error(), "TXPIPE_API_TOKEN") {
		srv.Close()
		t.Fatalf("a non-loopback bind without a token: %v", err)
	}
	const token = "s3cret-token"
	srv = openFake(t, "0.0.0.0:0", token)
	base := strings.Replace(srv.URL(), "0.0.0.0", "127.0.0.1", 1)
	for _, tc := range []struct {
		path, auth string
		want       int
	}{
		{"/api/cards/1", "", 401},
		{"/api/cards/1", "Bearer wrong", 401},
		{"/api/cards/1", "Bearer " + token + "x", 401},
		{"/api/cards/1", "Basic " + token, 401},
		{"/api/cards/1", "Bearer " + token, 200},
		{"/api/cards/1", "bearer " + token, 200},
		{"/api/nothing", "", 401},
		{"/api/openapi.json", "", 401},
		{"/healthz", "", 200},
		{"/metrics", "", 200},
	} {
		req, _ := http.NewRequest("GET", base+tc.path, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s with %q: %d %s, want %d", tc.path, tc.auth, resp.StatusCode, b, tc.want)
		}
		if tc.want == 401 && (resp.Header.Get("WWW-Authenticate") == "" || !strings.Contains(string(b), `"error"`)) {
			t.Errorf("GET %s: 401 without a challenge or a JSON body: %s", tc.path, b)
		}
	}
}

func TestReadiness(t *testing.T) {
	srv := openFake(t, "127.0.0.1:0", "",
		metrics.Check{Name: "database", Check: func(context.Context) error { return errors.New("dial tcp 127.0.0.1:3306: connection refused") }},
		metrics.Check{Name: "broker", Check: func(context.Context) error { return nil }})
	c := newClient(t, srv, "")
	code, b := c.do("GET", "/readyz")
	var r metrics.Readiness
	if err := json.Unmarshal(b, &r); err != nil || code != 503 || r.Checks["broker"] != "ok" || !strings.Contains(r.Checks["database"], "refused") {
		t.Errorf("/readyz: %d %s", code, b)
	}
}

// openAPIDoc is the part of an OpenAPI 3 document the test reads.
type openAPIDoc struct {
	OpenAPI    string                                       `json:"openapi"`
	Paths      map[string]map[string]openAPIOperation       `json:"paths"`
	Components struct{ Parameters map[string]openAPIParam } `json:"components"`
}

type openAPIOperation struct {
	Parameters []openAPIParam             `json:"parameters"`
	Responses  map[string]any             `json:"responses"`
	Extra      map[string]json.RawMessage `json:"-"`
}

type openAPIParam struct {
	Ref      string `json:"$ref"`
	Name     string `json:"name"`
	In       string `json:"in"`
	Required bool   `json:"required"`
}

// TestOpenAPI keeps the document true: every route the server serves is
// in it with exactly its path and query parameters, nothing else is, and
// every documented parameter is read (a bad value answers 400 naming it).
func TestOpenAPI(t *testing.T) {
	srv := openFake(t, "127.0.0.1:0", "")
	c := newClient(t, srv, "")
	var doc openAPIDoc
	code, b := c.do("GET", "/api/openapi.json")
	if code != 200 || !slices.Equal(b, api.OpenAPI()) {
		t.Fatalf("/api/openapi.json: %d", code)
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}
	resolve := func(p openAPIParam) openAPIParam {
		if p.Ref != "" {
			name := strings.TrimPrefix(p.Ref, "#/components/parameters/")
			q, ok := doc.Components.Parameters[name]
			if !ok {
				t.Errorf("unresolved %s", p.Ref)
			}
			return q
		}
		return p
	}
	served := map[string]bool{}
	for _, rt := range srv.RouteTable() {
		key := strings.ToLower(rt.Method) + " " + rt.Path
		served[key] = true
		op, ok := doc.Paths[rt.Path][strings.ToLower(rt.Method)]
		if !ok {
			t.Errorf("%s %s is served but not documented", rt.Method, rt.Path)
			continue
		}
		var path, query []string
		for _, p := range op.Parameters {
			p = resolve(p)
			switch p.In {
			case "path":
				path = append(path, p.Name)
				if !p.Required {
					t.Errorf("%s: path parameter %s not required", key, p.Name)
				}
			case "query":
				query = append(query, p.Name)
			default:
				t.Errorf("%s: parameter %s in %q", key, p.Name, p.In)
			}
		}
		sort.Strings(path)
		sort.Strings(query)
		wantPath, wantQuery := rt.PathParams(), slices.Clone(rt.Query)
		sort.Strings(wantPath)
		sort.Strings(wantQuery)
		if !slices.Equal(path, wantPath) || !slices.Equal(query, wantQuery) {
			t.Errorf("%s: documented path %v query %v, served path %v query %v", key, path, query, wantPath, wantQuery)
		}
		if _, ok := op.Responses["200"]; !ok {
			t.Errorf("%s: no 200 response documented", key)
		}
		// Every parameter is read: a bad value is a 400 that names it.
		if !strings.HasPrefix(rt.Path, "/api/") || rt.Path == "/api/openapi.json" {
			continue
		}
		for _, name := range append(wantPath, wantQuery...) {
			u := rt.Path
			for _, pp := range wantPath {
				v := "1"
				if pp == "name" {
					v = "Shop"
				}
				if pp == "view" {
					v = analytics.Daily // built, with a date column
				}
				if pp == name {
					v = badValue(name)
				}
				u = strings.Replace(u, "{"+pp+"}", v, 1)
			}
			if slices.Contains(wantQuery, name) {
				u += "?" + name + "=" + badValue(name)
				if name != "card_number" && slices.Contains(wantQuery, "card_number") {
					u += "&card_number=6466-8783-6394-0621"
				}
			}
			code, b := c.do("GET", u)
			var body struct{ Parameter string }
			json.Unmarshal(b, &body)
			if code != 400 || body.Parameter != name {
				t.Errorf("GET %s: %d %s, want 400 naming %s", u, code, b, name)
			}
		}
	}
	for path, ops := range doc.Paths {
		for method := range ops {
			if !served[method+" "+path] {
				t.Errorf("%s %s is documented but not served", method, path)
			}
		}
	}
}

// badValue is a value a parameter must refuse.
func badValue(name string) string {
	switch name {
	case "name":
		return strings.Repeat("m", 300)
	case "card_number":
		return strings.Repeat("1", 40)
	case "limit":
		return "0"
	case "view":
		return "Bad-View"
	}
	return "bad"
}
