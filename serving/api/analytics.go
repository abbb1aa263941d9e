package api

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/batch/analytics"
)

// MaxAnalyticsLimit bounds ?limit= of an analytics view. Without a limit
// the whole view is returned: its size is bounded by the cards, merchants
// and days of the data, not by its transactions.
const MaxAnalyticsLimit = 1_000_000

// analyticsRoutes are the endpoints of the batch layer's analytics views.
func analyticsRoutes(s *Server) []Route {
	return []Route{
		{Method: "GET", Path: "/api/analytics", h: s.analyticsList},
		{Method: "GET", Path: "/api/analytics/{view}", Query: []string{"from", "to", "limit"}, h: s.analyticsView},
	}
}

// analyticsColumn is a column of a view in the list.
type analyticsColumn struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Nullable bool   `json:"nullable"`
	Doc      string `json:"doc"`
}

// analyticsInfo is a view in the list.
type analyticsInfo struct {
	Name       string            `json:"name"`
	Doc        string            `json:"doc"`
	Path       string            `json:"path"`
	Built      bool              `json:"built"`
	DateColumn string            `json:"date_column,omitempty"`
	Columns    []analyticsColumn `json:"columns"`
}

func (s *Server) analyticsList(w http.ResponseWriter, r *http.Request, _ *params) error {
	infos, err := s.Analytics.List(r.Context())
	if err != nil {
		return fmt.Errorf("list the analytics views: %w", err)
	}
	out := struct {
		Views []analyticsInfo `json:"views"`
	}{Views: []analyticsInfo{}}
	for _, in := range infos {
		cols := make([]analyticsColumn, len(in.Columns))
		for i, c := range in.Columns {
			cols[i] = analyticsColumn{c.Name, c.Type.String(), c.Nullable, c.Doc}
		}
		out.Views = append(out.Views, analyticsInfo{Name: in.Name, Doc: in.Doc, Path: "/api/analytics/" + in.Name,
			Built: in.Built, DateColumn: in.DateColumn, Columns: cols})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// validViewName reports whether v can be a view's name: lowercase letters,
// digits and underscores, at most 64 bytes.
func validViewName(v string) bool {
	if v == "" || len(v) > 64 {
		return false
	}
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func (s *Server) analyticsView(w http.ResponseWriter, r *http.Request, p *params) error {
	name := r.PathValue("view")
	if !validViewName(name) {
		return badParam("view", "%q is not a view name (lowercase letters, digits and _; GET /api/analytics lists them)", clip(name))
	}
	v, ok := analytics.Lookup(name)
	if !ok {
		return fmt.Errorf("analytics view %q (GET /api/analytics lists them): %w", name, txpipe.ErrNotFound)
	}
	var q analytics.Query
	for _, d := range []struct {
		name string
		to   *string
	}{{"from", &q.From}, {"to", &q.To}} {
		x, ok := p.query[d.name]
		if !ok {
			continue
		}
		if _, ok := analytics.ParseDay(x); !ok {
			return badParam(d.name, "%q is not a date (YYYY-MM-DD)", clip(x))
		}
		if v.DateColumn == "" {
			return badParam(d.name, "view %s has no date column to filter on", v.Name)
		}
		*d.to = x
	}
	if x, ok := p.query["limit"]; ok {
		n, err := strconv.Atoi(x)
		if err != nil || n < 1 || n > MaxAnalyticsLimit {
			return badParam("limit", "%q is not a row count from 1 to %d", clip(x), MaxAnalyticsLimit)
		}
		q.Limit = n
	}
	res, err := s.Analytics.Read(r.Context(), name, q)
	switch {
	case errors.Is(err, analytics.ErrNotBuilt):
		return fmt.Errorf("analytics view %s has not been built yet (txpipe batch builds it): %w", name, txpipe.ErrNotFound)
	case errors.Is(err, analytics.ErrUnknownView):
		return fmt.Errorf("analytics view %q: %w", name, txpipe.ErrNotFound)
	case errors.Is(err, analytics.ErrBadQuery):
		return badParam("from", "%s", strings.TrimPrefix(err.Error(), analytics.ErrBadQuery.Error()+": "))
	case err != nil:
		return fmt.Errorf("read analytics view %s: %w", name, err)
	}
	// The view is bounded (see MaxAnalyticsLimit): buffer it, so that an
	// error is still an error answer and the length is known.
	var b bytes.Buffer
	ctype := "application/json"
	if wantsCSV(r) {
		ctype = "text/csv; charset=utf-8"
		err = res.WriteCSV(&b)
	} else {
		err = res.WriteJSON(&b)
	}
	if err != nil {
		return fmt.Errorf("write analytics view %s: %w", name, err)
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Vary", "Accept")
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(http.StatusOK)
	w.Write(b.Bytes())
	return nil
}

// wantsCSV reports whether the request's Accept header asks for text/csv:
// it names text/csv with a quality above 0 and at least that of
// application/json (wildcards, as browsers send, answer JSON).
func wantsCSV(r *http.Request) bool {
	csvQ, jsonQ := -1.0, -1.0
	for _, h := range r.Header.Values("Accept") {
		for _, part := range strings.Split(h, ",") {
			mt, ps, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			q := 1.0
			if x, ok := ps["q"]; ok {
				if f, err := strconv.ParseFloat(x, 64); err == nil {
					q = f
				}
			}
			switch mt {
			case "text/csv":
				csvQ = max(csvQ, q)
			case "application/json":
				jsonQ = max(jsonQ, q)
			}
		}
	}
	return csvQ > 0 && csvQ >= jsonQ
}
