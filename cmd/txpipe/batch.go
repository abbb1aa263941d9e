package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/batch"
	"github.com/txpipe/txpipe/config"
	"github.com/txpipe/txpipe/internal/metrics"
	"github.com/txpipe/txpipe/stream"
)

func newBatch() *cobra.Command {
	var (
		parquet     bool
		noPublish   bool
		memLimitMiB int64
		f           = batchFlags{analytics: true}
		addr        string
	)
	cmd := &cobra.Command{
		Use:   "batch",
		Short: "Run the nightly batch: approve pending, settle balances, re-score customers, cut limits",
		Long: `batch recomputes the views from the master data and every stream result:
pending transactions become approved, card balances are settled, customers
re-scored and credit limits cut. With DB_HOST it reads MySQL (the tables the
stream sink wrote) and writes the views back to MySQL and results/*.csv;
without, it reads the dataset CSVs and results/stream_transactions.csv. A
failed run leaves the previous views untouched; a second run changes nothing.
Cards whose limit changed are republished to the cards topic, so running
consumers apply the new limits without a restart. In the same pass it
computes the analytics views (results/analytics_*.csv and the analytics_*
tables: regions, segments, time patterns, daily KPIs, lost sales, merchant
drops, refund rates, KPIs and a 14-day cash-flow forecast); --analytics=false
skips them and leaves those of the last run. Exit status 0 only on success;
one summary line on stdout, logs on stderr.`,
		Example: `  txpipe batch
  txpipe batch --parquet
  txpipe batch --analytics=false
  txpipe batch --min-weekly-volume 50
  # nightly at 02:00 from cron
  0 2 * * * cd /srv/txpipe && ./txpipe batch >> batch.log 2>&1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			obs, _, err := observe(addr, cfg, !noPublish, true)
			if err != nil {
				return err
			}
			defer obs.close()
			if os.Getenv("GOMEMLIMIT") == "" && memLimitMiB > 0 {
				// A soft limit: the garbage collector works harder near it
				// instead of letting the heap double.
				debug.SetMemoryLimit(memLimitMiB << 20)
			}
			f.parquet, f.publish = parquet, !noPublish
			sum, err := runBatchWith(cmd.Context(), cfg, f)
			metrics.ObserveBatch(sum.Elapsed, sum.Approved, sum.Declined, err)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), sum)
			return nil
		},
	}
	cmd.Flags().BoolVar(&parquet, "parquet", false, "also write results/*.parquet")
	cmd.Flags().BoolVar(&noPublish, "no-publish", false, "do not republish changed limits to Kafka")
	cmd.Flags().BoolVar(&f.analytics, "analytics", true, "also compute the analytics views")
	cmd.Flags().IntVar(&f.minWeeklyVolume, "min-weekly-volume", batch.DefaultMinWeeklyVolume,
		"fewest transactions of a merchant's week for a week-over-week drop from it to be listed")
	metricsFlag(cmd, &addr)
	cmd.Flags().Int64Var(&memLimitMiB, "memory-limit", 256, "soft memory limit in MiB for the garbage collector (0: none; GOMEMLIMIT wins)")
	return cmd
}

// batchFlags are the options of a batch run.
type batchFlags struct {
	parquet, publish, analytics bool
	minWeeklyVolume             int
}

// runBatch runs the batch layer, with analytics, on the configured
// database, or on the CSV files without one.
func runBatch(ctx context.Context, cfg *config.Config, parquet, publish bool) (batch.Summary, error) {
	return runBatchWith(ctx, cfg, batchFlags{parquet: parquet, publish: publish, analytics: true})
}

// runBatchWith runs the batch layer with the options of f.
func runBatchWith(ctx context.Context, cfg *config.Config, f batchFlags) (batch.Summary, error) {
	o := batch.Options{DataDir: cfg.Data, ResultsDir: cfg.Results, Parquet: f.parquet, Log: slog.Default(),
		Analytics: f.analytics, MinWeeklyVolume: f.minWeeklyVolume, Topic: stream.TopicsFor(cfg.KafkaTopic).Validated}
	db, err := openDB(ctx, cfg)
	if err != nil {
		return batch.Summary{}, err
	}
	if db != nil {
		defer db.Close()
		o.DB = db.SQL
	}
	if f.publish {
		opts, err := clientOpts(cfg)
		if err != nil {
			return batch.Summary{}, err
		}
		o.Publish = func(ctx context.Context, changed []txpipe.Card) error {
			if err := kafkaReady(ctx, cfg); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			return stream.PublishMaster(ctx, cfg.Brokers(), topicsOf(cfg), changed, nil, append(opts, metrics.KafkaOpts("batch")...)...)
		}
	}
	return batch.Run(ctx, o)
}
