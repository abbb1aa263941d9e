package main

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe/internal/kafkatest"
	"github.com/txpipe/txpipe/internal/mysqltest"
	"github.com/txpipe/txpipe/internal/reftest"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/stream"
	"github.com/txpipe/txpipe/stream/embedded"
)

// runCLIOut runs a command line in-process and returns its output and
// error.
func runCLIOut(args ...string) (string, error) {
	var out bytes.Buffer
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(&out)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// committedSources counts the committed records of a topic by their
// source header.
func committedSources(t *testing.T, brokers []string, topic string) map[string]int {
	t.Helper()
	seen := map[string]int{}
	readCommitted(t, brokers, topic, func(r *kgo.Record) {
		for _, h := range r.Headers {
			if h.Key == stream.HeaderSource {
				seen[string(h.Value)]++
			}
		}
	})
	return seen
}

func TestVersion(t *testing.T) {
	out, err := runCLIOut("--version")
	if err != nil || !strings.HasPrefix(out, "txpipe version ") {
		t.Fatalf("--version: %q, %v", out, err)
	}
}

// TestResetStartsOver: reset says what it would delete and deletes nothing
// without --yes; with it, the topics, groups and result files are gone
// (results/README.md stays) and the same flow runs again from nothing.
func TestResetStartsOver(t *testing.T) {
	kafkatest.Each(t, func(t *testing.T, k kafkatest.Broker) {
		data := reftest.Data(t)
		results := t.TempDir()
		os.WriteFile(filepath.Join(results, "README.md"), []byte("results\n"), 0o644)
		t.Chdir(t.TempDir())
		topics, group := k.Topics(t, "rs"), kafkatest.Name("rs")
		setEnv(t, kafkaEnv(k, topics, group))
		setEnv(t, []string{"CONSUMER_TIMEOUT_MS=2000", "TXPIPE_RESULTS=" + results, "TXPIPE_DATA=" + data, "DB_HOST="})
		flow := func() {
			t.Helper()
			runCLI(t, "load", "initial")
			if out := runCLI(t, "produce"); !strings.Contains(out, "produced 400 records") {
				t.Fatalf("produce: %s", out)
			}
			if out := runCLI(t, "consume", "--instance", "rs-1", "--memory-limit", "0"); !strings.Contains(out, "400 judged, 0 rejected, 400 written") {
				t.Fatalf("consume: %s", out)
			}
		}
		flow()
		if out := runCLI(t, "produce"); !strings.Contains(out, "nothing new") {
			t.Fatalf("a second produce of the same file: %s", out)
		}
		out, err := runCLIOut("reset")
		if err == nil || !strings.Contains(out, topics.Validated) || !strings.Contains(err.Error(), "--yes") {
			t.Fatalf("reset without --yes: %q, %v", out, err)
		}
		if _, err := os.Stat(filepath.Join(results, csvfile.StreamFile)); err != nil {
			t.Fatalf("reset without --yes deleted results: %v", err)
		}
		if out := runCLI(t, "reset", "--yes"); !strings.Contains(out, topics.State) || !strings.Contains(out, group+".sink") {
			t.Fatalf("reset --yes: %s", out)
		}
		ents, _ := os.ReadDir(results)
		if len(ents) != 1 || ents[0].Name() != "README.md" {
			t.Fatalf("results after reset: %v", ents)
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs...))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		td, err := kadm.NewClient(cl).ListTopics(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range stream.ResetTopics(topics) {
			if td.Has(name) {
				t.Errorf("topic %s survived the reset", name)
			}
		}
		flow() // from nothing again: everything published and judged anew
	})
}

// TestProduceFileThenFromDB: the same transactions produced from the file
// and then from MySQL are judged once; the second copy is rejected as
// duplicates; MySQL and the CSV views hold the same rows, and the batch
// equals the reference.
func TestProduceFileThenFromDB(t *testing.T) {
	kafkatest.Each(t, func(t *testing.T, k kafkatest.Broker) {
		data, want := reftest.Data(t), reftest.Results(t)
		db := mysqltest.NewDatabase(t)
		host, port, _ := strings.Cut(db.Addr, ":")
		results := t.TempDir()
		t.Chdir(t.TempDir())
		setEnv(t, kafkaEnv(k, k.Topics(t, "twice"), kafkatest.Name("twice")))
		setEnv(t, []string{"CONSUMER_TIMEOUT_MS=2000", "DB_HOST=" + host, "DB_PORT=" + port, "DB_USER=" + db.User, "DB_PASSWORD=" + db.Passwd,
			"DB_NAME=" + db.DBName, "TXPIPE_RESULTS=" + results, "TXPIPE_DATA=" + data})
		runCLI(t, "load", "initial")
		if out := runCLI(t, "produce"); !strings.Contains(out, "produced 400 records") {
			t.Fatalf("produce: %s", out)
		}
		if out := runCLI(t, "produce", "--from-db"); !strings.Contains(out, "produced 400 records") {
			t.Fatalf("produce --from-db: %s", out)
		}
		if out := runCLI(t, "produce", "--from-db"); !strings.Contains(out, "nothing new") {
			t.Fatalf("a second produce --from-db: %s", out)
		}
		if out := runCLI(t, "consume", "--instance", "twice-1", "--memory-limit", "0"); !strings.Contains(out, "400 judged, 400 rejected, 800 written") {
			t.Fatalf("consume: %s", out)
		}
		runCLI(t, "batch")
		for _, f := range []string{csvfile.StreamFile, csvfile.BatchFile, csvfile.CardsUpdatedFile, csvfile.CustomersUpdFile} {
			reftest.CompareFile(t, filepath.Join(results, f), filepath.Join(want, f))
		}
		sqlDB, err := sql.Open("mysql", db.FormatDSN())
		if err != nil {
			t.Fatal(err)
		}
		defer sqlDB.Close()
		var rows, dups int
		if err := sqlDB.QueryRow("SELECT COUNT(*) FROM stream_transactions").Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if err := sqlDB.QueryRow("SELECT COUNT(*) FROM rejected_transactions WHERE reason = 'duplicate_transaction_id'").Scan(&dups); err != nil {
			t.Fatal(err)
		}
		csvDups := 0
		csvfile.ReadColumns(filepath.Join(results, csvfile.RejectedFile), []string{"reason"}, func(f []string) {
			if f[0] == "duplicate_transaction_id" {
				csvDups++
			}
		})
		if rows != 400 || dups != 400 || csvDups != 400 {
			t.Fatalf("MySQL holds %d stream rows and %d duplicates, the CSV %d duplicates; want 400, 400, 400", rows, dups, csvDups)
		}
	})
}

var producedRE = regexp.MustCompile(`produced (\d+) records \((\d+) to the dead-letter topic\)`)

// TestProducerSignals stops a real `txpipe produce` with SIGTERM (it
// commits what it handed to the client and reports exactly what the
// topics hold) and with SIGKILL (its open transaction is lost, and the
// next run continues from the last committed position): in the end the
// topics hold every row of the file once.
func TestProducerSignals(t *testing.T) {
	kafkatest.Each(t, func(t *testing.T, k kafkatest.Broker) {
		if testing.Short() {
			t.Skip("runs the binary")
		}
		bin := buildBinary(t)
		brokers := k.Addrs
		data := genDataset(t, 8000, 9)
		const rows = 8009
		topics := k.Topics(t, "sig")
		env := append(append(os.Environ(), kafkaEnv(k, topics, kafkatest.Name("sig"))...), "TXPIPE_DATA="+data, "DB_HOST=")
		count := func() int {
			n := 0
			for _, topic := range []string{topics.Input, topics.DLQ} {
				for _, c := range committedSources(t, brokers, topic) {
					n += c
				}
			}
			return n
		}
		// Wait for progress (not a time) before each signal.
		start := func() (*exec.Cmd, *bytes.Buffer) {
			var out bytes.Buffer
			cmd := exec.Command(bin, "produce", "--rate", "1000", "--no-progress")
			cmd.Env, cmd.Stdout, cmd.Stderr = env, &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			return cmd, &out
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		adm := kadm.NewClient(cl)
		end := func() int64 { // the input's end offsets: progress, committed or not
			ends, err := adm.ListEndOffsets(context.Background(), topics.Input)
			if err != nil {
				return 0
			}
			var n int64
			ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
			return n
		}
		waitMore := func(than int64) {
			for deadline := time.Now().Add(2 * time.Minute); end() <= than+500; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the producer made no progress in 2 minutes")
				}
			}
		}
		cmd, out := start()
		waitMore(end())
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("produce after SIGTERM: %v\n%s", err, out)
		}
		m := producedRE.FindStringSubmatch(out.String())
		if m == nil {
			t.Fatalf("no summary after SIGTERM:\n%s", out)
		}
		reported, _ := strconv.Atoi(m[1])
		rejected, _ := strconv.Atoi(m[2])
		if got := count(); got != reported+rejected || got == rows {
			t.Fatalf("after SIGTERM the topics hold %d rows, the summary says %d (+%d dead letters) of %d", got, reported, rejected, rows)
		}
		cmd, out = start()
		waitMore(end())
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		cmd, out = start()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("the last produce: %v\n%s", err, out)
		}
		if !strings.Contains(out.String(), "continued after position") {
			t.Errorf("the last produce did not say where it continued:\n%s", out)
		}
		for _, topic := range []string{topics.Input, topics.DLQ} {
			for source, n := range committedSources(t, brokers, topic) {
				if n != 1 {
					t.Errorf("%s is on %s %d times", source, topic, n)
				}
			}
		}
		if got := count(); got != rows {
			t.Fatalf("the topics hold %d rows, want %d", got, rows)
		}
	})
}

// TestUntilIdleGivesUpOnADeadBroker: consume --until-idle exits with an
// error naming the broker when the broker is gone for longer than the
// bound, instead of waiting forever.
func TestUntilIdleGivesUpOnADeadBroker(t *testing.T) {
	data := reftest.Data(t)
	b, err := embedded.Start(0, "")
	if err != nil {
		t.Fatal(err)
	}
	brokers := b.Addrs()
	topics := stream.TopicsFor("dead")
	publish(t, brokers, topics, data)
	ctx := context.Background()
	errc := make(chan error, 1)
	var closeOnce sync.Once
	go func() {
		_, err := stream.Consume(ctx, stream.ConsumeConfig{
			Brokers: brokers, Topics: topics, Group: "dead", Instance: "d1", ResultsDir: t.TempDir(),
			UntilIdle: 2 * time.Second, BrokerBound: 3 * time.Second, Log: slog.New(slog.DiscardHandler),
			Done: func(s stream.ConsumeStats) bool {
				if s.Written >= 400 {
					closeOnce.Do(b.Close) // the broker goes away once everything is written
				}
				return false
			},
		})
		errc <- err
	}()
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), brokers[0]) {
			t.Fatalf("consume --until-idle with the broker gone: %v, want an error naming %s", err, brokers[0])
		}
	case <-time.After(3 * time.Minute): // a bound on a hang; the broker bound is 3 s
		t.Fatal("consume --until-idle never gave up on the dead broker")
	}
}
