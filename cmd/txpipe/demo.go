package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/txpipe/txpipe/config"
	"github.com/txpipe/txpipe/dataset"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/serving/mysqlstore"
	"github.com/txpipe/txpipe/stream"
	"github.com/txpipe/txpipe/stream/embedded"
)

func newDemo() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole pipeline once, in one process, on an embedded broker",
		Long: `demo starts an embedded Kafka-protocol broker on a free loopback port, loads
the dataset (--data, default ./dataset, or the dataset built into the
binary when that folder is absent), produces every transaction through
Kafka, runs the validator and the sinks until every transaction is decided,
runs the batch layer, writes results/*.csv and prints a summary. It uses the
same code as load, produce, consume and batch. With DB_HOST it also fills
MySQL and the batch reads from there; with KAFKA_BOOTSTRAP_SERVERS it uses
that cluster instead of the embedded broker.`,
		Example: `  txpipe demo
  txpipe demo --data /tmp/big --results /tmp/big-results
  DB_HOST=127.0.0.1 txpipe demo`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			return runDemo(cmd.Context(), cfg, cmd.Flags().Changed("data"), cmd.OutOrStdout())
		},
	}
	return cmd
}

func runDemo(ctx context.Context, cfg *config.Config, dataGiven bool, out io.Writer) error {
	start := time.Now()
	data := cfg.Data
	if _, err := os.Stat(filepath.Join(data, csvfile.CardsFile)); err != nil {
		if dataGiven {
			return fmt.Errorf("dataset %s: %w", data, err)
		}
		tmp, err := os.MkdirTemp("", "txpipe-dataset-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if err := os.CopyFS(tmp, dataset.Default); err != nil {
			return fmt.Errorf("unpack the built-in dataset: %w", err)
		}
		slog.Info("no dataset folder here: using the dataset built into the binary", "looked_in", data)
		data = tmp
	}
	cfg.Data = data
	m, err := csvfile.ReadMaster(data)
	if err != nil {
		return err
	}

	topic := cfg.KafkaTopic
	group := cfg.KafkaGroupID
	if cfg.KafkaSet {
		// A shared cluster may hold older runs: use topics of our own.
		suffix := fmt.Sprintf("demo-%d", time.Now().UnixNano())
		topic, group = topic+"-"+suffix, group+"-"+suffix
		cfg.KafkaTopic, cfg.KafkaGroupID = topic, group
		if err := config.CheckTopic(topic); err != nil {
			return fmt.Errorf("KAFKA_TOPIC with the demo's suffix: %w", err)
		}
	} else {
		b, err := embedded.Start(0, "")
		if err != nil {
			return err
		}
		defer b.Close()
		cfg.KafkaBootstrap = strings.Join(b.Addrs(), ",")
	}
	topics := topicsOf(cfg)
	opts, err := clientOpts(cfg)
	if err != nil {
		return err
	}
	// Segments of an earlier run belong to topics that no longer exist.
	if err := os.RemoveAll(filepath.Join(cfg.Results, ".txpipe-segments")); err != nil {
		return err
	}

	// Load: MySQL first (one transaction), then the topics, as load
	// initial does.
	t0 := time.Now()
	db, err := openDB(ctx, cfg)
	if err != nil {
		return err
	}
	if db != nil {
		defer db.Close()
		if err := resetStream(ctx, db); err != nil {
			return err
		}
		if _, _, err := db.LoadInitial(ctx, m, filepath.Join(data, csvfile.TransactionsFile)); err != nil {
			return err
		}
	}
	if len(m.Cards) == 0 {
		slog.Warn("WARNING: the dataset has no cards: every transaction will be rejected as unknown_card")
	}
	if err := stream.PublishMaster(ctx, cfg.Brokers(), topics, m.Cards, m.Customers, opts...); err != nil {
		return err
	}
	loadTime := time.Since(t0)

	// Produce.
	t0 = time.Now()
	src, err := stream.CSVRows(filepath.Join(data, csvfile.TransactionsFile))
	if err != nil {
		return err
	}
	ps, err := stream.Produce(ctx, stream.ProducerConfig{Brokers: cfg.Brokers(), Topics: topics, ClientOpts: opts}, src)
	if err != nil {
		return err
	}
	produceTime := time.Since(t0)

	// Consume until every record is decided and written.
	t0 = time.Now()
	want := ps.Records + ps.Rejected
	cc := stream.ConsumeConfig{
		Brokers: cfg.Brokers(), Topics: topics, Group: group, Instance: "demo", ResultsDir: cfg.Results, ClientOpts: opts,
		Done: func(s stream.ConsumeStats) bool { return s.Written >= want },
	}
	if db != nil {
		cc.Store, cc.Transient = db, mysqlstore.IsTransient
	}
	cs, err := stream.Consume(ctx, cc)
	if err != nil {
		return err
	}
	if cs.Written < want {
		return fmt.Errorf("stream stopped after %d of %d records", cs.Written, want)
	}
	streamTime := time.Since(t0)

	// Batch.
	t0 = time.Now()
	bs, err := runBatch(ctx, cfg, false, true)
	if err != nil {
		return err
	}
	batchTime := time.Since(t0)

	statuses, err := countColumn(filepath.Join(cfg.Results, csvfile.StreamFile), "status", "decline_reason")
	if err != nil {
		return err
	}
	rejected, err := countColumn(filepath.Join(cfg.Results, csvfile.RejectedFile), "reason", "")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "demo: %d transactions produced (%d malformed rows straight to the dead-letter topic)\n", ps.Records, ps.Rejected)
	fmt.Fprintf(out, "  stream:   %s\n", statuses)
	fmt.Fprintf(out, "  rejected: %s\n", rejected)
	fmt.Fprintf(out, "  batch:    %d approved, %d declined; %d of %d cards had their limit cut, %d of %d customers changed score\n",
		bs.Approved, bs.Declined, bs.CardsRelimited, bs.Cards, bs.CustomersRescored, bs.Customers)
	fmt.Fprintf(out, "  seconds:  load %.2f, produce %.2f, stream %.2f, batch %.2f, total %.2f\n",
		loadTime.Seconds(), produceTime.Seconds(), streamTime.Seconds(), batchTime.Seconds(), time.Since(start).Seconds())
	fmt.Fprintf(out, "  results:  %s\n", cfg.Results)
	return nil
}

// countColumn counts a CSV file's rows by the value of col (and of sub,
// when given, as "col/sub").
func countColumn(path, col, sub string) (string, error) {
	counts := map[string]int{}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "none", nil
	}
	if err != nil {
		return "", err
	}
	f.Close()
	if err := csvfile.ReadColumns(path, []string{col, sub}, func(vals []string) {
		k := vals[0]
		if sub != "" && vals[1] != "" {
			k += " (" + vals[1] + ")"
		}
		counts[k]++
	}); err != nil {
		return "", err
	}
	if len(counts) == 0 {
		return "none", nil
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
	}
	return strings.Join(parts, ", "), nil
}

// resetStream empties the stream's tables and the sinks' stored offsets:
// a demo starts a new stream on a new broker.
func resetStream(ctx context.Context, db *mysqlstore.DB) error {
	tx, err := db.SQL.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("reset stream tables: %w", err)
	}
	defer tx.Rollback()
	for _, table := range []string{"stream_transactions", "rejected_transactions", "sink_offsets"} {
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+table); err != nil {
			return fmt.Errorf("reset %s: %w", table, err)
		}
	}
	return tx.Commit()
}
