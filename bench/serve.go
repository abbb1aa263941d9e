package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/batch"
	"github.com/txpipe/txpipe/dataset"
	"github.com/txpipe/txpipe/serving/api"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/serving/mysqlstore"
	"github.com/txpipe/txpipe/stream"
	"github.com/txpipe/txpipe/stream/embedded"
)

// ServeOptions configure RunServe, the benchmark of txpipe serve.
type ServeOptions struct {
	Transactions int // transactions to generate (1,000,000 in the README)
	Cards        int // cards they are spread over (50,000)
	// Requests is how many requests each phase issues in all (20,000
	// when zero), from Clients concurrent loopback clients (8).
	Requests, Clients int
	// MySQL is the server; the run creates a database of its own and
	// drops it at the end.
	MySQL *mysql.Config
	// Binary, when set, is the txpipe executable: serve also runs as a
	// child process, with MySQL and without a database, so that its RSS is
	// its own.
	Binary string
	Out    io.Writer
	Log    *slog.Logger
}

// Rate is one phase's measurement.
type Rate struct {
	Name          string
	Requests      int
	Errors        int
	Took          time.Duration
	PerSecond     float64
	P50, P99      time.Duration
	PeakRSSMiB    float64 // the child serve process's (0: in-process)
	RSSMiB        float64 // the child's resident memory after the load
	HeapMiB       float64 // the child's Go heap in use after the load
	Held          string  // what the child holds in memory (without a database)
	RowsPerAnswer float64
}

// ServeReport is the outcome of RunServe.
type ServeReport struct {
	Transactions, Cards int
	Bare, API           Rate // the same statements on the same pool; through HTTP
	ChildMySQL          Rate // the serve binary with MySQL
	ChildMemory         Rate // the serve binary without a database
	Ratio               float64
	Setup               time.Duration
}

// RunServe measures the query side on MySQL. It generates the dataset,
// judges it with the shared rules and loads stream_transactions directly
// (each card in one of 8 partitions, offsets in order, as the sink writes
// them), runs the batch over the first 80 % so that the answers merge the
// batch view with pending rows, then issues the same list of requests —
// half a card's transactions, half a merchant's, a page of 100 — from
// Clients goroutines: first the statements of those answers bare on the
// query side's own connection pool, then through the API over loopback
// HTTP in the same process, then (with Binary) against serve as a child
// process with MySQL and without a database (whose views it reads from
// the results folder and an embedded broker's validated topic). Every
// loop is bounded by Requests.
func RunServe(ctx context.Context, o ServeOptions) (rep ServeReport, err error) {
	if o.Requests <= 0 {
		o.Requests = 20000
	}
	if o.Clients <= 0 {
		o.Clients = 8
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.MySQL == nil {
		return rep, errors.New("bench serve: needs a database (DB_HOST)")
	}
	rep.Transactions, rep.Cards = o.Transactions, o.Cards
	start := time.Now()
	tmp, err := os.MkdirTemp("", "txpipe-bench-serve-")
	if err != nil {
		return rep, err
	}
	defer os.RemoveAll(tmp)
	data, results := filepath.Join(tmp, "data"), filepath.Join(tmp, "results")
	o.Log.Info("bench serve: generating", "transactions", o.Transactions, "cards", o.Cards)
	if _, err := dataset.Generate(ctx, data, dataset.Options{Customers: max(1, o.Cards*10/16), Cards: o.Cards, Transactions: o.Transactions, Seed: 5}); err != nil {
		return rep, err
	}
	master, err := csvfile.ReadMaster(data)
	if err != nil {
		return rep, err
	}
	cfg := o.MySQL.Clone()
	cfg.DBName = "txpipe_bench_serve_" + randomID()
	db, err := mysqlstore.Open(ctx, cfg, o.Log)
	if err != nil {
		return rep, err
	}
	defer dropDatabase(cfg, o.Log)
	defer db.Close()
	db.SQL.SetMaxOpenConns(64)
	if err := db.LoadMaster(ctx, master); err != nil {
		return rep, err
	}
	results80, rest, merchants, err := judge(data, master, o.Transactions*8/10)
	if err != nil {
		return rep, err
	}
	topic := stream.TopicsFor("bench-serve-" + randomID())
	o.Log.Info("bench serve: loading stream_transactions", "rows", len(results80)+len(rest))
	if err := writeStream(ctx, db, results80); err != nil {
		return rep, err
	}
	if err := writeResultsCSV(filepath.Join(results, csvfile.StreamFile), results80); err != nil {
		return rep, err
	}
	o.Log.Info("bench serve: batch (MySQL mode, over 80 %)")
	if _, err := batch.Run(ctx, batch.Options{DB: db.SQL, ResultsDir: filepath.Join(tmp, "views"), Topic: topic.Validated, Log: o.Log}); err != nil {
		return rep, err
	}
	o.Log.Info("bench serve: batch (CSV mode, over 80 %, for serve without a database)")
	if _, err := batch.Run(ctx, batch.Options{DataDir: data, ResultsDir: results, Topic: topic.Validated, Log: o.Log}); err != nil {
		return rep, err
	}
	if err := writeStream(ctx, db, rest); err != nil {
		return rep, err
	}
	for _, table := range []string{"stream_transactions", "batch_transactions", "cards"} {
		if _, err := db.SQL.ExecContext(ctx, "ANALYZE TABLE "+table); err != nil {
			return rep, err
		}
	}
	reqs := requestMix(master, merchants, o.Requests)
	rep.Setup = time.Since(start)

	// Bare: the statements themselves, on the query side's pool.
	warm := reqs[:min(len(reqs), 1000)]
	bare := func(r request) (int, error) {
		query, args := mysqlstore.TransactionsSQL(r.q)
		rows, err := db.SQL.QueryContext(ctx, query, args...)
		if err != nil {
			return 0, err
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		raw := make([]sql.RawBytes, len(cols))
		dest := make([]any, len(cols))
		for i := range raw {
			dest[i] = &raw[i]
		}
		n := 0
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				return n, err
			}
			n++
		}
		return n, rows.Err()
	}
	srv := &api.Server{Addr: "127.0.0.1:0", Store: db.Queries(), Log: o.Log}
	if err := srv.Open(); err != nil {
		return rep, err
	}
	defer srv.Close()
	httpClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.Clients, DisableCompression: true}, Timeout: time.Minute}
	viaHTTP := func(base string) func(r request) (int, error) {
		return func(r request) (int, error) { return getPage(ctx, httpClient, base+r.path) }
	}
	load(ctx, warm, o.Clients, bare)
	load(ctx, warm, o.Clients, viaHTTP(srv.URL()))
	// Alternated in rounds, so that what else the machine does weighs on
	// both alike.
	var bareRounds, apiRounds []measured
	for i := range serveRounds {
		part := reqs[i*len(reqs)/serveRounds : (i+1)*len(reqs)/serveRounds]
		bareRounds = append(bareRounds, load(ctx, part, o.Clients, bare))
		apiRounds = append(apiRounds, load(ctx, part, o.Clients, viaHTTP(srv.URL())))
	}
	rep.Bare, rep.API = combine("bare SQL", bareRounds), combine("api", apiRounds)
	if rep.Bare.PerSecond > 0 {
		rep.Ratio = rep.API.PerSecond / rep.Bare.PerSecond
	}
	srv.Close()

	if o.Binary != "" {
		// serve with MySQL, as a child.
		env := map[string]string{"TXPIPE_RESULTS": results, "TXPIPE_DATA": data, "KAFKA_TOPIC": strings.TrimSuffix(topic.Validated, ".validated")}
		dbEnv(&database{cfg: cfg, name: cfg.DBName}, env)
		if rep.ChildMySQL, err = childServe(ctx, o, tmp, env, reqs, httpClient, "serve (MySQL, child)"); err != nil {
			return rep, err
		}
		// serve without a database: the results folder and the broker.
		b, err := embedded.Start(0, "")
		if err != nil {
			return rep, err
		}
		defer b.Close()
		o.Log.Info("bench serve: producing the validated topic")
		if err := produceValidated(ctx, b.Addrs(), topic, append(results80, rest...)); err != nil {
			return rep, err
		}
		env = map[string]string{"TXPIPE_RESULTS": results, "TXPIPE_DATA": data, "KAFKA_TOPIC": strings.TrimSuffix(topic.Validated, ".validated"),
			"KAFKA_BOOTSTRAP_SERVERS": strings.Join(b.Addrs(), ",")}
		if rep.ChildMemory, err = childServe(ctx, o, tmp, env, reqs, httpClient, "serve (no database, child)"); err != nil {
			return rep, err
		}
	}
	rep.write(o.Out)
	return rep, nil
}

func dropDatabase(cfg *mysql.Config, log *slog.Logger) {
	c := cfg.Clone()
	name := c.DBName
	c.DBName = ""
	db, err := sql.Open("mysql", c.FormatDSN())
	if err != nil {
		return
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
		log.Warn("bench serve: drop the database", "database", name, "err", err)
	}
}

// partitions spreads the cards over 8 partitions, as a keyed topic does.
const benchPartitions = 8

func partitionOf(card int64) int32 {
	h := fnv.New32a()
	h.Write(strconv.AppendInt(nil, card, 10))
	return int32(h.Sum32() % benchPartitions)
}

// judge reads the transactions in event order and judges them with the
// shared rules, placing each result on its card's partition: the first
// split results, the rest, and the merchants seen.
func judge(data string, m *txpipe.Master, split int) ([]txpipe.Result, []txpipe.Result, []string, error) {
	src, err := stream.CSVRows(filepath.Join(data, csvfile.TransactionsFile))
	if err != nil {
		return nil, nil, nil, err
	}
	ledger := txpipe.NewLedger(txpipe.NewMasterIndex(m), 0)
	next := map[int32]int64{}
	var out []txpipe.Result
	seen := map[string]bool{}
	var merchants []string
	err = src.Rows("", func(r stream.Row) error {
		if !r.FieldsOK {
			return nil
		}
		res, reason, _ := ledger.Judge(r.Raw)
		if reason != "" {
			return nil
		}
		res.Seq = r.Seq
		p := partitionOf(res.CardID)
		res.Pos = txpipe.Position{Partition: p, Offset: next[p]}
		next[p]++
		out = append(out, res)
		if !seen[res.Merchant] {
			seen[res.Merchant] = true
			merchants = append(merchants, res.Merchant)
		}
		return nil
	})
	if err != nil {
		return nil, nil, nil, err
	}
	split = min(split, len(out))
	return out[:split], out[split:], merchants, nil
}

func writeStream(ctx context.Context, db *mysqlstore.DB, results []txpipe.Result) error {
	for at := 0; at < len(results); at += 20000 {
		if err := db.WriteStream(ctx, "bench", results[at:min(at+20000, len(results))], nil, nil); err != nil {
			return err
		}
	}
	return nil
}

func writeResultsCSV(path string, results []txpipe.Result) error {
	w, err := csvfile.Create(path, csvfile.StreamColumns)
	if err != nil {
		return err
	}
	var rec []string
	for _, r := range results {
		if err := w.Write(csvfile.AppendStreamResult(rec[:0], r)); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Commit()
}

// produceValidated writes the results to the validated topic, each on its
// partition in order, so that their offsets are the positions they carry.
func produceValidated(ctx context.Context, brokers []string, t stream.Topics, results []txpipe.Result) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	if _, err := stream.EnsureTopics(ctx, cl, t, benchPartitions); err != nil {
		return err
	}
	var failed atomic.Pointer[error]
	for i := range results {
		r := &results[i]
		cl.Produce(ctx, &kgo.Record{Topic: t.Validated, Partition: r.Pos.Partition, Key: strconv.AppendInt(nil, r.CardID, 10),
			Value: stream.EncodeResult(nil, *r)}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.CompareAndSwap(nil, &err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	if err := failed.Load(); err != nil {
		return *err
	}
	return nil
}

// request is one request of the mix, as a query and as a URL path.
type request struct {
	q    txpipe.TxQuery
	path string
}

// requestMix alternates a random card's and a random merchant's
// transactions, a page of the default size; the same list for every phase.
func requestMix(m *txpipe.Master, merchants []string, n int) []request {
	rng := rand.New(rand.NewPCG(7, 11))
	out := make([]request, n)
	for i := range out {
		if i%2 == 0 {
			c := m.Cards[rng.IntN(len(m.Cards))]
			out[i] = request{q: txpipe.TxQuery{CardID: c.ID, Limit: api.DefaultLimit}, path: fmt.Sprintf("/api/cards/%d/transactions", c.ID)}
		} else {
			name := merchants[rng.IntN(len(merchants))]
			out[i] = request{q: txpipe.TxQuery{Merchant: name, Limit: api.DefaultLimit}, path: "/api/merchants/" + url.PathEscape(name) + "/transactions"}
		}
	}
	return out
}

// getPage GETs a page and counts its items.
func getPage(ctx context.Context, cl *http.Client, u string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := cl.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %d %.200s", u, resp.StatusCode, b)
	}
	return strings.Count(string(b), `"transaction_id"`), nil
}

// serveRounds is how many rounds the bare and the API phases alternate in.
const serveRounds = 4

// measured is one load: its latencies, errors, rows and time.
type measured struct {
	lat    []time.Duration
	errors int
	rows   int64
	took   time.Duration
}

// load issues reqs from clients goroutines (each takes the next request)
// and measures the latencies.
func load(ctx context.Context, reqs []request, clients int, do func(request) (int, error)) measured {
	lat := make([]time.Duration, len(reqs))
	var next, errs, rows atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(reqs) {
					return
				}
				t := time.Now()
				n, err := do(reqs[i])
				lat[i] = time.Since(t)
				rows.Add(int64(n))
				if err != nil {
					errs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return measured{lat: lat, errors: int(errs.Load()), rows: rows.Load(), took: time.Since(start)}
}

// combine makes one rate of loads.
func combine(name string, ms []measured) Rate {
	r := Rate{Name: name}
	var lat []time.Duration
	var rows int64
	for _, m := range ms {
		lat = append(lat, m.lat...)
		r.Errors += m.errors
		r.Took += m.took
		rows += m.rows
	}
	r.Requests = len(lat)
	if r.Requests == 0 {
		return r
	}
	r.PerSecond = float64(r.Requests) / r.Took.Seconds()
	r.RowsPerAnswer = float64(rows) / float64(r.Requests)
	slices.Sort(lat)
	r.P50, r.P99 = lat[len(lat)/2], lat[len(lat)*99/100]
	return r
}

// childServe runs `txpipe serve` as a child process with env, waits until
// it is ready, loads it with reqs and returns the rate with its peak RSS.
func childServe(ctx context.Context, o ServeOptions, tmp string, env map[string]string, reqs []request, cl *http.Client, name string) (Rate, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Rate{}, err
	}
	addr := ln.Addr().String()
	ln.Close()
	env["TXPIPE_API_ADDR"] = addr
	var environ []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "KAFKA_") || strings.HasPrefix(k, "DB_") || strings.HasPrefix(k, "TXPIPE_") {
			continue
		}
		environ = append(environ, kv)
	}
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	dir, err := os.MkdirTemp(tmp, "serve-")
	if err != nil {
		return Rate{}, err
	}
	logf, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		return Rate{}, err
	}
	defer logf.Close()
	cmd := exec.Command(o.Binary, "serve")
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = dir, environ, logf, logf
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return Rate{}, fmt.Errorf("txpipe serve: %w", err)
	}
	stopRSS := watchPeakRSS(cmd.Process.Pid)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	base := "http://" + addr
	for {
		code, _ := getStatus(ctx, cl, base+"/readyz")
		if code == http.StatusOK {
			break
		}
		select {
		case err := <-done:
			b, _ := os.ReadFile(logf.Name())
			return Rate{}, fmt.Errorf("txpipe serve exited: %v\n%s", err, tail(string(b), 2000))
		case <-ctx.Done():
			stop()
			return Rate{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Since(began) > 10*time.Minute {
			stop()
			return Rate{}, errors.New("txpipe serve was not ready within 10 minutes")
		}
	}
	o.Log.Info("bench serve: child ready", "name", name, "took", time.Since(began).Round(time.Millisecond))
	fetch := func(r request) (int, error) { return getPage(ctx, cl, base+r.path) }
	load(ctx, reqs[:min(len(reqs), 1000)], o.Clients, fetch)
	r := combine(name, []measured{load(ctx, reqs, o.Clients, fetch)})
	// What it holds once loaded: its own report of resident and heap
	// memory (after the load's garbage is collected at the next cycle).
	if body, err := getBody(ctx, cl, base+"/metrics"); err == nil {
		r.RSSMiB = metricValue(body, "process_resident_memory_bytes") / (1 << 20)
		r.HeapMiB = metricValue(body, "go_memstats_heap_inuse_bytes") / (1 << 20)
		r.Held = fmt.Sprintf("batch %.0f, stream %.0f, rejected %.0f rows", metricValue(body, `txpipe_serve_rows{view="batch"}`),
			metricValue(body, `txpipe_serve_rows{view="stream"}`), metricValue(body, `txpipe_serve_rows{view="rejected"}`))
	}
	r.PeakRSSMiB = stopRSS()
	stop()
	return r, nil
}

func getBody(ctx context.Context, cl *http.Client, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return "", err
	}
	resp, err := cl.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// metricValue reads a series' value from a /metrics body (0 when absent).
func metricValue(body, series string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v
		}
	}
	return 0
}

func getStatus(ctx context.Context, cl *http.Client, u string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := cl.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (rep ServeReport) write(w io.Writer) {
	fmt.Fprintf(w, "txpipe bench serve: %d transactions, %d cards; card and merchant transactions, pages of %d, %d requests per phase\n",
		rep.Transactions, rep.Cards, api.DefaultLimit, rep.Bare.Requests)
	fmt.Fprintf(w, "%-28s %8s %8s %8s %6s %6s %9s %8s %8s\n", "phase", "req/s", "p50 ms", "p99 ms", "rows", "errors", "peak RSS", "RSS", "heap")
	mib := func(f float64) string {
		if f <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f MiB", f)
	}
	for _, r := range []Rate{rep.Bare, rep.API, rep.ChildMySQL, rep.ChildMemory} {
		if r.Requests == 0 {
			continue
		}
		fmt.Fprintf(w, "%-28s %8.0f %8.2f %8.2f %6.1f %6d %9s %8s %8s\n", r.Name, r.PerSecond,
			float64(r.P50.Microseconds())/1000, float64(r.P99.Microseconds())/1000, r.RowsPerAnswer, r.Errors,
			mib(r.PeakRSSMiB), mib(r.RSSMiB), mib(r.HeapMiB))
	}
	if rep.ChildMemory.Held != "" {
		fmt.Fprintf(w, "serve without a database holds: %s\n", rep.ChildMemory.Held)
	}
	fmt.Fprintf(w, "bench serve: api_vs_bare=%.2f api_rps=%d bare_rps=%d child_mysql_rps=%d child_mysql_rss_mib=%d child_memory_rps=%d child_memory_rss_mib=%d child_memory_peak_rss_mib=%d setup_s=%.0f\n",
		rep.Ratio, round(rep.API.PerSecond), round(rep.Bare.PerSecond), round(rep.ChildMySQL.PerSecond), round(rep.ChildMySQL.RSSMiB),
		round(rep.ChildMemory.PerSecond), round(rep.ChildMemory.RSSMiB), round(rep.ChildMemory.PeakRSSMiB), rep.Setup.Seconds())
}
