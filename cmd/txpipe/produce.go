package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/stream"
)

func newProduce() *cobra.Command {
	var (
		file   string
		fromDB bool
		rate   float64
		noBar  bool
	)
	cmd := &cobra.Command{
		Use:   "produce",
		Short: "Publish transactions to Kafka in event order, keyed by card",
		Long: `produce publishes transactions to KAFKA_TOPIC in event order (timestamp, then
input order), keyed by card_id, as JSON objects with the CSV's field names,
with an event-type header and an idempotent producer. The source is a CSV
file (--file, default <data>/transactions.csv) or, with --from-db, MySQL's
transactions table. Rows with the wrong number of fields go straight to the
dead-letter topic; the validator judges everything else.`,
		Example: `  txpipe produce                      # the dataset's transactions, as fast as possible
  txpipe produce --rate 10            # the reference's demo pace
  txpipe produce --file /tmp/big/transactions.csv
  DB_HOST=127.0.0.1 txpipe produce --from-db`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var rows func(func(stream.Row) error) error
			if fromDB {
				db, err := openDB(ctx, cfg)
				if err != nil {
					return err
				}
				if db == nil {
					return fmt.Errorf("--from-db needs a database: set DB_HOST")
				}
				defer db.Close()
				rows = func(yield func(stream.Row) error) error {
					return db.ScanTransactions(ctx, func(raw txpipe.RawTransaction, seq int64) error {
						return yield(stream.Row{Raw: raw, Seq: seq, Source: fmt.Sprintf("transactions#%d", seq), FieldsOK: true})
					})
				}
			} else {
				if file == "" {
					file = filepath.Join(cfg.Data, csvfile.TransactionsFile)
				}
				if rows, err = stream.CSVRows(file); err != nil {
					return err
				}
			}
			opts, err := clientOpts(cfg)
			if err != nil {
				return err
			}
			pc := stream.ProducerConfig{Brokers: cfg.Brokers(), Topics: topicsOf(cfg), Rate: rate, ClientOpts: opts}
			if !noBar && stream.IsTerminal(os.Stderr) {
				pc.Progress = os.Stderr
			}
			st, err := stream.Produce(ctx, pc, rows)
			fmt.Fprintln(cmd.OutOrStdout(), "produce:", st)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&file, "file", "", "transactions CSV to publish (default <data>/transactions.csv)")
	f.BoolVar(&fromDB, "from-db", false, "publish MySQL's transactions table instead of a file")
	f.Float64Var(&rate, "rate", 0, "records per second (0: as fast as the broker takes)")
	f.BoolVar(&noBar, "no-progress", false, "no progress bar")
	return cmd
}
