package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/batch"
	"github.com/txpipe/txpipe/config"
	"github.com/txpipe/txpipe/stream"
)

func newBatch() *cobra.Command {
	var (
		parquet   bool
		noPublish bool
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
consumers apply the new limits without a restart. Exit status 0 only on
success; one summary line on stdout, logs on stderr.`,
		Example: `  txpipe batch
  txpipe batch --parquet
  # nightly at 02:00 from cron
  0 2 * * * cd /srv/txpipe && ./txpipe batch >> batch.log 2>&1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			sum, err := runBatch(cmd.Context(), cfg, parquet, !noPublish)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), sum)
			return nil
		},
	}
	cmd.Flags().BoolVar(&parquet, "parquet", false, "also write results/*.parquet")
	cmd.Flags().BoolVar(&noPublish, "no-publish", false, "do not republish changed limits to Kafka")
	return cmd
}

// runBatch runs the batch layer on the configured database, or on the CSV
// files without one.
func runBatch(ctx context.Context, cfg *config.Config, parquet, publish bool) (batch.Summary, error) {
	o := batch.Options{DataDir: cfg.Data, ResultsDir: cfg.Results, Parquet: parquet, Log: slog.Default()}
	db, err := openDB(ctx, cfg)
	if err != nil {
		return batch.Summary{}, err
	}
	if db != nil {
		defer db.Close()
		o.DB = db.SQL
	}
	if publish {
		opts, err := clientOpts(cfg)
		if err != nil {
			return batch.Summary{}, err
		}
		o.Publish = func(ctx context.Context, changed []txpipe.Card) error {
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			return stream.PublishMaster(ctx, cfg.Brokers(), topicsOf(cfg), changed, nil, opts...)
		}
	}
	return batch.Run(ctx, o)
}
