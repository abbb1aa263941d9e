package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/txpipe/txpipe/internal/kafkatest"
	"github.com/txpipe/txpipe/internal/mysqltest"
	"github.com/txpipe/txpipe/internal/reftest"
	"github.com/txpipe/txpipe/serving/csvfile"
)

// runCLI runs one txpipe command line in-process, as a user types it.
func runCLI(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(&out)
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("txpipe %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// TestEverydayFlowWithMySQL runs the README's flow with a database, command
// by command: load initial, produce --from-db, consume, batch. The results
// equal the reference to the cent.
func TestEverydayFlowWithMySQL(t *testing.T) {
	kafkatest.Each(t, func(t *testing.T, b kafkatest.Broker) {
		data, want := reftest.Data(t), reftest.Results(t)
		db := mysqltest.NewDatabase(t)
		topics := b.Topics(t, "flow")
		host, port, _ := strings.Cut(db.Addr, ":")
		results := t.TempDir()
		t.Chdir(t.TempDir()) // no .env here
		for k, v := range map[string]string{
			"KAFKA_BOOTSTRAP_SERVERS": b.Bootstrap(), "KAFKA_TOPIC": topics.Input, "KAFKA_GROUP_ID": kafkatest.Name("flow"),
			"KAFKA_CARDS_TOPIC": topics.Cards, "KAFKA_CUSTOMERS_TOPIC": topics.Customers,
			"CONSUMER_TIMEOUT_MS": "2000", "DB_HOST": host, "DB_PORT": port, "DB_USER": db.User, "DB_PASSWORD": db.Passwd,
			"DB_NAME": db.DBName, "TXPIPE_RESULTS": results, "TXPIPE_DATA": data,
		} {
			t.Setenv(k, v)
		}
		if out := runCLI(t, "load", "initial"); !strings.Contains(out, "400 transactions loaded, 0 rejected") {
			t.Fatalf("load initial: %s", out)
		}
		if out := runCLI(t, "produce", "--from-db"); !strings.Contains(out, "produced 400 records") {
			t.Fatalf("produce: %s", out)
		}
		if out := runCLI(t, "consume", "--instance", "flow-1", "--memory-limit", "0"); !strings.Contains(out, "400 judged, 0 rejected, 400 written") {
			t.Fatalf("consume: %s", out)
		}
		if out := runCLI(t, "batch"); !strings.Contains(out, "400 rows") {
			t.Fatalf("batch: %s", out)
		}
		for _, f := range []string{csvfile.StreamFile, csvfile.BatchFile, csvfile.CardsUpdatedFile, csvfile.CustomersUpdFile} {
			reftest.CompareFile(t, filepath.Join(results, f), filepath.Join(want, f))
		}
		// load stream / load updated put the result files back into their tables.
		for _, cmd := range []string{"stream", "updated"} {
			out := runCLI(t, "load", cmd)
			if n := strings.Count(out, "rows into"); n == 0 {
				t.Fatalf("load %s: %s", cmd, out)
			}
		}
		var n int
		if err := openSQL(t, db.FormatDSN()).QueryRow("SELECT COUNT(*) FROM customers_updated").Scan(&n); err != nil || n != 30 {
			t.Fatalf("customers_updated: %d rows, %v", n, err)
		}
	})
}
