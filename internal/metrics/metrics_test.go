package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe"
)

// TestRegistryLints records into every metric, runs two Kafka clients
// with the kprom hooks of one role, and lints what the registry exposes.
func TestRegistryLints(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "lint"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 2 {
		opts := append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), ProducedHook(), kgo.ConsumeTopics("lint")}, KafkaOpts("lint")...)
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "lint", Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		for n := 0; n < i+1; {
			fs := cl.PollFetches(ctx)
			if err := ctx.Err(); err != nil {
				t.Fatalf("client %d fetched %d records: %v", i, n, err)
			}
			n += fs.NumRecords()
		}
		cl.Close()
	}
	ObserveJudged(txpipe.StatusDeclined, txpipe.DeclineOverLimit, 3)
	ObserveJudged(txpipe.StatusPending, "", 5)
	ObserveRejected(txpipe.RejectUnknownCard, 1)
	ObserveTransactionEnd(12*time.Millisecond, true)
	ObserveMySQLWrite(OperationStream, 3*time.Millisecond)
	SetLag("g", "t", 0, 7)
	ObserveSinkRows(SinkCSV, TableStream, 9)
	ObserveBatch(2*time.Second, 10, 2, nil)
	ObserveBatch(time.Second, 0, 0, errors.New("failed"))
	HTTPRequests.WithLabelValues("GET /api/cards/{id}", "200").Inc()
	HTTPDuration.WithLabelValues("GET /api/cards/{id}").Observe(0.01)
	ServeRows.WithLabelValues("stream").Set(1)

	problems, err := testutil.GatherAndLint(Registry)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	mfs, err := Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, mf := range mfs {
		have[mf.GetName()] = true
	}
	for _, name := range []string{
		"txpipe_records_produced_total", "txpipe_records_judged_total", "txpipe_records_rejected_total",
		"txpipe_kafka_transaction_commit_seconds", "txpipe_mysql_write_seconds", "txpipe_consumer_lag_records",
		"txpipe_sink_rows_written_total", "txpipe_batch_duration_seconds", "txpipe_batch_rows_total",
		"txpipe_http_requests_total", "txpipe_http_request_duration_seconds",
		"txpipe_kafka_connects_total", "txpipe_kafka_produce_records_total", "txpipe_kafka_fetch_records_total",
	} {
		if !have[name] {
			t.Errorf("registry lacks %s", name)
		}
	}
	if got := testutil.ToFloat64(RecordsProduced.WithLabelValues("lint")); got != 2 {
		t.Errorf("records produced to lint: %v, want 2", got)
	}
}

func TestServer(t *testing.T) {
	s := &Server{Addr: "127.0.0.1:0", Checks: []Check{
		{Name: "database", Check: func(context.Context) error { return nil }},
		{Name: "broker", Check: func(context.Context) error { return errors.New("dial tcp 127.0.0.1:1: connection refused") }},
	}}
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(s.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	code, body := get("/readyz")
	var r Readiness
	if err := json.Unmarshal([]byte(body), &r); err != nil || code != 503 || r.Checks["database"] != "ok" || !strings.Contains(r.Checks["broker"], "refused") {
		t.Errorf("/readyz: %d %s (%v)", code, body, err)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics: %d\n%.500s", code, body)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
