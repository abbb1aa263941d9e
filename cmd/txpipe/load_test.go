package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/txpipe/txpipe/internal/mysqltest"
	"github.com/txpipe/txpipe/internal/reftest"
	"github.com/txpipe/txpipe/stream"
	"github.com/txpipe/txpipe/stream/embedded"
)

// TestLoadInitialAfterBrokerFailure: load initial stores the dataset in
// MySQL (one transaction) before it publishes; when the broker fails
// after MySQL committed, it exits with an error that says so, and a
// second run, with the broker back, stores the same rows and publishes
// every record.
func TestLoadInitialAfterBrokerFailure(t *testing.T) {
	db := mysqltest.NewDatabase(t)
	host, port, _ := strings.Cut(db.Addr, ":")
	t.Chdir(t.TempDir()) // no .env here
	dead := closedPort(t)
	for k, v := range map[string]string{
		"KAFKA_BOOTSTRAP_SERVERS": dead, "KAFKA_TOPIC": "conv", "KAFKA_GROUP_ID": "conv",
		"DB_HOST": host, "DB_PORT": port, "DB_USER": db.User, "DB_PASSWORD": db.Passwd, "DB_NAME": db.DBName,
		"TXPIPE_RESULTS": t.TempDir(), "TXPIPE_DATA": reftest.Data(t), "DB_CONNECT_TIMEOUT": "30s",
	} {
		t.Setenv(k, v)
	}
	load := func() (string, error) {
		var out bytes.Buffer
		root := newRoot()
		root.SetArgs([]string{"load", "initial"})
		root.SetOut(&out)
		err := root.ExecuteContext(context.Background())
		return out.String(), err
	}
	_, err := load()
	if err == nil || !strings.Contains(err.Error(), "the master data is stored in MySQL, but publishing it to Kafka at "+dead) {
		t.Fatalf("load initial with the broker down: %v", err)
	}
	for table, want := range map[string]int{"customers": 30, "cards": 54, "transactions": 400} {
		if n := tableRows(t, db, table); n != want {
			t.Fatalf("%s: %d rows after MySQL committed, want %d", table, n, want)
		}
	}

	b, err := embedded.Start(0, "")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	t.Setenv("KAFKA_BOOTSTRAP_SERVERS", strings.Join(b.Addrs(), ","))
	out, err := load()
	if err != nil || !strings.Contains(out, "30 customers, 54 cards, 400 transactions loaded, 0 rejected") {
		t.Fatalf("the second load initial: %v\n%s", err, out)
	}
	topics := stream.TopicsFor("conv")
	if n, m := topicRecords(t, b.Addrs(), topics.Cards), topicRecords(t, b.Addrs(), topics.Customers); n != 54 || m != 30 {
		t.Fatalf("published %d cards and %d customers, want 54 and 30", n, m)
	}
	for table, want := range map[string]int{"customers": 30, "cards": 54, "transactions": 400} {
		if n := tableRows(t, db, table); n != want {
			t.Fatalf("%s: %d rows after the second run, want %d", table, n, want)
		}
	}
}
