package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/txpipe/txpipe/batch/analytics"
	"github.com/txpipe/txpipe/serving/api"
)

// fakeDays is the number of rows of the fake daily view.
const fakeDays = 5

// fakeAnalytics writes a results directory where two views are built:
// daily (fakeDays days from 2025-04-01, with a date column) and kpis
// (without one).
func fakeAnalytics(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{analytics.Daily, analytics.KPIs} {
		v, _ := analytics.Lookup(name)
		var b strings.Builder
		b.WriteString(strings.Join(v.ColumnNames(), ",") + "\n")
		for i := range fakeDays {
			row := make([]string, len(v.Columns))
			for j, c := range v.Columns {
				switch c.Type {
				case analytics.Text:
					row[j] = fmt.Sprintf("%q", fmt.Sprintf("t%d, \"quoted\"", i))
				case analytics.Int:
					row[j] = fmt.Sprint(i * 10)
				case analytics.Money:
					row[j] = fmt.Sprintf("-%d.05", i)
				case analytics.Fixed:
					if c.Nullable && i == 0 {
						row[j] = "" // NULL
					} else {
						row[j] = "0." + strings.Repeat("5", c.Scale)
					}
				case analytics.Date:
					row[j] = fmt.Sprintf("2025-04-%02d", i+1)
				}
			}
			// encoding/csv writes "" inside a quoted field; %q wrote \"
			b.WriteString(strings.ReplaceAll(strings.Join(row, ","), `\"`, `""`) + "\n")
		}
		if err := os.WriteFile(filepath.Join(dir, v.File()), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// doAccept is client.do with an Accept header; it returns the content
// type too.
func doAccept(t *testing.T, c *client, path, accept string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", c.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

type analyticsViewJSON struct {
	View    string `json:"view"`
	Columns []struct {
		Name, Type string
		Nullable   bool
	} `json:"columns"`
	Rows []map[string]any `json:"rows"`
}

func TestAnalyticsEndpoints(t *testing.T) {
	dir := fakeAnalytics(t)
	srv := &api.Server{Addr: "127.0.0.1:0", Store: fakeStore{}, Log: quietLog, Analytics: analytics.Files(dir)}
	if err := srv.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	c := newClient(t, srv, "")

	// The list: every view of the catalog, in order, two built.
	var list struct {
		Views []struct {
			Name       string `json:"name"`
			Path       string `json:"path"`
			Built      bool   `json:"built"`
			DateColumn string `json:"date_column"`
			Columns    []struct{ Name string }
		} `json:"views"`
	}
	c.get("/api/analytics", &list)
	var names []string
	for _, v := range list.Views {
		names = append(names, v.Name)
		built := v.Name == analytics.Daily || v.Name == analytics.KPIs
		if v.Built != built || v.Path != "/api/analytics/"+v.Name || len(v.Columns) == 0 {
			t.Errorf("view %+v", v)
		}
		if cat, _ := analytics.Lookup(v.Name); v.DateColumn != cat.DateColumn {
			t.Errorf("view %s: date column %q, want %q", v.Name, v.DateColumn, cat.DateColumn)
		}
	}
	var want []string
	for _, v := range analytics.Views() {
		want = append(want, v.Name)
	}
	if !slices.Equal(names, want) {
		t.Errorf("views %v, want %v", names, want)
	}

	// JSON: typed values, NULL as null, text as it is.
	var daily analyticsViewJSON
	c.get("/api/analytics/daily", &daily)
	if daily.View != "daily" || len(daily.Rows) != fakeDays || len(daily.Columns) != len(mustView(t, "daily").Columns) {
		t.Fatalf("daily: %+v", daily)
	}
	r0, r2 := daily.Rows[0], daily.Rows[2]
	if r0["date"] != "2025-04-01" || r2["transactions"] != 20.0 || r2["amount"] != -2.05 || r0["approval_rate"] != nil ||
		r2["approval_rate"] != 0.555555 || r2["weekday"] != `t2, "quoted"` {
		t.Errorf("daily rows %v / %v", r0, r2)
	}
	// Numbers keep the CSV's digits exactly.
	_, _, raw := doAccept(t, c, "/api/analytics/daily?limit=3", "")
	if !strings.Contains(string(raw), `"amount":-2.05,`) || !strings.Contains(string(raw), `"approval_rate":0.555555,`) {
		t.Errorf("daily JSON %s", raw)
	}

	// from, to (both included) and limit.
	for _, tc := range []struct {
		query string
		dates []string
	}{
		{"from=2025-04-02&to=2025-04-04", []string{"2025-04-02", "2025-04-03", "2025-04-04"}},
		{"from=2025-04-04", []string{"2025-04-04", "2025-04-05"}},
		{"to=2025-04-01", []string{"2025-04-01"}},
		{"from=2025-04-02&limit=2", []string{"2025-04-02", "2025-04-03"}},
		{"from=2025-05-01", nil},
	} {
		var v analyticsViewJSON
		c.get("/api/analytics/daily?"+tc.query, &v)
		var got []string
		for _, r := range v.Rows {
			got = append(got, r["date"].(string))
		}
		if !slices.Equal(got, tc.dates) {
			t.Errorf("?%s: %v, want %v", tc.query, got, tc.dates)
		}
	}

	// CSV: the file itself, when asked for.
	file, err := os.ReadFile(filepath.Join(dir, "analytics_daily.csv"))
	if err != nil {
		t.Fatal(err)
	}
	for _, accept := range []string{"text/csv", "text/csv; q=0.9, application/json; q=0.5", "application/json;q=0.1, text/csv"} {
		code, ctype, b := doAccept(t, c, "/api/analytics/daily", accept)
		if code != 200 || !strings.HasPrefix(ctype, "text/csv") || string(b) != string(file) {
			t.Errorf("Accept %q: %d %s\n%s\nwant\n%s", accept, code, ctype, b, file)
		}
	}
	code, ctype, b := doAccept(t, c, "/api/analytics/daily?to=2025-04-02", "text/csv")
	if lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n"); code != 200 || len(lines) != 3 || lines[0] != strings.Join(mustView(t, "daily").ColumnNames(), ",") {
		t.Errorf("CSV to=2025-04-02: %d %s\n%s", code, ctype, b)
	}
	// Browsers and clients that take anything get JSON.
	for _, accept := range []string{"", "*/*", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "application/json, text/csv;q=0.5", "text/csv;q=0"} {
		if code, ctype, _ := doAccept(t, c, "/api/analytics/daily", accept); code != 200 || ctype != "application/json" {
			t.Errorf("Accept %q: %d %s", accept, code, ctype)
		}
	}

	// Errors.
	for _, e := range []struct {
		path  string
		code  int
		param string
		msg   string
	}{
		{"/api/analytics/nosuchview", 404, "", "nosuchview"},
		{"/api/analytics/regions", 404, "", "not been built yet"},
		{"/api/analytics/Regions", 400, "view", "not a view name"},
		{"/api/analytics/kpis?from=2025-04-01", 400, "from", "no date column"},
		{"/api/analytics/daily?from=2025-04-31", 400, "from", "not a date"},
		{"/api/analytics/daily?to=yesterday", 400, "to", "not a date"},
		{"/api/analytics/daily?limit=0", 400, "limit", "row count"},
		{"/api/analytics/daily?limit=1000001", 400, "limit", "row count"},
		{"/api/analytics/daily?cursor=x", 400, "cursor", "unknown parameter"},
		{"/api/analytics?limit=1", 400, "limit", "unknown parameter"},
	} {
		code, b := c.do("GET", e.path)
		var body struct{ Error, Parameter string }
		if err := json.Unmarshal(b, &body); err != nil || code != e.code || body.Parameter != e.param || !strings.Contains(body.Error, e.msg) {
			t.Errorf("GET %s: %d %s, want %d naming %q, saying %q", e.path, code, b, e.code, e.param, e.msg)
		}
		if strings.Contains(string(b), string(filepath.Separator)+"analytics_") {
			t.Errorf("GET %s: the answer names a file: %s", e.path, b)
		}
	}
}

// TestAnalyticsOpenAPIViews: the document's view names are the catalog's.
func TestAnalyticsOpenAPIViews(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]struct {
			Parameters []struct {
				Name   string
				Schema struct{ Enum []string }
			}
		}
	}
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	var enum, want []string
	for _, p := range doc.Paths["/api/analytics/{view}"]["get"].Parameters {
		if p.Name == "view" {
			enum = p.Schema.Enum
		}
	}
	for _, v := range analytics.Views() {
		want = append(want, v.Name)
	}
	if !slices.Equal(enum, want) {
		t.Errorf("the OpenAPI document names the views %v, the catalog %v", enum, want)
	}
}

func mustView(t *testing.T, name string) analytics.View {
	t.Helper()
	v, ok := analytics.Lookup(name)
	if !ok {
		t.Fatalf("no view %s", name)
	}
	return v
}
