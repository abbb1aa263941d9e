package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/txpipe/txpipe/config"
	"github.com/txpipe/txpipe/dataset"
	"github.com/txpipe/txpipe/internal/kafkatest"
	"github.com/txpipe/txpipe/internal/mysqltest"
	"github.com/txpipe/txpipe/internal/reftest"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/serving/mysqlstore"
)

func demoConfig(t *testing.T, data string) *config.Config {
	t.Helper()
	return &config.Config{
		KafkaBootstrap: "localhost:9092", KafkaTopic: "transactions", KafkaGroupID: "txpipe",
		KafkaCardsTopic: "txpipe.cards", KafkaCustomersTopic: "txpipe.customers", KafkaStolenTopic: "txpipe.stolen-cards", KafkaCompression: config.DefaultCompression,
		DBPort: 3306, Data: data, Results: t.TempDir(),
	}
}

func withMySQL(t *testing.T, cfg *config.Config) {
	t.Helper()
	db := mysqltest.NewDatabase(t)
	host, port, _ := strings.Cut(db.Addr, ":")
	cfg.DBHost, cfg.DBUser, cfg.DBPassword, cfg.DBName = host, db.User, db.Passwd, db.DBName
	cfg.DBPort, _ = strconv.Atoi(port)
}

// TestDemoMatchesReference runs the demo over the reference input and
// compares the four result files with the reference results to the cent,
// with and without MySQL, on its own embedded broker and on Kafka.
func TestDemoMatchesReference(t *testing.T) {
	kafkatest.Each(t, func(t *testing.T, b kafkatest.Broker) {
		data, want := reftest.Data(t), reftest.Results(t)
		for _, mode := range []string{"csv", "mysql"} {
			t.Run(mode, func(t *testing.T) {
				cfg := demoConfig(t, data)
				if b.Real() {
					// The demo's own broker is embedded: on Kafka it runs as
					// with KAFKA_BOOTSTRAP_SERVERS set.
					topics := b.Topics(t, "demo")
					cfg.KafkaBootstrap, cfg.KafkaSet = b.Bootstrap(), true
					cfg.KafkaCardsTopic, cfg.KafkaCustomersTopic, cfg.KafkaStolenTopic = topics.Cards, topics.Customers, topics.Stolen
				}
				if mode == "mysql" {
					withMySQL(t, cfg)
				}
				var out bytes.Buffer
				if err := runDemo(context.Background(), cfg, true, &out); err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(out.String(), "400 transactions produced") {
					t.Fatalf("summary:\n%s", out.String())
				}
				for _, f := range []string{csvfile.StreamFile, csvfile.BatchFile, csvfile.CardsUpdatedFile, csvfile.CustomersUpdFile} {
					reftest.CompareFile(t, filepath.Join(cfg.Results, f), filepath.Join(want, f))
				}
				if mode == "mysql" {
					// The tables hold the reference results too, to the cent.
					db, err := mysqlstore.Open(context.Background(), cfg.MySQL(), slog.Default())
					if err != nil {
						t.Fatal(err)
					}
					defer db.Close()
					rows, err := db.StreamRows(context.Background())
					if err != nil {
						t.Fatal(err)
					}
					path := filepath.Join(t.TempDir(), csvfile.StreamFile)
					w, err := csvfile.Create(path, csvfile.ResultColumns)
					if err != nil {
						t.Fatal(err)
					}
					for _, r := range rows {
						if err := w.WriteResult(r); err != nil {
							t.Fatal(err)
						}
					}
					if err := w.Commit(); err != nil {
						t.Fatal(err)
					}
					reftest.CompareFile(t, path, filepath.Join(want, csvfile.StreamFile))
					var n int
					if err := db.SQL.QueryRow("SELECT COUNT(*) FROM batch_transactions WHERE status IN ('approved','declined')").Scan(&n); err != nil || n != 400 {
						t.Fatalf("batch_transactions: %d rows, %v", n, err)
					}
				}
			})
		}
	})
}

// TestDemoListsMalformedRows runs the demo over a generated dataset with
// malformed rows of every kind: exactly those rows are listed in
// rejected_transactions.csv, with their reasons, and the rest runs.
func TestDemoListsMalformedRows(t *testing.T) {
	data := t.TempDir()
	st, err := dataset.Generate(context.Background(), data, dataset.Options{Customers: 40, Cards: 60, Transactions: 3000, Seed: 11, BadRows: 21})
	if err != nil {
		t.Fatal(err)
	}
	cfg := demoConfig(t, data)
	var out bytes.Buffer
	if err := runDemo(context.Background(), cfg, true, &out); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	if err := csvfile.ReadColumns(filepath.Join(cfg.Results, csvfile.RejectedFile), []string{"reason"}, func(v []string) { got[v[0]]++ }); err != nil {
		t.Fatal(err)
	}
	for reason, n := range st.Bad {
		if got[reason] != n {
			t.Errorf("%s: %d rejected, %d injected", reason, got[reason], n)
		}
	}
	if len(got) != len(st.Bad) {
		t.Errorf("rejected reasons %v, injected %v", got, st.Bad)
	}
	judged := 0
	if err := csvfile.ReadColumns(filepath.Join(cfg.Results, csvfile.StreamFile), []string{"status"}, func([]string) { judged++ }); err != nil {
		t.Fatal(err)
	}
	if judged != st.Transactions {
		t.Errorf("%d judged, %d good rows", judged, st.Transactions)
	}
}

// TestDemoFromAnotherDirectory runs the binary elsewhere: with --data and
// --results naming the repository's dataset, and with no dataset folder at
// all (the built-in dataset).
func TestDemoFromAnotherDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	repoData, err := filepath.Abs(filepath.Join("..", "..", "dataset"))
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"--data", repoData, "--results", "out"}, {}} {
		dir := t.TempDir()
		cmd := exec.Command(bin, append([]string{"demo"}, args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "KAFKA_BOOTSTRAP_SERVERS=", "DB_HOST=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("demo %v: %v\n%s", args, err, out)
		}
		results := filepath.Join(dir, "results")
		if len(args) > 0 {
			results = filepath.Join(dir, "out")
		}
		for _, f := range []string{csvfile.StreamFile, csvfile.BatchFile, csvfile.CardsUpdatedFile, csvfile.CustomersUpdFile, csvfile.RejectedFile} {
			if _, err := os.Stat(filepath.Join(results, f)); err != nil {
				t.Errorf("demo %v: %v", args, err)
			}
		}
		if !strings.Contains(string(out), "400 transactions produced") {
			t.Errorf("demo %v summary:\n%s", args, out)
		}
	}
}
