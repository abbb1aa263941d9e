package main

import (
	"bytes"
	"context"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/dataset"
	"github.com/txpipe/txpipe/internal/kafkatest"
	"github.com/txpipe/txpipe/internal/mysqltest"
	"github.com/txpipe/txpipe/serving/mysqlstore"
	"github.com/txpipe/txpipe/stream"
)

// runCLIErr runs one txpipe command line in-process and returns its
// output and error.
func runCLIErr(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&out)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// stolenEnv points the commands at topics of their own on the broker and
// at a new dataset (and at a database when db is set); it returns the
// dataset directory and the topics.
func stolenEnv(t *testing.T, k kafkatest.Broker, db *mysql.Config) (string, stream.Topics) {
	t.Helper()
	topics := k.Topics(t, "stolen")
	data := t.TempDir()
	if _, err := dataset.Generate(context.Background(), data, dataset.Options{Customers: 30, Cards: 50, Transactions: 20, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir()) // no .env here
	setEnv(t, kafkaEnv(k, topics, kafkatest.Name("stolen")))
	env := map[string]string{"TXPIPE_RESULTS": t.TempDir(), "TXPIPE_DATA": data, "DB_HOST": ""}
	if db != nil {
		host, port, _ := strings.Cut(db.Addr, ":")
		maps.Copy(env, map[string]string{"DB_HOST": host, "DB_PORT": port, "DB_USER": db.User, "DB_PASSWORD": db.Passwd, "DB_NAME": db.DBName})
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	return data, topics
}

func readStolen(t *testing.T, brokers []string, topics stream.Topics) map[int64]txpipe.StolenCard {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := stream.ReadStolen(ctx, brokers, topics)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// stolenOfFile is what a cards file says is stolen.
func stolenOfFile(t *testing.T, path string) map[int64]txpipe.StolenCard {
	t.Helper()
	cards, err := dataset.ReadCardsFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]txpipe.StolenCard{}
	for _, c := range cards {
		if c.Stolen {
			out[c.ID] = c.StolenCard()
		}
	}
	return out
}

// TestReportStolen: gen cards marks a dataset's cards, load initial
// publishes them, report-stolen reports and clears at runtime; bad ids,
// times and unknown cards get clear errors and publish nothing.
func TestReportStolen(t *testing.T) {
	kafkatest.Each(t, func(t *testing.T, k kafkatest.Broker) {
		data, topics := stolenEnv(t, k, nil)
		out := runCLI(t, "gen", "cards", "--data", data, "--stolen", "0.2", "--seed", "5")
		file := filepath.Join(data, dataset.StolenCardsFile)
		if !strings.Contains(out, "50 cards of "+data+", 10 stolen, in "+file) {
			t.Fatalf("gen cards: %s", out)
		}
		want := stolenOfFile(t, file)
		if out := runCLI(t, "load", "initial"); !strings.Contains(out, "10 of the 50 cards in "+file+" stolen ("+topics.Stolen+")") {
			t.Fatalf("load initial: %s", out)
		}
		if got := readStolen(t, k.Addrs, topics); !maps.Equal(got, want) {
			t.Fatalf("after load initial: %v, want %v", got, want)
		}

		var notStolen, stolen int64
		for id := int64(1); notStolen == 0 || stolen == 0; id++ {
			if _, ok := want[id]; ok {
				stolen = id
			} else {
				notStolen = id
			}
		}
		at := time.Date(2025, 4, 2, 10, 0, 0, 0, time.UTC)
		runCLI(t, "report-stolen", strconv.FormatInt(notStolen, 10), "--at", "2025-04-02T12:00:00+02:00")
		runCLI(t, "report-stolen", "--clear", strconv.FormatInt(stolen, 10))
		want[notStolen] = txpipe.StolenCard{CardID: notStolen, ReportedAt: at}
		delete(want, stolen)
		if got := readStolen(t, k.Addrs, topics); !maps.Equal(got, want) {
			t.Fatalf("after report-stolen: %v, want %v", got, want)
		}
		before := time.Now().UTC().Truncate(time.Second)
		runCLI(t, "report-stolen", strconv.FormatInt(stolen, 10)) // now
		if got := readStolen(t, k.Addrs, topics)[stolen]; got.ReportedAt.Before(before) || got.ReportedAt.After(time.Now()) {
			t.Fatalf("reported now: %+v", got)
		}

		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"report-stolen", "x1"}, `card id "x1" is not a positive integer`},
			{[]string{"report-stolen", "0"}, `card id "0" is not a positive integer`},
			{[]string{"report-stolen", "5", "--at", "2025-04-31 10:00:00"}, `--at "2025-04-31 10:00:00": not a time`},
			{[]string{"report-stolen", "5", "--clear", "--at", "2025-04-02 10:00:00"}, "--at and --clear do not go together"},
			{[]string{"report-stolen", "9999"}, "card 9999 is not in the master data (" + topics.Cards},
			{[]string{"report-stolen"}, "requires at least 1 arg"},
		} {
			_, err := runCLIErr(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
			}
		}
		if got := readStolen(t, k.Addrs, topics); len(got) != len(want)+1 {
			t.Fatalf("a refused command published: %d stolen cards", len(got))
		}
		runCLI(t, "report-stolen", "9999", "--force")
		if _, ok := readStolen(t, k.Addrs, topics)[9999]; !ok {
			t.Fatal("--force did not publish card 9999")
		}

		// A cards file that does not match the dataset stops load initial.
		cards, _ := dataset.ReadCardsFile(file)
		cards[0].Number = "4111111111111111"
		if err := dataset.WriteCardsFile(file, cards, true); err != nil {
			t.Fatal(err)
		}
		if _, err := runCLIErr(t, "load", "initial"); err == nil || !strings.Contains(err.Error(), "card 1 has number …1111 there") {
			t.Fatalf("load initial with a foreign cards file: %v", err)
		}
	})
}

// TestStolenCardsTable: with a database, load initial and report-stolen
// keep the stolen_cards table equal to the topic.
func TestStolenCardsTable(t *testing.T) {
	kafkatest.Each(t, func(t *testing.T, k kafkatest.Broker) {
		cfg := mysqltest.NewDatabase(t)
		data, topics := stolenEnv(t, k, cfg)
		runCLI(t, "gen", "cards", "--data", data, "--stolen", "0.3")
		if out := runCLI(t, "load", "initial"); !strings.Contains(out, "stolen ("+topics.Stolen+" and the stolen_cards table)") {
			t.Fatalf("load initial: %s", out)
		}
		runCLI(t, "report-stolen", "--clear", "1", "2", "3")
		runCLI(t, "report-stolen", "4", "--at", "2025-04-03 00:00:01")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db, err := mysqlstore.Open(ctx, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		table, err := db.StolenCards(ctx)
		if err != nil {
			t.Fatal(err)
		}
		topic := readStolen(t, k.Addrs, topics)
		if !maps.Equal(table, topic) || len(table) < 10 {
			t.Fatalf("table %v\ntopic %v", table, topic)
		}
		if has(table, 1) || has(table, 2) || has(table, 3) || table[4].ReportedAt != time.Date(2025, 4, 3, 0, 0, 1, 0, time.UTC) {
			t.Fatalf("table after report-stolen: %v", table)
		}
	})
}

func has(m map[int64]txpipe.StolenCard, id int64) bool { _, ok := m[id]; return ok }

// TestGenRefusesToOverwrite: plain gen keeps the dataset in dataset/
// unless --out or --force; gen cards keeps an existing file unless --force.
func TestGenRefusesToOverwrite(t *testing.T) {
	t.Chdir(t.TempDir())
	small := []string{"--customers", "3", "--cards", "4", "--transactions", "5"}
	runCLI(t, append([]string{"gen"}, small...)...) // dataset/ does not exist yet
	before, _ := os.ReadFile(filepath.Join("dataset", dataset.CardsFile))
	_, err := runCLIErr(t, append([]string{"gen", "--seed", "9"}, small...)...)
	if err == nil || !strings.Contains(err.Error(), "dataset already holds a dataset (customers.csv): name a directory with --out DIR, or pass --force") {
		t.Fatalf("gen over dataset/: %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join("dataset", dataset.CardsFile)); !bytes.Equal(before, after) {
		t.Fatal("the refused gen changed dataset/")
	}
	runCLI(t, append([]string{"gen", "--seed", "9", "--force"}, small...)...)
	runCLI(t, append([]string{"gen", "--seed", "9", "--out", "dataset"}, small...)...)
	if after, _ := os.ReadFile(filepath.Join("dataset", dataset.CardsFile)); bytes.Equal(before, after) {
		t.Fatal("--force did not overwrite dataset/")
	}

	runCLI(t, "gen", "cards", "--count", "10", "--out", "c.csv")
	if _, err := runCLIErr(t, "gen", "cards", "--count", "20", "--out", "c.csv"); err == nil || !strings.Contains(err.Error(), "file already exists: pass --force") {
		t.Fatalf("gen cards over a file: %v", err)
	}
	runCLI(t, "gen", "cards", "--count", "20", "--out", "c.csv", "--force")
	if cards, err := dataset.ReadCardsFile("c.csv"); err != nil || len(cards) != 20 {
		t.Fatalf("after --force: %d cards, %v", len(cards), err)
	}
	if _, err := runCLIErr(t, "gen", "cards", "--data", "dataset", "--count", "3"); err == nil || !strings.Contains(err.Error(), "--count makes new cards") {
		t.Fatalf("--data with --count: %v", err)
	}
}

// TestSimulateCommand: simulate --count publishes exactly that many, from
// a cards file or a dataset, and says so.
func TestSimulateCommand(t *testing.T) {
	kafkatest.Each(t, func(t *testing.T, k kafkatest.Broker) {
		data, topics := stolenEnv(t, k, nil)
		runCLI(t, "load", "initial")
		out := runCLI(t, "simulate", "--count", "150", "--rate", "5000", "--seed", "3", "--late", "0.5", "--no-progress")
		if !strings.Contains(out, "simulate: 150 payments acknowledged by the broker (") {
			t.Fatalf("simulate: %s", out)
		}
		runCLI(t, "gen", "cards", "--data", data, "--out", "cards.csv")
		out = runCLI(t, "simulate", "--cards", "cards.csv", "--count", "50", "--rate", "5000", "--no-progress")
		if !strings.Contains(out, "simulate: 50 payments acknowledged by the broker (0 late)") {
			t.Fatalf("simulate --cards: %s", out)
		}
		if n := inputRecords(t, k.Addrs, topics.Input); n != 200 {
			t.Fatalf("the input topic holds %d records, want the 200 payments", n)
		}
		if _, err := runCLIErr(t, "simulate", "--cards", "cards.csv", "--data", data, "--count", "1"); err == nil {
			t.Fatal("--cards with --data: no error")
		}
		if _, err := runCLIErr(t, "simulate", "--rate", "0", "--count", "1"); err == nil || !strings.Contains(err.Error(), "rate 0") {
			t.Fatalf("--rate 0: %v", err)
		}
	})
}

// inputRecords counts the records of the input topic.
func inputRecords(t *testing.T, brokers []string, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}
