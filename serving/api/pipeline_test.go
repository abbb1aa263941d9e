package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/batch"
	"github.com/txpipe/txpipe/batch/analytics"
	"github.com/txpipe/txpipe/dataset"
	"github.com/txpipe/txpipe/internal/mask"
	"github.com/txpipe/txpipe/internal/mysqltest"
	"github.com/txpipe/txpipe/serving/api"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/serving/memory"
	"github.com/txpipe/txpipe/serving/mysqlstore"
	"github.com/txpipe/txpipe/stream"
	"github.com/txpipe/txpipe/stream/embedded"
)

// The end-to-end tests run the real pipeline: a generated dataset (with
// malformed rows) produced to an embedded broker, the validator and the
// sinks (CSV and MariaDB) of stream.Consume, the batch in CSV mode and in
// MySQL mode, and serve in both modes on port 0.

var (
	brokerOnce sync.Once
	broker     *embedded.Broker
	brokerErr  error
)

// sharedBroker is one embedded broker for the package's tests; each
// pipeline has topics and groups of its own.
func sharedBroker(t *testing.T) []string {
	t.Helper()
	brokerOnce.Do(func() { broker, brokerErr = embedded.Start(0, "") })
	if brokerErr != nil {
		t.Fatal(brokerErr)
	}
	return broker.Addrs()
}

type pipeline struct {
	name     string
	brokers  []string
	topics   stream.Topics
	data     string // the dataset
	results  string // the consumer's CSV results; the CSV-mode batch's views and manifest
	dbViews  string // the MySQL-mode batch's CSV output (unused by serve)
	db       *mysqlstore.DB
	dbCfg    *mysql.Config
	master   *txpipe.Master
	rows     int // transaction rows of the dataset (good and malformed)
	produced int // rows produced so far
}

// newPipeline generates a dataset, publishes its master data and loads it
// into a fresh database.
func newPipeline(t *testing.T, name string, transactions, bad int) *pipeline {
	t.Helper()
	p := &pipeline{name: name, brokers: sharedBroker(t), topics: stream.TopicsFor(name), data: t.TempDir(), results: t.TempDir(), dbViews: t.TempDir()}
	st, err := dataset.Generate(context.Background(), p.data, dataset.Options{Customers: 120, Cards: 200, Transactions: transactions, Seed: 11, BadRows: bad})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range st.Bad {
		p.rows += n
	}
	p.rows += st.Transactions
	if p.master, err = csvfile.ReadMaster(p.data); err != nil {
		t.Fatal(err)
	}
	if err := stream.PublishMaster(context.Background(), p.brokers, p.topics, p.master.Cards, p.master.Customers); err != nil {
		t.Fatal(err)
	}
	p.dbCfg = mysqltest.NewDatabase(t)
	if p.db, err = mysqlstore.Open(context.Background(), p.dbCfg, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.db.Close() })
	if err := p.db.LoadMaster(context.Background(), p.master); err != nil {
		t.Fatal(err)
	}
	return p
}

// produce publishes the next n rows of the dataset's transactions file.
func (p *pipeline) produce(t *testing.T, n int) stream.ProduceStats {
	t.Helper()
	src, err := stream.CSVRows(filepath.Join(p.data, csvfile.TransactionsFile))
	if err != nil {
		t.Fatal(err)
	}
	from, to := p.produced, min(p.produced+n, p.rows)
	p.produced = to
	i := 0
	part := stream.RowsOf("test part", func(yield func(stream.Row) error) error {
		return src.Rows("", func(r stream.Row) error {
			i++
			if i > from && i <= to {
				return yield(r)
			}
			return nil
		})
	})
	st, err := stream.Produce(context.Background(), stream.ProducerConfig{Brokers: p.brokers, Topics: p.topics}, part)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// consume runs the validator and the sinks (CSV and MySQL) until they
// wrote want records.
func (p *pipeline) consume(t *testing.T, want int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, err := stream.Consume(ctx, stream.ConsumeConfig{
		Brokers: p.brokers, Topics: p.topics, Group: p.name, Instance: p.name, ResultsDir: p.results,
		Store: p.db, Transient: mysqlstore.IsTransient,
		Done: func(s stream.ConsumeStats) bool { return s.Written >= want },
	})
	if err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatalf("consume: only part of %d records written in 3 minutes", want)
	}
}

// step produces the next n rows and consumes them.
func (p *pipeline) step(t *testing.T, n int) {
	t.Helper()
	st := p.produce(t, n)
	p.consume(t, st.Records+st.Rejected)
}

// batchOptions are the options of the batch in a mode.
func (p *pipeline) batchOptions(mode string) batch.Options {
	o := batch.Options{Topic: p.topics.Validated, Log: quietLog, Analytics: true}
	if mode == modeMySQL {
		o.DB, o.ResultsDir = p.db.SQL, p.dbViews
	} else {
		o.DataDir, o.ResultsDir = p.data, p.results
	}
	return o
}

func (p *pipeline) runBatch(t *testing.T, mode string) batch.Summary {
	t.Helper()
	sum, err := batch.Run(context.Background(), p.batchOptions(mode))
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

const (
	modeMemory = "memory"
	modeMySQL  = "mysql"
)

// serve starts the API in a mode on 127.0.0.1:0.
func (p *pipeline) serve(t *testing.T, mode, token string) *api.Server {
	t.Helper()
	var store txpipe.QueryStore
	var views analytics.Source
	var events txpipe.EventStore
	if mode == modeMySQL {
		store, views, events = p.db.Queries(), analytics.MySQL(p.db.SQL), p.db.Queries()
	} else {
		views, events = analytics.Files(p.results), csvfile.Events{Dir: p.results}
		m, err := memory.Open(context.Background(), memory.Config{ResultsDir: p.results, DataDir: p.data, Brokers: p.brokers,
			Topics: p.topics, Reload: 50 * time.Millisecond, Log: quietLog})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Close)
		store = m
	}
	srv := &api.Server{Addr: "127.0.0.1:0", Token: token, Store: store, Log: quietLog, Analytics: views, Events: events}
	if err := srv.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close the server: %v", err)
		}
	})
	return srv
}

// truth is what the stream layer wrote, from the consumer's CSV files.
type truth struct {
	byCard     map[int64][]txpipe.Result
	byMerchant map[string][]txpipe.Result
	all        []txpipe.Result
	rejected   int
	reasons    map[string]int
}

func (p *pipeline) truth(t *testing.T) truth {
	t.Helper()
	tr := truth{byCard: map[int64][]txpipe.Result{}, byMerchant: map[string][]txpipe.Result{}, reasons: map[string]int{}}
	err := csvfile.ReadResults(filepath.Join(p.results, csvfile.StreamFile), func(r txpipe.Result, _ int) error {
		tr.byCard[r.CardID] = append(tr.byCard[r.CardID], r)
		tr.byMerchant[r.Merchant] = append(tr.byMerchant[r.Merchant], r)
		tr.all = append(tr.all, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = csvfile.ReadColumns(filepath.Join(p.results, csvfile.RejectedFile), []string{"reason"}, func(v []string) {
		tr.rejected++
		tr.reasons[v[0]]++
	})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

var quietLog = slog.New(slog.DiscardHandler)

// client is a test's HTTP client of a server; every body it reads is
// checked for card numbers. It reports failures with Errorf only, so that
// goroutines of a test may use it.
type client struct {
	t     *testing.T
	base  string
	token string
}

func newClient(t *testing.T, srv *api.Server, token string) *client {
	return &client{t: t, base: srv.URL(), token: token}
}

func (c *client) do(method, path string) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, nil)
	if err != nil {
		c.t.Errorf("%s %s: %v", method, path, err)
		return 0, nil
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Errorf("%s %s: %v", method, path, err)
		return 0, nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Errorf("%s %s: %v", method, path, err)
		return 0, nil
	}
	// (Metrics have no per-card label; their floats look like long numbers.)
	if leaks := textLeaks(string(b)); len(leaks) > 0 && path != "/metrics" {
		c.t.Errorf("%s %s answers card numbers %q", method, path, leaks)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") && !strings.HasPrefix(ct, "text/plain") {
		c.t.Errorf("%s %s: content type %q", method, path, ct)
	}
	return resp.StatusCode, b
}

// textLeaks returns the card numbers in an answer outside JSON numbers:
// ids (transaction ids of up to 19 digits) are numbers, and only text can
// hold a card number.
func textLeaks(body string) []string {
	var out []string
	for _, l := range mask.Leaks(body) {
		for i := 0; ; {
			j := strings.Index(body[i:], l)
			if j < 0 {
				break
			}
			j += i
			before, after := byte(0), byte(0)
			if j > 0 {
				before = body[j-1]
			}
			if k := j + len(l); k < len(body) {
				after = body[k]
			}
			if !strings.ContainsRune(":[,", rune(before)) || !strings.ContainsRune(",]}", rune(after)) {
				out = append(out, l)
				break
			}
			i = j + len(l)
		}
	}
	return out
}

// get decodes a 200 answer into v, and says whether it could.
func (c *client) get(path string, v any) bool {
	c.t.Helper()
	code, b := c.do("GET", path)
	if code != http.StatusOK {
		c.t.Errorf("GET %s: %d %s", path, code, b)
		return false
	}
	if err := json.Unmarshal(b, v); err != nil {
		c.t.Errorf("GET %s: %v\n%s", path, err, b)
		return false
	}
	return true
}

// The answers, as a client reads them.
type txJSON struct {
	TransactionID  int64   `json:"transaction_id"`
	CardID         int64   `json:"card_id"`
	Merchant       string  `json:"merchant_name"`
	Timestamp      string  `json:"timestamp"`
	Amount         string  `json:"amount"`
	Status         string  `json:"status"`
	PendingBalance string  `json:"pending_balance"`
	Layer          string  `json:"layer"`
	RelatedID      *string `json:"related_transaction_id"`
	KafkaPartition *int32  `json:"kafka_partition"`
	KafkaOffset    *int64  `json:"kafka_offset"`
}

type txPageJSON struct {
	Items      []txJSON `json:"items"`
	NextCursor string   `json:"next_cursor"`
}

type batchJSON struct {
	RunID   int64            `json:"run_id"`
	Cutoffs map[string]int64 `json:"cutoffs"`
}

type cardJSON struct {
	CardID          int64  `json:"card_id"`
	CardNumber      string `json:"card_number"`
	CreditLimit     string `json:"credit_limit"`
	SettledBalance  string `json:"settled_balance"`
	PendingAmount   string `json:"pending_amount"`
	AvailableCredit string `json:"available_credit"`
	Counts          struct {
		Settled map[string]int64 `json:"settled"`
		Pending map[string]int64 `json:"pending"`
	} `json:"counts"`
	LastBatch *batchJSON `json:"last_batch"`
}

// allTransactions reads every page of a transactions endpoint.
func (c *client) allTransactions(path string, limit int) []txJSON {
	c.t.Helper()
	var out []txJSON
	cursor := ""
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	for pages := 0; ; pages++ {
		if pages > 10000 {
			c.t.Errorf("%s: pages never end", path)
			return out
		}
		q := fmt.Sprintf("%s%slimit=%d", path, sep, limit)
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		var page txPageJSON
		if !c.get(q, &page) {
			return out
		}
		if len(page.Items) > limit {
			c.t.Errorf("%s: %d items on a page of %d", q, len(page.Items), limit)
		}
		out = append(out, page.Items...)
		if page.NextCursor == "" {
			return out
		}
		if len(page.Items) == 0 {
			c.t.Errorf("%s: an empty page with a next cursor", q)
			return out
		}
		cursor = page.NextCursor
	}
}

func money(t *testing.T, s string) txpipe.Money {
	t.Helper()
	m, err := txpipe.ParseMoney(s)
	if err != nil {
		t.Errorf("money %q: %v", s, err)
	}
	return m
}

// checkCard checks the merge rule on one card against the stream's truth,
// from one card answer and one transactions answer (each read from one
// consistent state): every transaction is listed once; the listing splits
// each partition at one offset (below it the batch view, at or above it
// the stream); the card's counts cover every transaction; and the settled
// balance plus the pending amount is the balance after its last
// transaction. With strict (no batch swapping meanwhile) the split is the
// cut-off the card answer names. It returns the run the card answer named
// and whether it had a batch view.
func checkCard(t *testing.T, c *client, m *txpipe.Master, tr truth, id int64, strict bool) (batchRun int64, hasBatch bool) {
	t.Helper()
	var card cardJSON
	if !c.get(fmt.Sprintf("/api/cards/%d", id), &card) {
		return 0, false
	}
	txs := c.allTransactions(fmt.Sprintf("/api/cards/%d/transactions", id), 1000)
	want := tr.byCard[id]
	cut := txpipe.Cutoffs{}
	if card.LastBatch != nil {
		cut.Batch, cut.Next = true, map[int32]int64{}
		for p, o := range card.LastBatch.Cutoffs {
			var pn int32
			fmt.Sscan(p, &pn)
			cut.Next[pn] = o
		}
		batchRun, hasBatch = card.LastBatch.RunID, true
	}
	seen := map[int64]txJSON{}
	for i, x := range txs {
		if _, dup := seen[x.TransactionID]; dup {
			t.Errorf("card %d: transaction %d twice", id, x.TransactionID)
		}
		seen[x.TransactionID] = x
		if i > 0 && (txs[i-1].Timestamp > x.Timestamp || (txs[i-1].Timestamp == x.Timestamp && txs[i-1].TransactionID > x.TransactionID)) {
			t.Errorf("card %d: transactions out of order at %d", id, x.TransactionID)
		}
	}
	var settledN, pendingN int64
	for _, n := range card.Counts.Settled {
		settledN += n
	}
	for _, n := range card.Counts.Pending {
		pendingN += n
	}
	if len(txs) != len(want) || settledN+pendingN != int64(len(want)) {
		t.Errorf("card %d: %d transactions listed, counts %d settled + %d pending, the stream wrote %d", id, len(txs), settledN, pendingN, len(want))
	}
	lastBatch, firstStream := map[int32]int64{}, map[int32]int64{}
	for _, r := range want {
		x, ok := seen[r.ID]
		if !ok {
			t.Errorf("card %d: transaction %d (partition %d offset %d) is in neither view", id, r.ID, r.Pos.Partition, r.Pos.Offset)
			continue
		}
		p := r.Pos.Partition
		switch x.Layer {
		case "batch":
			lastBatch[p] = max(lastBatch[p], r.Pos.Offset+1)
			if string(txpipe.Settle(r.Status)) != x.Status {
				t.Errorf("card %d: settled transaction %d is %s, the stream said %s", id, r.ID, x.Status, r.Status)
			}
		case "stream":
			if f, ok := firstStream[p]; !ok || r.Pos.Offset < f {
				firstStream[p] = r.Pos.Offset
			}
			if string(r.Status) != x.Status || x.KafkaOffset == nil || *x.KafkaOffset != r.Pos.Offset {
				t.Errorf("card %d: pending transaction %d: %+v, the stream wrote %s at offset %d", id, r.ID, x, r.Status, r.Pos.Offset)
			}
		default:
			t.Errorf("card %d: transaction %d in layer %q", id, r.ID, x.Layer)
		}
		if strict {
			if settled := cut.Settled(r.Pos); settled != (x.Layer == "batch") {
				t.Errorf("card %d: transaction %d at %d/%d is in layer %s, cut-off %v", id, r.ID, p, r.Pos.Offset, x.Layer, cut.Next)
			}
		}
	}
	for p, first := range firstStream {
		if lastBatch[p] > first {
			t.Errorf("card %d: partition %d: batch rows up to offset %d, stream rows from %d: no single cut-off", id, p, lastBatch[p]-1, first)
		}
	}
	base := m.Cards[slices.IndexFunc(m.Cards, func(c txpipe.Card) bool { return c.ID == id })].CurrentBalance
	if len(want) > 0 {
		base = want[len(want)-1].PendingBalance
	}
	if got := money(t, card.SettledBalance) + money(t, card.PendingAmount); got != base {
		t.Errorf("card %d: settled %s + pending %s = %s, the stream's balance after its last transaction is %s",
			id, card.SettledBalance, card.PendingAmount, got, base)
	}
	if got := money(t, card.CreditLimit) - money(t, card.SettledBalance) - money(t, card.PendingAmount); got != money(t, card.AvailableCredit) {
		t.Errorf("card %d: available %s, want %s", id, card.AvailableCredit, got)
	}
	return batchRun, hasBatch
}

// waitFor polls cond (every 20 ms) until it holds; the bound only keeps
// a broken run from hanging.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if t.Failed() {
			t.FailNow()
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// caughtUp waits until the server's answers hold every stream row of the
// truth (the memory mode follows the topics; MySQL has them already).
func caughtUp(t *testing.T, c *client, tr truth) {
	t.Helper()
	waitFor(t, "serve to read the stream", func() bool {
		for id, rows := range tr.byCard {
			var card cardJSON
			if !c.get(fmt.Sprintf("/api/cards/%d", id), &card) {
				return false
			}
			n := int64(0)
			for _, v := range card.Counts.Settled {
				n += v
			}
			for _, v := range card.Counts.Pending {
				n += v
			}
			if n != int64(len(rows)) {
				return false
			}
		}
		return true
	})
}
