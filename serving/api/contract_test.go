package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/batch"
	"github.com/txpipe/txpipe/batch/analytics"
)

// TestEndpoints runs every endpoint and every error answer against both
// modes, fed by one pipeline (a batch over the first part of the stream,
// the rest pending): each answer is checked against what the stream and
// the batch wrote, and the two modes must give the same answers.
func TestEndpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline")
	}
	p := newPipeline(t, "endpoints", 2500, 40)
	p.step(t, 1800)
	p.runBatch(t, modeMemory)
	p.runBatch(t, modeMySQL)
	p.step(t, p.rows)
	tr := p.truth(t)
	if tr.rejected == 0 || len(tr.all) == 0 {
		t.Fatalf("the pipeline wrote %d results and %d rejected rows", len(tr.all), tr.rejected)
	}
	m, err := batch.ReadManifest(p.results)
	if err != nil {
		t.Fatal(err)
	}
	clients := map[string]*client{}
	for _, mode := range []string{modeMemory, modeMySQL} {
		c := newClient(t, p.serve(t, mode, ""), "")
		caughtUp(t, c, tr)
		waitFor(t, mode+" to read the rejected rows", func() bool {
			return len(allRejected(c, "/api/rejected", 500)) == tr.rejected
		})
		clients[mode] = c
	}
	// same fetches path in both modes and says whether the answers agree
	// (run times differ: each mode had a batch run of its own).
	same := func(path string) {
		t.Helper()
		var answers []string
		for _, mode := range []string{modeMemory, modeMySQL} {
			code, b := clients[mode].do("GET", path)
			answers = append(answers, fmt.Sprintf("%d %s", code, normalize(t, b)))
		}
		if answers[0] != answers[1] {
			t.Errorf("GET %s: the modes differ:\nmemory: %.600s\nmysql:  %.600s", path, answers[0], answers[1])
		}
	}

	for mode, c := range clients {
		t.Run(mode, func(t *testing.T) {
			c.t = t
			// Cards: the merge rule against the truth.
			for _, card := range p.master.Cards {
				run, hasBatch := checkCard(t, c, p.master, tr, card.ID, true)
				if !hasBatch || run != m.RunID {
					t.Fatalf("card %d: answered from run %d (batch %v), want run %d", card.ID, run, hasBatch, m.RunID)
				}
			}
			var card cardJSON
			c.get("/api/cards/1", &card)
			if want := maskedLast4(p.master.Cards[0].Number); card.CardNumber != want {
				t.Errorf("card number %q, want %q", card.CardNumber, want)
			}

			// By number: the same transactions as by id, the number never echoed.
			for _, card := range p.master.Cards[:5] {
				byID := c.allTransactions(fmt.Sprintf("/api/cards/%d/transactions", card.ID), 3)
				byNumber := c.allTransactions("/api/transactions?card_number="+url.QueryEscape(card.Number), 3)
				a, _ := json.Marshal(byID)
				b, _ := json.Marshal(byNumber)
				if string(a) != string(b) || len(byID) == 0 {
					t.Errorf("card %d: by number %d transactions, by id %d", card.ID, len(byNumber), len(byID))
				}
			}

			// Time ranges, both bounds included, in both forms.
			rows := tr.byCard[p.master.Cards[3].ID]
			if len(rows) < 3 {
				t.Fatalf("card %d has %d transactions", p.master.Cards[3].ID, len(rows))
			}
			from, to := rows[1].Timestamp, rows[len(rows)-2].Timestamp
			var want []int64
			for _, r := range rows {
				if !r.Timestamp.Before(from) && !r.Timestamp.After(to) {
					want = append(want, r.ID)
				}
			}
			for _, q := range []string{
				"from=" + url.QueryEscape(from.Format(txpipe.TimestampLayout)) + "&to=" + url.QueryEscape(to.Format(txpipe.TimestampLayout)),
				"from=" + url.QueryEscape(from.Format("2006-01-02T15:04:05Z07:00")) + "&to=" + url.QueryEscape(to.In(fixedZone).Format("2006-01-02T15:04:05Z07:00")),
			} {
				got := ids(c.allTransactions(fmt.Sprintf("/api/cards/%d/transactions?%s", p.master.Cards[3].ID, q), 2))
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("?%s: %v, want %v", q, got, want)
				}
			}

			// Merchants.
			merchants := merchantsWithMost(tr, 5)
			for _, name := range merchants {
				got := ids(c.allTransactions("/api/merchants/"+url.PathEscape(name)+"/transactions", 2))
				var want []int64
				for _, r := range tr.byMerchant[name] {
					want = append(want, r.ID)
				}
				sortIDsByTime(want, tr)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("merchant %q: %v, want %v", name, got, want)
				}
			}

			// Customers: scores before (master) and after (the batch), usage.
			for _, cust := range p.master.Customers[:20] {
				var got struct {
					CustomerID int64      `json:"customer_id"`
					Before     int64      `json:"credit_score_before"`
					After      int64      `json:"credit_score_after"`
					Change     int64      `json:"score_change"`
					Usage      string     `json:"usage_percent"`
					Cards      []cardJSON `json:"cards"`
					LastBatch  *batchJSON `json:"last_batch"`
				}
				c.get(fmt.Sprintf("/api/customers/%d", cust.ID), &got)
				var nCards int
				for _, card := range p.master.Cards {
					if card.CustomerID == cust.ID {
						nCards++
					}
				}
				if got.Before != cust.CreditScore || got.After-got.Before != got.Change || len(got.Cards) != nCards || got.LastBatch == nil || got.Usage == "" {
					t.Errorf("customer %d: %+v", cust.ID, got)
				}
			}

			// Rejected rows: all of them, by reason, by time.
			all := allRejected(c, "/api/rejected", 7)
			if len(all) != tr.rejected {
				t.Errorf("%d rejected rows listed, the sink wrote %d", len(all), tr.rejected)
			}
			for reason, n := range tr.reasons {
				got := allRejected(c, "/api/rejected?reason="+reason, 5)
				if len(got) != n {
					t.Errorf("reason %s: %d rows, want %d", reason, len(got), n)
				}
				for _, r := range got {
					if r["reason"] != reason {
						t.Errorf("reason %s: a row with reason %v", reason, r["reason"])
					}
				}
			}
			var inRange int
			for _, r := range all {
				if ts, _ := r["timestamp"].(string); ts >= "2025-04-02 00:00:00" && ts <= "2025-04-03 00:00:00" {
					inRange++
				}
			}
			if got := allRejected(c, "/api/rejected?from=2025-04-02%2000:00:00&to=2025-04-03T00:00:00Z", 5); len(got) != inRange {
				t.Errorf("rejected in a day: %d, want %d", len(got), inRange)
			}

			// Batch runs.
			var runs struct {
				Items []struct {
					RunID   int64            `json:"run_id"`
					Status  string           `json:"status"`
					Cutoffs map[string]int64 `json:"cutoffs"`
				} `json:"items"`
			}
			c.get("/api/batch-runs", &runs)
			if len(runs.Items) != 1 || runs.Items[0].Status != "ok" || len(runs.Items[0].Cutoffs) != len(m.Cutoffs) {
				t.Errorf("batch runs %+v, manifest cut-offs %v", runs, m.Cutoffs)
			}

			// Every error answer: a JSON body, the parameter named.
			for _, e := range []struct {
				path  string
				code  int
				param string
			}{
				{"/api/cards/abc", 400, "id"},
				{"/api/cards/0", 400, "id"},
				{"/api/cards/-3", 400, "id"},
				{"/api/cards/99999999999999999999", 400, "id"},
				{"/api/cards/999999", 404, ""},
				{"/api/cards/999999/transactions", 404, ""},
				{"/api/cards/1/transactions?from=yesterday", 400, "from"},
				{"/api/cards/1/transactions?to=2025-13-01%2000:00:00", 400, "to"},
				{"/api/cards/1/transactions?from=2025-04-03%2000:00:00&to=2025-04-02%2000:00:00", 400, "to"},
				{"/api/cards/1/transactions?cursor=nope", 400, "cursor"},
				{"/api/cards/1/transactions?cursor=" + rejectedCursorOf(c, t), 400, "cursor"},
				{"/api/cards/1/transactions?limit=0", 400, "limit"},
				{"/api/cards/1/transactions?limit=1001", 400, "limit"},
				{"/api/cards/1/transactions?limit=ten", 400, "limit"},
				{"/api/cards/1/transactions?limit=5&limit=6", 400, "limit"},
				{"/api/cards/1/transactions?colour=red", 400, "colour"},
				{"/api/cards/1?from=2025-04-01%2000:00:00", 400, "from"},
				{"/api/transactions", 400, "card_number"},
				{"/api/transactions?card_number=4111-1111-1111-1111", 404, ""},
				{"/api/merchants/No%20Such%20Merchant%20Inc/transactions", 404, ""},
				{"/api/customers/x", 400, "id"},
				{"/api/customers/424242", 404, ""},
				{"/api/rejected?reason=bad_luck", 400, "reason"},
				{"/api/rejected?cursor=" + url.QueryEscape("dHwxfDE"), 400, "cursor"},
				{"/api/batch-runs?limit=-1", 400, "limit"},
				{"/api/batch-runs?cursor=%25%25", 400, "cursor"},
				{"/api/nothing", 404, ""},
			} {
				code, b := c.do("GET", e.path)
				var body struct {
					Error     string `json:"error"`
					Parameter string `json:"parameter"`
				}
				if err := json.Unmarshal(b, &body); err != nil || code != e.code || body.Parameter != e.param || body.Error == "" {
					t.Errorf("GET %s: %d %s, want %d naming %q", e.path, code, b, e.code, e.param)
				}
				if strings.Contains(string(b), "4111") {
					t.Errorf("GET %s echoes the card number: %s", e.path, b)
				}
			}
			// Analytics: every view built by the batch, answered as its
			// CSV file (MySQL mode: from the tables, byte for byte the
			// file the same run wrote).
			dir := p.results
			if mode == modeMySQL {
				dir = p.dbViews
			}
			var list struct {
				Views []struct {
					Name  string
					Built bool
				}
			}
			c.get("/api/analytics", &list)
			if len(list.Views) != len(analytics.Views()) {
				t.Errorf("/api/analytics lists %d views, the catalog has %d", len(list.Views), len(analytics.Views()))
			}
			for _, v := range list.Views {
				file, err := os.ReadFile(filepath.Join(dir, "analytics_"+v.Name+".csv"))
				if err != nil || !v.Built {
					t.Errorf("view %s: built %v, file: %v", v.Name, v.Built, err)
					continue
				}
				code, ctype, b := doAccept(t, c, "/api/analytics/"+v.Name, "text/csv")
				if code != 200 || !strings.HasPrefix(ctype, "text/csv") || string(b) != string(file) {
					t.Errorf("GET /api/analytics/%s as CSV: %d %s, %d bytes, the file %d bytes:\n%.300s\nwant\n%.300s", v.Name, code, ctype, len(b), len(file), b, file)
				}
				var rows struct{ Rows []map[string]any }
				c.get("/api/analytics/"+v.Name, &rows)
				if n := strings.Count(string(file), "\n") - 1; len(rows.Rows) != n && !strings.Contains(string(file), "\"") {
					t.Errorf("GET /api/analytics/%s: %d rows, the file %d", v.Name, len(rows.Rows), n)
				}
			}

			if code, _ := c.do("POST", "/api/cards/1"); code != http.StatusMethodNotAllowed {
				t.Errorf("POST /api/cards/1: %d, want 405", code)
			}
		})
	}

	// The two modes answer alike.
	t.Run("same answers", func(t *testing.T) {
		for _, mode := range []string{modeMemory, modeMySQL} {
			clients[mode].t = t
		}
		for _, card := range p.master.Cards {
			same(fmt.Sprintf("/api/cards/%d", card.ID))
			same(fmt.Sprintf("/api/cards/%d/transactions?limit=1000", card.ID))
		}
		for _, card := range p.master.Cards[:10] {
			same(fmt.Sprintf("/api/cards/%d/transactions?limit=4&from=2025-04-02%%2000:00:00", card.ID))
		}
		for _, cust := range p.master.Customers {
			same(fmt.Sprintf("/api/customers/%d", cust.ID))
		}
		for _, name := range merchantsWithMost(tr, 20) {
			same("/api/merchants/" + url.PathEscape(name) + "/transactions?limit=3")
		}
		same("/api/rejected?limit=1000")
		for reason := range tr.reasons {
			same("/api/rejected?limit=3&reason=" + reason)
		}
		same("/api/cards/abc")
		same("/api/cards/1/transactions?limit=0")
		same("/api/analytics")
		for _, v := range analytics.Views() {
			same("/api/analytics/" + v.Name)
			if v.DateColumn != "" {
				same("/api/analytics/" + v.Name + "?from=2025-04-02&to=2025-04-03&limit=5")
			}
		}
	})
}

// fixedZone writes RFC 3339 times with an offset.
var fixedZone = time.FixedZone("UTC+2", 2*3600)

// normalize drops what differs between two modes' batch runs: their run
// times.
func normalize(t *testing.T, b []byte) string {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Errorf("not JSON: %s", b)
		return string(b)
	}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			delete(x, "finished_at")
			delete(x, "started_at")
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	out, _ := json.Marshal(v)
	return string(out)
}

func allRejected(c *client, path string, limit int) []map[string]any {
	var out []map[string]any
	cursor := ""
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	for pages := 0; pages < 10000; pages++ {
		q := fmt.Sprintf("%s%slimit=%d", path, sep, limit)
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		var page struct {
			Items      []map[string]any `json:"items"`
			NextCursor string           `json:"next_cursor"`
		}
		if !c.get(q, &page) {
			return out
		}
		out = append(out, page.Items...)
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	return out
}

// rejectedCursorOf returns a cursor of the rejected rows, to pass where
// a transactions cursor is expected.
func rejectedCursorOf(c *client, t *testing.T) string {
	var page struct {
		NextCursor string `json:"next_cursor"`
	}
	c.get("/api/rejected?limit=1", &page)
	if page.NextCursor == "" {
		t.Fatal("no next cursor on a page of one rejected row")
	}
	return url.QueryEscape(page.NextCursor)
}

func ids(txs []txJSON) []int64 {
	var out []int64
	for _, x := range txs {
		out = append(out, x.TransactionID)
	}
	return out
}

func merchantsWithMost(tr truth, n int) []string {
	var names []string
	for name := range tr.byMerchant {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := len(tr.byMerchant[names[i]]), len(tr.byMerchant[names[j]])
		return a > b || a == b && names[i] < names[j]
	})
	return names[:min(n, len(names))]
}

// sortIDsByTime orders ids as the answers do: by timestamp, then id.
func sortIDsByTime(ids []int64, tr truth) {
	at := map[int64]txpipe.Result{}
	for _, r := range tr.all {
		at[r.ID] = r
	}
	slices.SortFunc(ids, func(a, b int64) int { return at[a].Key().Compare(at[b].Key()) })
}

func maskedLast4(number string) string {
	b := []byte(number)
	keep := 4
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] >= '0' && b[i] <= '9' {
			if keep > 0 {
				keep--
			} else {
				b[i] = '*'
			}
		}
	}
	return string(b)
}
