package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/internal/metrics"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/stream"
)

func newProduce() *cobra.Command {
	var (
		file      string
		fromDB    bool
		rate      float64
		noBar     bool
		fromStart bool
		addr      string
	)
	cmd := &cobra.Command{
		Use:   "produce",
		Short: "Publish transactions to Kafka in event order, keyed by card",
		Long: `produce publishes transactions to KAFKA_TOPIC in event order (timestamp, then
input order), keyed by card_id, as JSON objects with the CSV's field names,
with an event-type header and an idempotent producer. The source is a CSV
file (--file, default <data>/transactions.csv) or, with --from-db, MySQL's
transactions table. Rows with the wrong number of fields go straight to the
dead-letter topic; the validator judges everything else.

It is idempotent across runs: each Kafka transaction of records also
records how far the source is published (topic txpipe.producer-positions),
so a second produce of the same file (or table) continues where the first
stopped and publishes nothing that was published before. A stop (Ctrl-C,
SIGTERM) commits what was handed to the client and reports only that.`,
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
			if err := kafkaReady(ctx, cfg); err != nil {
				return err
			}
			var src stream.Source
			if fromDB {
				db, err := openDB(ctx, cfg)
				if err != nil {
					return err
				}
				if db == nil {
					return fmt.Errorf("--from-db needs a database: set DB_HOST")
				}
				defer db.Close()
				src = stream.Source{ID: "mysql:" + cfg.DBName + ".transactions", Name: "table transactions of " + cfg.DBName, Total: -1,
					Rows: func(after string, yield func(stream.Row) error) error {
						return db.ScanTransactions(ctx, after, func(raw txpipe.RawTransaction, seq int64, pos string) error {
							return yield(stream.Row{Raw: raw, Seq: seq, Source: fmt.Sprintf("transactions#%d", seq), FieldsOK: true, Position: pos})
						})
					}}
			} else {
				if file == "" {
					file = filepath.Join(cfg.Data, csvfile.TransactionsFile)
				}
				if src, err = stream.CSVRows(file); err != nil {
					return err
				}
			}
			obs, _, err := observe(addr, cfg, true, fromDB)
			if err != nil {
				return err
			}
			defer obs.close()
			opts, err := clientOpts(cfg)
			if err != nil {
				return err
			}
			pc := stream.ProducerConfig{Brokers: cfg.Brokers(), Topics: topicsOf(cfg), Rate: rate, FromStart: fromStart,
				ClientOpts: append(append(opts, metrics.KafkaOpts("produce")...), metrics.ProducedHook())}
			if !noBar && stream.IsTerminal(os.Stderr) {
				pc.Progress = os.Stderr
			}
			st, err := stream.Produce(ctx, pc, src)
			if err != nil {
				if st.Records+st.Rejected > 0 {
					fmt.Fprintln(cmd.OutOrStdout(), "produce (stopped by an error):", st)
				}
				return err
			}
			if st.Records+st.Rejected == 0 && st.From != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "produce: nothing new in %s: every row was published before (up to position %s); --from-start publishes it again\n", src.Name, st.From)
				return nil
			}
			fmt.Fprintln(cmd.OutOrStdout(), "produce:", st)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&file, "file", "", "transactions CSV to publish (default <data>/transactions.csv)")
	f.BoolVar(&fromDB, "from-db", false, "publish MySQL's transactions table instead of a file")
	f.Float64Var(&rate, "rate", 0, "records per second (0: as fast as the broker takes)")
	f.BoolVar(&noBar, "no-progress", false, "no progress bar")
	f.BoolVar(&fromStart, "from-start", false, "publish the source from its start even where an earlier run published it (the validator rejects what it judged before as duplicates)")
	metricsFlag(cmd, &addr)
	return cmd
}
