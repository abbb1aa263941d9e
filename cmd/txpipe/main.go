// Command txpipe is a Kafka-based Lambda pipeline for credit-card
// transactions: a stream layer that judges every transaction exactly once,
// a nightly batch layer that settles balances and re-scores customers, and
// a serving layer between CSV files, MySQL and users.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/txpipe/txpipe/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "txpipe:", err)
		os.Exit(1)
	}
}

var logLevel = new(slog.LevelVar)

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "txpipe",
		Short: "A Kafka-based Lambda pipeline for credit-card transactions",
		Long: `txpipe judges credit-card transactions as they arrive (stream layer), settles
balances, credit scores and limits nightly (batch layer), and moves data
between CSV files, MySQL and users (serving layer).

Settings come from flags, then the environment, then a .env file:
KAFKA_BOOTSTRAP_SERVERS, KAFKA_TOPIC, KAFKA_GROUP_ID, CONSUMER_TIMEOUT_MS,
KAFKA_CARDS_TOPIC, KAFKA_CUSTOMERS_TOPIC, KAFKA_COMPRESSION, DB_HOST, DB_PORT,
DB_USER, DB_PASSWORD (environment only), DB_NAME.
Without DB_HOST everything runs on Kafka and CSV files alone.`,
		Example: `  # the whole pipeline in one process, on an embedded broker
  txpipe demo

  # the everyday flow, each in its own terminal
  txpipe dev
  txpipe load initial --data dataset
  txpipe consume
  txpipe produce --rate 10
  txpipe batch`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			if v, _ := cmd.Flags().GetBool("verbose"); v {
				logLevel.Set(slog.LevelDebug)
				kafkaLevel.Set(slog.LevelDebug)
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel})))
		},
	}
	root.PersistentFlags().BoolP("verbose", "v", false, "debug logging, the Kafka client's included (it logs warnings only otherwise)")
	config.Flags(root.PersistentFlags())
	root.AddCommand(newGen(), newMigrate(), newLoad(), newProduce(), newConsume(), newDev(), newBatch(), newDemo(), newBench())
	return root
}
