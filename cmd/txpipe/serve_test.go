package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/txpipe/txpipe/internal/mask"
	"github.com/txpipe/txpipe/internal/mysqltest"
	"github.com/txpipe/txpipe/serving/csvfile"
)

// freeAddr returns a loopback address with a port free now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// run is a run of the txpipe binary's commands, with their output (stdout
// and stderr) in one log.
type run struct {
	t   *testing.T
	bin string
	env []string
	dir string
	log *syncBuffer
}

func (r *run) command(env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(r.bin, args...)
	cmd.Env, cmd.Dir = env, r.dir
	fmt.Fprintf(r.log, "---- txpipe %s\n", strings.Join(args, " "))
	cmd.Stdout, cmd.Stderr = r.log, r.log
	return cmd
}

// do runs a command to its end; wantOK says whether it must succeed.
func (r *run) do(wantOK bool, env []string, args ...string) {
	r.t.Helper()
	cmd := r.command(env, args...)
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if (err == nil) != wantOK {
			r.t.Fatalf("txpipe %s: %v (want success %v)\n%s", strings.Join(args, " "), err, wantOK, tail([]byte(r.log.String()), 3000))
		}
	case <-time.After(3 * time.Minute):
		cmd.Process.Kill()
		r.t.Fatalf("txpipe %s did not end", strings.Join(args, " "))
	}
}

// start starts a long-running command; stop sends SIGTERM and waits.
func (r *run) start(env []string, args ...string) (stop func()) {
	r.t.Helper()
	cmd := r.command(env, args...)
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-done:
				if err != nil {
					r.t.Errorf("txpipe %s after SIGTERM: %v", strings.Join(args, " "), err)
				}
			case <-time.After(time.Minute):
				cmd.Process.Kill()
				r.t.Errorf("txpipe %s did not stop within a minute of SIGTERM", strings.Join(args, " "))
			}
		})
	}
	r.t.Cleanup(stop)
	return stop
}

// httpGet returns the status and body of a GET.
func httpGet(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitHTTP(t *testing.T, what, u string, ok func(code int, body string) bool) string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		code, body := httpGet(t, u)
		if ok(code, body) {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %d %s", what, code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// lintMetrics lints a /metrics body with client_golang's promlint and
// checks that it has the names.
func lintMetrics(t *testing.T, what, body string, names ...string) {
	t.Helper()
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatalf("%s: /metrics: %v", what, err)
	}
	for _, p := range problems {
		t.Errorf("%s: /metrics: %s: %s", what, p.Metric, p.Text)
	}
	for _, n := range names {
		if !strings.Contains(body, "\n"+n) {
			t.Errorf("%s: /metrics lacks %s", what, n)
		}
	}
}

// TestServeWholeRun runs the everyday flow with the binary — dev, load,
// produce, consume, batch, serve in both modes, a load of a broken cards
// file — with /healthz, /readyz and /metrics on every long-running
// command, reads every endpoint, and checks that neither an answer nor a
// log line of the whole run holds a card number.
func TestServeWholeRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	db := mysqltest.NewDatabase(t)
	bin := buildBinary(t)
	data := genDataset(t, 3000, 20)
	m, err := csvfile.ReadMaster(data)
	if err != nil {
		t.Fatal(err)
	}
	// Card numbers where they do not belong: as a card id and in a
	// merchant's name.
	f, err := os.OpenFile(filepath.Join(data, csvfile.TransactionsFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "900001,%s,Pay %s,2025-04-04 10:00:00,12.00,\"1 Main St, NY 10001\",purchase,\n", m.Cards[0].Number, m.Cards[1].Number)
	f.Close()
	// A cards file with the numbers in the id column.
	bad := t.TempDir()
	for _, name := range []string{csvfile.CustomersFile, csvfile.CardTypesFile, csvfile.TransactionsFile} {
		b, _ := os.ReadFile(filepath.Join(data, name))
		os.WriteFile(filepath.Join(bad, name), b, 0o644)
	}
	os.WriteFile(filepath.Join(bad, csvfile.CardsFile), []byte(strings.Join(csvfile.CardColumns, ",")+"\n"+
		m.Cards[2].Number+",1,1,1,08/27,3100.0,115.65,2023-08-26\n"), 0o644)

	r := &run{t: t, bin: bin, dir: t.TempDir(), log: &syncBuffer{}}
	defer func() {
		if t.Failed() {
			t.Logf("logs of the run:\n%s", tail([]byte(r.log.String()), 8000))
		}
	}()
	brokerAddr := freeAddr(t)
	_, port, _ := net.SplitHostPort(brokerAddr)
	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}
	host, dbPort, _ := strings.Cut(db.Addr, ":")
	kafka := append(base, "KAFKA_BOOTSTRAP_SERVERS="+brokerAddr, "KAFKA_TOPIC=whole", "KAFKA_GROUP_ID=whole",
		"TXPIPE_RESULTS="+filepath.Join(r.dir, "results"), "TXPIPE_DATA="+data)
	withDB := append(kafka, "DB_HOST="+host, "DB_PORT="+dbPort, "DB_USER="+db.User, "DB_PASSWORD="+db.Passwd, "DB_NAME="+db.DBName)

	devMetrics := freeAddr(t)
	r.start(base, "dev", "--port", port, "--data-dir", "", "--metrics-addr", devMetrics)
	waitHTTP(t, "dev to be ready", "http://"+devMetrics+"/readyz", func(code int, _ string) bool { return code == 200 })

	r.do(true, withDB, "load", "initial")
	r.do(true, withDB, "produce", "--metrics-addr", "127.0.0.1:0")

	consumeMetrics := freeAddr(t)
	stopConsume := r.start(withDB, "consume", "--instance", "whole-1", "--metrics-addr", consumeMetrics)
	waitHTTP(t, "consume to be ready", "http://"+consumeMetrics+"/readyz", func(code int, body string) bool {
		return code == 200 && strings.Contains(body, `"database":"ok"`) && strings.Contains(body, `"broker":"ok"`)
	})
	// Every record written to MySQL, and the validators' lag polled at 0.
	want := 3000 + 20 + 1
	body := waitHTTP(t, "consume to write every row", "http://"+consumeMetrics+"/metrics", func(code int, body string) bool {
		return code == 200 && sumMetric(body, "txpipe_sink_rows_written_total") >= float64(want) &&
			strings.Contains(body, "txpipe_consumer_lag_records{") && sumMetric(body, "txpipe_consumer_lag_records") == 0
	})
	lintMetrics(t, "consume", body, "txpipe_kafka_connects_total", "txpipe_kafka_produce_records_total", "txpipe_kafka_fetch_records_total",
		"txpipe_consumer_lag_records", "txpipe_sink_rows_written_total", "txpipe_mysql_write_seconds_bucket")
	stopConsume()
	var rejected int
	if err := openSQL(t, db.FormatDSN()).QueryRow("SELECT COUNT(*) FROM rejected_transactions").Scan(&rejected); err != nil || rejected == 0 {
		t.Fatalf("rejected rows in MySQL: %d, %v", rejected, err)
	}

	r.do(true, withDB, "batch", "--metrics-addr", "127.0.0.1:0")

	// serve, with MySQL and without.
	answers := map[string]string{}
	for mode, env := range map[string][]string{"mysql": withDB, "memory": kafka} {
		addr := freeAddr(t)
		stop := r.start(env, "serve", "--addr", addr)
		api := "http://" + addr
		waitHTTP(t, "serve ("+mode+") to be ready", api+"/readyz", func(code int, _ string) bool { return code == 200 })
		waitHTTP(t, "serve ("+mode+") to hold the stream", api+"/api/rejected?limit=1000", func(code int, body string) bool {
			return code == 200 && strings.Count(body, `"reason"`) == rejected
		})
		var all strings.Builder
		for _, path := range []string{
			"/api/cards/1", "/api/cards/2/transactions?limit=5", "/api/customers/1",
			"/api/transactions?card_number=" + url.QueryEscape(m.Cards[3].Number),
			"/api/merchants/" + url.PathEscape("Pay "+m.Cards[1].Number) + "/transactions",
			"/api/rejected?limit=1000", "/api/rejected?reason=bad_card_id", "/api/batch-runs", "/api/openapi.json",
			"/api/cards/" + url.PathEscape(m.Cards[4].Number), "/api/transactions?card_number=" + url.QueryEscape(m.Cards[5].Number+"0"),
			"/api/analytics", "/api/analytics/daily?limit=3", "/api/analytics/kpis", "/api/analytics/regions?limit=2",
			"/api/alerts?limit=5", "/api/latency",
		} {
			code, body := httpGet(t, api+path)
			// Every judged payment was staged; the dataset's event times
			// are months old, so is their latency.
			if path == "/api/latency" && !strings.Contains(body, `{"event_type":"PAYMENT_EVENT","count":3000,`) {
				t.Errorf("%s GET %s: %s, want the 3000 payments", mode, path, body)
			}
			if code >= 500 || (strings.HasPrefix(path, "/api/analytics") || strings.HasPrefix(path, "/api/alerts") || path == "/api/latency") && code != 200 {
				t.Errorf("%s GET %s: %d %s", mode, path, code, body)
			}
			fmt.Fprintf(&all, "GET %s -> %d %s\n", path, code, body)
			if leaks := mask.Leaks(body); len(leaks) > 0 {
				t.Errorf("%s GET %s answers card numbers %q", mode, path, leaks)
			}
		}
		if !strings.Contains(all.String(), "****-****-****-"+m.Cards[0].Number[len(m.Cards[0].Number)-4:]) {
			t.Errorf("%s: the rejected row with a card number as its card id is not listed, masked:\n%s", mode, all.String())
		}
		answers[mode] = all.String()
		code, body := httpGet(t, api+"/metrics")
		if code != 200 {
			t.Fatalf("%s /metrics: %d", mode, code)
		}
		lintMetrics(t, "serve "+mode, body, "txpipe_http_requests_total", "txpipe_http_request_duration_seconds_bucket")
		stop()
	}
	// A command that fails on a card number says where, masked.
	r.do(false, withDB, "load", "initial", "--data", bad)

	logs := r.log.String()
	if leaks := mask.Leaks(logs); len(leaks) > 0 {
		t.Errorf("the logs of the run hold card numbers %q", leaks)
	}
	n := m.Cards[2].Number
	if !strings.Contains(logs, mask.Card(n)) {
		t.Errorf("the failed load does not name the bad card id, masked (%s)", mask.Card(n))
	}
	if t.Failed() {
		t.Logf("answers:\n%s", answers)
	}
}

// waitDial waits until addr accepts connections.
func waitDial(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not accept connections: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sumMetric adds the values of every series of a metric family in a
// /metrics body.
func sumMetric(body, name string) float64 {
	var sum float64
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// The metrics the stream layer records (stream/*.go): the test below
// expects them absent until those calls exist, so that this list stays
// true; remove a name as its call lands.
var awaitingStreamLayer = []string{}

// TestMetricsAfterRun runs the flow in-process (one registry for every
// command), then scrapes serve's /metrics: every metric the commands
// record outside the stream layer is there, and the whole exposition
// passes client_golang's lint.
func TestMetricsAfterRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline")
	}
	db := mysqltest.NewDatabase(t)
	data := genDataset(t, 2000, 10)
	brokerAddr := freeAddr(t)
	_, port, _ := net.SplitHostPort(brokerAddr)
	ctx, cancelDev := context.WithCancel(context.Background())
	devDone := make(chan error, 1)
	go func() {
		root := newRoot()
		root.SetArgs([]string{"dev", "--port", port, "--data-dir", ""})
		root.SetOut(io.Discard)
		devDone <- root.ExecuteContext(ctx)
	}()
	defer func() {
		cancelDev()
		if err := <-devDone; err != nil {
			t.Error(err)
		}
	}()
	host, dbPort, _ := strings.Cut(db.Addr, ":")
	t.Chdir(t.TempDir())
	for k, v := range map[string]string{
		"KAFKA_BOOTSTRAP_SERVERS": brokerAddr, "KAFKA_TOPIC": "metrics", "KAFKA_GROUP_ID": "metrics", "CONSUMER_TIMEOUT_MS": "2000",
		"DB_HOST": host, "DB_PORT": dbPort, "DB_USER": db.User, "DB_PASSWORD": db.Passwd, "DB_NAME": db.DBName,
		"TXPIPE_RESULTS": t.TempDir(), "TXPIPE_DATA": data, "TXPIPE_API_ADDR": "127.0.0.1:0",
	} {
		t.Setenv(k, v)
	}
	waitDial(t, brokerAddr)
	runCLI(t, "load", "initial")
	runCLI(t, "produce")
	runCLI(t, "consume", "--instance", "metrics-1", "--memory-limit", "0", "--metrics-addr", "127.0.0.1:0")
	runCLI(t, "batch")
	cfg, err := loadConfig(newServe())
	if err != nil {
		t.Fatal(err)
	}
	srv, closeStore, err := openServe(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	defer srv.Close()
	for _, p := range []string{"/api/cards/1", "/api/cards/x", "/api/cards/1/transactions", "/api/batch-runs"} {
		httpGet(t, srv.URL()+p)
	}
	code, body := httpGet(t, srv.URL()+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	lintMetrics(t, "after a run", body,
		"txpipe_records_produced_total", "txpipe_sink_rows_written_total", "txpipe_mysql_write_seconds_bucket",
		"txpipe_consumer_lag_records", "txpipe_batch_duration_seconds_bucket", "txpipe_batch_rows_total",
		"txpipe_batch_last_success_timestamp_seconds", "txpipe_http_requests_total", "txpipe_http_request_duration_seconds_bucket",
		"txpipe_kafka_connects_total", "txpipe_kafka_produce_records_total", "txpipe_kafka_fetch_records_total",
		"txpipe_kafka_request_duration_e2e_seconds_bucket")
	for _, name := range awaitingStreamLayer {
		if strings.Contains(body, "\n"+name) {
			t.Errorf("%s is recorded now: take it off awaitingStreamLayer", name)
		}
	}
	if !strings.Contains(body, `txpipe_http_requests_total{code="400",route="GET /api/cards/{id}"}`) {
		t.Errorf("no 400 of GET /api/cards/{id} counted:\n%s", grepLines(body, "txpipe_http_requests_total"))
	}
}

func grepLines(body, prefix string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
