package stream

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestReadRangeIsBounded: a read_committed read held back by a
// transaction nobody ends gives up after its bound with an error naming
// the topic and the offsets, instead of waiting for ever (a restore in a
// rebalance callback would hold the whole group).
func TestReadRangeIsBounded(t *testing.T) {
	defer func(d time.Duration, n int) { readStall, readStallTries = d, n }(readStall, readStallTries)
	readStall, readStallTries = 300*time.Millisecond, 2
	c := newCluster(t)
	brokers := c.ListenAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "held"); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "held", Value: []byte("committed")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// A transaction left open for longer than the test.
	txn, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID("held-open"), kgo.TransactionTimeout(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Close()
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txn.ProduceSync(ctx, &kgo.Record{Topic: "held", Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var got []string
	start := time.Now()
	_, err = readRange(ctx, []kgo.Opt{kgo.SeedBrokers(brokers...)}, "held", nil, false, func(r *kgo.Record) { got = append(got, string(r.Value)) })
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "read held read_committed") || !strings.Contains(err.Error(), "map[0:1]") {
		t.Fatalf("readRange = %v, want an error naming the topic and the offset it stopped at", err)
	}
	if took > 30*time.Second {
		t.Fatalf("readRange gave up after %s", took)
	}
	if len(got) != 1 || got[0] != "committed" {
		t.Fatalf("read %q before giving up, want the committed record", got)
	}
	// Once the transaction ends the same read completes.
	if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	got = nil
	if _, err := readRange(ctx, []kgo.Opt{kgo.SeedBrokers(brokers...)}, "held", nil, false, func(r *kgo.Record) { got = append(got, string(r.Value)) }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "committed,open" {
		t.Fatalf("read %q, want committed,open", got)
	}
}

// TestReadRangeEndsInAbortedTransaction: when the end a read takes falls
// inside a transaction that is then aborted, the aborted records never
// come, only the marker after the end: the read ends there, at once,
// instead of waiting for records that will never be delivered.
func TestReadRangeEndsInAbortedTransaction(t *testing.T) {
	defer func(d time.Duration, n int) { readStall, readStallTries = d, n }(readStall, readStallTries)
	readStall, readStallTries = time.Minute, 1 // a stall is a failure here
	c := newCluster(t)
	brokers := c.ListenAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "aborted"); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "aborted", Value: []byte("committed")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	txn, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID("aborted-later"), kgo.TransactionTimeout(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Close()
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txn.ProduceSync(ctx, &kgo.Record{Topic: "aborted", Value: []byte("a")}, &kgo.Record{Topic: "aborted", Value: []byte("b")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var got []string
	var abortErr error
	ends, err := readRange(ctx, []kgo.Opt{kgo.SeedBrokers(brokers...)}, "aborted", nil, false, func(r *kgo.Record) {
		got = append(got, string(r.Value))
		// The end (3) is taken: now the transaction under it is aborted.
		abortErr = txn.EndTransaction(ctx, kgo.TryAbort)
	})
	if abortErr != nil {
		t.Fatal(abortErr)
	}
	if err != nil {
		t.Fatalf("readRange over an aborted transaction: %v", err)
	}
	if len(got) != 1 || got[0] != "committed" || ends[0] != 3 {
		t.Fatalf("read %q ending at %v, want the committed record ending at 3", got, ends)
	}
}
