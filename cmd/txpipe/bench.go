package main

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/txpipe/txpipe/bench"
)

func newBench() *cobra.Command {
	var (
		transactions, cards int
		profile             string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure each layer's throughput and memory against this machine's raw limits",
		Long: `bench generates --transactions transactions over --cards cards and measures, in
one run, each txpipe stage against the raw limit of the same machine on the
same data: produce (raw franz-go produce of the same encoded records),
validate (raw exactly-once consume-transform-produce), sink (raw LOAD DATA
LOCAL of the same rows), batch (a raw streaming SELECT, and the SELECT plus
a raw LOAD DATA of the views' rows) and batch-csv (the batch in CSV mode
against a raw CSV read of stream_transactions.csv plus a raw write of the
same view files), each batch without and with the analytics views. It
prints a table, then one line with every ratio, rate and peak RSS. It uses
an embedded broker unless KAFKA_BOOTSTRAP_SERVERS is set, and the database
from DB_* (without one the sink and MySQL batch stages are skipped). It publishes
its own cards and customers to txpipe.cards and txpipe.customers: do not
point it at a cluster whose master data matters.`,
		Example: `  DB_HOST=127.0.0.1 txpipe bench
  DB_HOST=127.0.0.1 txpipe bench --transactions 100000 --cards 5000 --profile /tmp/prof`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			o := bench.Options{Transactions: transactions, Cards: cards, Profile: profile, Out: cmd.OutOrStdout(), Log: slog.Default(), Compression: cfg.KafkaCompression}
			if cfg.KafkaSet {
				o.Brokers = cfg.Brokers()
			}
			if cfg.HasDB() {
				o.MySQL = cfg.MySQL()
			}
			o.Binary, _ = os.Executable()
			_, err = bench.Run(cmd.Context(), o)
			return err
		},
	}
	cmd.Flags().IntVar(&transactions, "transactions", 1000000, "transactions to generate")
	cmd.Flags().IntVar(&cards, "cards", 50000, "cards they are spread over")
	cmd.Flags().StringVar(&profile, "profile", "", "write CPU profiles of the stages to this directory")
	cmd.AddCommand(newBenchServe())
	return cmd
}
