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
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/txpipe/txpipe/config"
	"github.com/txpipe/txpipe/internal/mask"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "txpipe:", mask.Digits(err.Error()))
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
KAFKA_CARDS_TOPIC, KAFKA_CUSTOMERS_TOPIC, KAFKA_STOLEN_TOPIC, KAFKA_COMPRESSION,
KAFKA_CONNECT_TIMEOUT, DB_HOST, DB_PORT, DB_USER, DB_PASSWORD (environment
only), DB_NAME, DB_CONNECT_TIMEOUT.
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
			// Every log line goes through mask: no card number is ever logged.
			slog.SetDefault(slog.New(mask.NewHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))))
		},
	}
	root.PersistentFlags().BoolP("verbose", "v", false, "debug logging, the Kafka client's included (it logs warnings only otherwise)")
	config.Flags(root.PersistentFlags())
	root.Version = version()
	root.AddCommand(newGen(), newMigrate(), newLoad(), newProduce(), newConsume(), newDev(), newBatch(), newDemo(), newBench(), newReset(), newReportStolen(), newSimulate(), newServe())
	return root
}

// version is the module version and the commit the binary was built
// from, as the Go toolchain recorded them.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	var rev, modified, at string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		case "vcs.time":
			at = s.Value
		}
	}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		v += " (commit " + rev
		if modified == "true" {
			v += ", modified"
		}
		if at != "" {
			v += ", " + at
		}
		v += ")"
	}
	return v + " " + bi.GoVersion
}
