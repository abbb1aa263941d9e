package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe/dataset"
	"github.com/txpipe/txpipe/internal/kafkatest"
	"github.com/txpipe/txpipe/internal/mysqltest"
	"github.com/txpipe/txpipe/internal/reftest"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/stream"
)

// buildBinary builds txpipe once per test binary run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "txpipe")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// genDataset writes a generated dataset with malformed rows.
func genDataset(t *testing.T, n, bad int) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := dataset.Generate(context.Background(), dir, dataset.Options{Customers: 300, Cards: 500, Transactions: n, Seed: 7, BadRows: bad}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// publish loads a dataset's master data and produces its transactions to
// the topics.
func publish(t *testing.T, brokers []string, topics stream.Topics, data string) stream.ProduceStats {
	t.Helper()
	ctx := context.Background()
	m, err := csvfile.ReadMaster(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.PublishMaster(ctx, brokers, topics, m.Cards, m.Customers); err != nil {
		t.Fatal(err)
	}
	src, err := stream.CSVRows(filepath.Join(data, csvfile.TransactionsFile))
	if err != nil {
		t.Fatal(err)
	}
	st, err := stream.Produce(ctx, stream.ProducerConfig{Brokers: brokers, Topics: topics}, src)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// referenceRun consumes the topics in-process without interruption.
func referenceRun(t *testing.T, brokers []string, topics stream.Topics, want int64) string {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	st, err := stream.Consume(ctx, stream.ConsumeConfig{
		Brokers: brokers, Topics: topics, Group: "ref-" + topics.Input, Instance: "ref", ResultsDir: dir,
		Done: func(s stream.ConsumeStats) bool { return s.Written >= want },
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Written < want {
		t.Fatalf("uninterrupted run: %d of %d records written in 5 minutes", st.Written, want)
	}
	return dir
}

// cardStates rebuilds every card's state from its last checkpoint and
// the results after it, as a validator restores it: the pending balance,
// which must never count an amount twice, and the recent ids.
func cardStates(t *testing.T, brokers []string, topics stream.Topics) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	states, err := stream.CardStates(ctx, brokers, topics)
	if err != nil {
		t.Fatalf("card states of %s: %v", topics.Input, err)
	}
	out := make(map[string]string, len(states))
	for id, s := range states {
		out[strconv.FormatInt(id, 10)] = fmt.Sprintf("pending %s, last %d, seen %v", s.Pending, s.Last, s.Seen)
	}
	return out
}

// kafkaEnv is the environment of a txpipe process on the topics and group.
func kafkaEnv(b kafkatest.Broker, topics stream.Topics, group string) []string {
	return []string{
		"KAFKA_BOOTSTRAP_SERVERS=" + b.Bootstrap(), "KAFKA_TOPIC=" + topics.Input, "KAFKA_GROUP_ID=" + group,
		"KAFKA_CARDS_TOPIC=" + topics.Cards, "KAFKA_CUSTOMERS_TOPIC=" + topics.Customers, "KAFKA_STOLEN_TOPIC=" + topics.Stolen,
	}
}

func sameFile(t *testing.T, got, want string) {
	t.Helper()
	reftest.SameRows(t, got, want)
}

// TestConsumeSurvivesKill SIGKILLs a real `txpipe consume` process at
// random moments and restarts it; the results must equal an uninterrupted
// run: no row twice, none lost, no pending amount counted twice, in the
// CSV files, in MySQL and in the cards' states.
func TestConsumeSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and runs the binary")
	}
	kafkatest.EachConcurrent(t, func(t *testing.T, b kafkatest.Broker) {
		db := mysqltest.NewDatabase(t)
		bin := buildBinary(t)
		brokers := b.Addrs
		data := genDataset(t, 100000, 35)
		refT, crashT := b.Topics(t, "ref"), b.Topics(t, "crash")
		group := kafkatest.Name("crash")
		ref := publish(t, brokers, refT, data)
		st := publish(t, brokers, crashT, data)
		if st != (stream.ProduceStats{Records: st.Records, Rejected: st.Rejected, Elapsed: st.Elapsed}) || st.Records != ref.Records {
			t.Fatalf("produce mismatch: %+v vs %+v", st, ref)
		}
		refDir := referenceRun(t, brokers, refT, ref.Records+ref.Rejected)

		results := t.TempDir()
		env := append(append(os.Environ(), kafkaEnv(b, crashT, group)...),
			"TXPIPE_RESULTS="+results,
			"DB_HOST="+strings.Split(db.Addr, ":")[0], "DB_PORT="+strings.Split(db.Addr, ":")[1],
			"DB_USER="+db.User, "DB_PASSWORD="+db.Passwd, "DB_NAME="+db.DBName,
		)
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
		logs := filepath.Join(t.TempDir(), "consume.log")
		logf, err := os.Create(logs)
		if err != nil {
			t.Fatal(err)
		}
		defer logf.Close()
		run := func(args ...string) *exec.Cmd {
			cmd := exec.Command(bin, append([]string{"consume", "--instance", "crash-1", "--batch", "50", "--checkpoint-every", "400"}, args...)...)
			cmd.Env, cmd.Stdout, cmd.Stderr = env, logf, logf
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			return cmd
		}
		kills, midStream := 0, 0
		total := ref.Records + ref.Rejected
		lagNow := func() int64 { return groupLag(t, brokers, group, crashT.Input) }
		// Each kill comes after the consumer made a random step of progress
		// (never after a time, which a fast or a slow machine would turn
		// into no progress or all of it), a little into its next
		// transaction or not.
		for i := 0; i < 8 && midStream < 5; i++ {
			cmd := run()
			from := total - lagNow()
			step := total/40 + rng.Int64N(total/15)
			for deadline := time.Now().Add(2 * time.Minute); total-lagNow() < min(from+step, total); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					out, _ := os.ReadFile(logs)
					t.Fatalf("consume made no progress in 2 minutes:\n%s", tail(out, 3000))
				}
			}
			time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
			lag := lagNow()
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()
			kills++
			if lag > 0 {
				midStream++
			}
			fmt.Fprintf(logf, "---- killed (%d) with %d records not yet committed\n", kills, lag)
		}
		if midStream < 3 {
			t.Fatalf("only %d of %d kills hit the stream in progress", midStream, kills)
		}
		// SIGTERM: finish and commit what is in flight, leave, exit 0.
		term := run()
		from, deadline := total-lagNow(), time.Now().Add(2*time.Minute)
		for total-lagNow() <= from && lagNow() > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond) // some progress first
		}
		if err := term.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		termDone := make(chan error, 1)
		go func() { termDone <- term.Wait() }()
		select {
		case err := <-termDone:
			if err != nil {
				out, _ := os.ReadFile(logs)
				t.Fatalf("consume after SIGTERM: %v\n%s", err, tail(out, 2000))
			}
		case <-time.After(30 * time.Second):
			term.Process.Kill()
			t.Fatal("consume did not stop within 30 s of SIGTERM")
		}
		cmd := run("--until-idle", "4s")
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				out, _ := os.ReadFile(logs)
				t.Fatalf("final consume: %v\n%s", err, tail(out, 3000))
			}
		case <-time.After(3 * time.Minute):
			cmd.Process.Kill()
			t.Fatal("final consume did not finish")
		}
		if t.Failed() {
			return
		}
		defer func() {
			if t.Failed() {
				out, _ := os.ReadFile(logs)
				t.Logf("consume log:\n%s", tail(out, 6000))
			}
		}()
		sameFile(t, filepath.Join(results, csvfile.StreamFile), filepath.Join(refDir, csvfile.StreamFile))
		sameRejected(t, filepath.Join(results, csvfile.RejectedFile), filepath.Join(refDir, csvfile.RejectedFile), crashT, refT)
		if got, want := cardStates(t, brokers, crashT), cardStates(t, brokers, refT); !equalMaps(got, want) {
			t.Fatalf("card states differ from the uninterrupted run (%d vs %d cards)", len(got), len(want))
		}
		checkMySQL(t, db, refDir)
		// The kills must have hit a stream in progress: restarts restored card
		// state, and the last run still had records to judge.
		logText, _ := os.ReadFile(logs)
		restores := strings.Count(string(logText), "cards_restored=") - strings.Count(string(logText), "cards_restored=0 ")
		if restores == 0 {
			t.Fatalf("no restart restored card state:\n%s", tail(logText, 3000))
		}
		t.Logf("%d kills (%d mid-stream), %d restores with state; %d transactions, %d rows with the wrong field count", kills, midStream, restores, ref.Records, ref.Rejected)
	})
}

// sameRejected compares rejected files without the source column's offset
// part, which names the topic.
func sameRejected(t *testing.T, got, want string, gotTopics, wantTopics stream.Topics) {
	t.Helper()
	topics := strings.NewReplacer(gotTopics.Input+"/", "TOPIC/", wantTopics.Input+"/", "TOPIC/")
	reftest.SameRows(t, got, want, topics.Replace)
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// checkMySQL compares the stream_transactions table with the CSV of the
// uninterrupted run: same ids, statuses and balances.
func checkMySQL(t *testing.T, cfg interface{ FormatDSN() string }, refDir string) {
	t.Helper()
	db := openSQL(t, cfg.FormatDSN())
	var n int64
	var sum string
	if err := db.QueryRow("SELECT COUNT(*), COALESCE(SUM(pending_balance),0) FROM stream_transactions").Scan(&n, &sum); err != nil {
		t.Fatal(err)
	}
	var csvRows int64
	var csvSum int64
	if err := csvfile.ReadResults(filepath.Join(refDir, csvfile.StreamFile), func(r txResult, _ int) error {
		csvRows++
		csvSum += int64(r.PendingBalance)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != csvRows || n == 0 {
		t.Fatalf("MySQL has %d stream rows, the uninterrupted run's CSV %d", n, csvRows)
	}
	var rejRows, rejCSV int64
	if err := db.QueryRow("SELECT COUNT(*) FROM rejected_transactions").Scan(&rejRows); err != nil {
		t.Fatal(err)
	}
	if err := csvfile.ReadColumns(filepath.Join(refDir, csvfile.RejectedFile), []string{"reason"}, func([]string) { rejCSV++ }); err != nil {
		t.Fatal(err)
	}
	if rejRows != rejCSV || rejRows == 0 {
		t.Fatalf("MySQL has %d rejected rows, the uninterrupted run's CSV %d", rejRows, rejCSV)
	}
	if got := strings.Replace(sum, ".", "", 1); got != strconv.FormatInt(csvSum, 10) {
		t.Fatalf("MySQL Σ pending_balance %s, CSV %d cents", sum, csvSum)
	}
}

// groupLag is how many input records the validators' group has not yet
// committed.
func groupLag(t *testing.T, brokers []string, group, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		committed, err = kadm.OffsetResponses{}, nil // nothing committed yet
	}
	if err != nil {
		t.Fatal(err)
	}
	var lag int64
	ends.Each(func(o kadm.ListedOffset) {
		done := int64(0)
		if c, ok := committed.Lookup(topic, o.Partition); ok && c.At > 0 {
			done = c.At
		}
		lag += o.Offset - done
	})
	return lag
}
