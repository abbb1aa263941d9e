package api

import (
	_ "embed"
	"net/http"
	"strings"
	"unicode"

	"github.com/txpipe/txpipe"
)

//go:embed openapi.json
var openAPI []byte

// OpenAPI is the OpenAPI 3 document of the API.
func OpenAPI() []byte { return openAPI }

// builtinRoutes are the API's endpoints.
func builtinRoutes(s *Server) []Route {
	return []Route{
		{Method: "GET", Path: "/api/cards/{id}", h: s.card},
		{Method: "GET", Path: "/api/cards/{id}/transactions", Query: []string{"from", "to", "cursor", "limit"}, h: s.cardTransactions},
		{Method: "GET", Path: "/api/transactions", Query: []string{"card_number", "from", "to", "cursor", "limit"}, h: s.transactionsByNumber},
		{Method: "GET", Path: "/api/merchants/{name}/transactions", Query: []string{"from", "to", "cursor", "limit"}, h: s.merchantTransactions},
		{Method: "GET", Path: "/api/customers/{id}", h: s.customer},
		{Method: "GET", Path: "/api/rejected", Query: []string{"reason", "from", "to", "cursor", "limit"}, h: s.rejected},
		{Method: "GET", Path: "/api/batch-runs", Query: []string{"cursor", "limit"}, h: s.batchRuns},
		{Method: "GET", Path: "/api/openapi.json", h: func(w http.ResponseWriter, r *http.Request, _ *params) error {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-cache")
			w.Write(openAPI)
			return nil
		}},
	}
}

func (s *Server) card(w http.ResponseWriter, r *http.Request, p *params) error {
	id, err := p.id("id")
	if err != nil {
		return err
	}
	c, b, err := s.Store.Card(r.Context(), id)
	if err != nil {
		return err
	}
	out := toCard(c)
	out.LastBatch = toBatch(b)
	writeJSON(w, http.StatusOK, out)
	return nil
}

// txQuery reads the range, the cursor and the page size of a
// transactions endpoint.
func txQuery(p *params) (txpipe.TxQuery, error) {
	var q txpipe.TxQuery
	var err error
	if q.From, q.To, err = p.timeRange(); err != nil {
		return q, err
	}
	if q.After, err = p.txCursor(); err != nil {
		return q, err
	}
	q.Limit, err = p.limit()
	return q, err
}

func (s *Server) transactions(w http.ResponseWriter, r *http.Request, q txpipe.TxQuery) error {
	page, err := s.Store.Transactions(r.Context(), q)
	if err != nil {
		return err
	}
	next := ""
	if page.More && len(page.Rows) > 0 {
		next = txCursor(page.Rows[len(page.Rows)-1].Key())
	}
	bp := bufs.Get().(*[]byte)
	b := append(appendTransactionPage((*bp)[:0], page.Rows, next), '\n')
	writeBody(w, http.StatusOK, b)
	if cap(b) <= 1<<20 {
		*bp = b[:0]
		bufs.Put(bp)
	}
	return nil
}

func (s *Server) cardTransactions(w http.ResponseWriter, r *http.Request, p *params) error {
	id, err := p.id("id")
	if err != nil {
		return err
	}
	q, err := txQuery(p)
	if err != nil {
		return err
	}
	q.CardID = id
	return s.transactions(w, r, q)
}

// transactionsByNumber finds a card by its number, matched exactly. The
// number is never echoed, not even in an error.
func (s *Server) transactionsByNumber(w http.ResponseWriter, r *http.Request, p *params) error {
	number := p.str("card_number")
	if number == "" {
		return badParam("card_number", "required")
	}
	if len(number) > 32 || strings.IndexFunc(number, func(c rune) bool { return !unicode.IsPrint(c) }) >= 0 {
		return badParam("card_number", "not a card number")
	}
	q, err := txQuery(p)
	if err != nil {
		return err
	}
	if q.CardID, err = s.Store.CardByNumber(r.Context(), number); err != nil {
		return err
	}
	return s.transactions(w, r, q)
}

func (s *Server) merchantTransactions(w http.ResponseWriter, r *http.Request, p *params) error {
	name, err := p.text("name")
	if err != nil {
		return err
	}
	q, err := txQuery(p)
	if err != nil {
		return err
	}
	q.Merchant = name
	return s.transactions(w, r, q)
}

func (s *Server) customer(w http.ResponseWriter, r *http.Request, p *params) error {
	id, err := p.id("id")
	if err != nil {
		return err
	}
	c, b, err := s.Store.Customer(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toCustomer(c, b))
	return nil
}

// rejectReasons are the reasons ?reason= takes.
var rejectReasons = map[txpipe.RejectReason]bool{
	txpipe.RejectFieldCount: true, txpipe.RejectBadJSON: true, txpipe.RejectTransactionID: true,
	txpipe.RejectCardID: true, txpipe.RejectAmount: true, txpipe.RejectTimestamp: true, txpipe.RejectText: true,
	txpipe.RejectUnknownCard: true, txpipe.RejectDuplicate: true, "bad_csv": true,
}

func (s *Server) rejected(w http.ResponseWriter, r *http.Request, p *params) error {
	var q txpipe.RejectedQuery
	if v := p.str("reason"); v != "" {
		if !rejectReasons[txpipe.RejectReason(v)] {
			return badParam("reason", "%q is not a reject reason", clip(v))
		}
		q.Reason = txpipe.RejectReason(v)
	}
	var err error
	if q.From, q.To, err = p.timeRange(); err != nil {
		return err
	}
	if q.After, err = p.rejectedCursor(); err != nil {
		return err
	}
	if q.Limit, err = p.limit(); err != nil {
		return err
	}
	page, err := s.Store.Rejected(r.Context(), q)
	if err != nil {
		return err
	}
	out := rejectedPage{Items: make([]rejectedJSON, 0, len(page.Rows))}
	for _, row := range page.Rows {
		out.Items = append(out.Items, toRejected(row))
	}
	if page.More && len(page.Rows) > 0 {
		out.NextCursor = rejectedCursor(page.Rows[len(page.Rows)-1].Pos)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) batchRuns(w http.ResponseWriter, r *http.Request, p *params) error {
	var q txpipe.RunQuery
	var err error
	if q.Before, err = p.runCursor(); err != nil {
		return err
	}
	if q.Limit, err = p.limit(); err != nil {
		return err
	}
	page, err := s.Store.BatchRuns(r.Context(), q)
	if err != nil {
		return err
	}
	out := runPage{Items: make([]runJSON, 0, len(page.Runs))}
	for _, run := range page.Runs {
		out.Items = append(out.Items, toRun(run))
	}
	if page.More && len(page.Runs) > 0 {
		out.NextCursor = runCursor(page.Runs[len(page.Runs)-1].ID)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
