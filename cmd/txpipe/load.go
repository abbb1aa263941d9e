package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/batch"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/stream"
)

func newLoad() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "load",
		Short: "Load datasets and results: master data to Kafka, CSV files to MySQL",
		Example: `  txpipe load initial --data dataset
  DB_HOST=127.0.0.1 txpipe load stream
  DB_HOST=127.0.0.1 txpipe load updated`,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "initial",
		Short: "Publish cards and customers to their topics and load the dataset into MySQL",
		Long: `initial reads the dataset directory (--data) and checks all the master data
first: every field against the schema's limits (UTF-8, column widths,
control characters, number ranges). A bad row stops it with the file, line
and column, before anything is written anywhere. Then, when a database is
configured, it replaces customers, credit_card_types, cards and
transactions in MySQL in one transaction; transaction rows that cannot be
loaded go to results/load_rejected.csv and the load_rejected table with
their reason (the stream's own rejected rows are in rejected_transactions). Last it publishes cards
(with their limits) and customers (with their addresses) to their
compacted topics. If publishing fails after MySQL committed, it says so
and exits non-zero: run it again, it stores the same rows and publishes
every record again (the topics keep the last record of each id).

A cards.csv without cards is loaded with a loud warning: every
transaction will then be rejected as unknown_card.`,
		Example: `  txpipe load initial --data dataset
  DB_HOST=127.0.0.1 txpipe load initial --data /tmp/big`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			m, err := csvfile.ReadMaster(cfg.Data)
			if err != nil {
				return err
			}
			warning := ""
			if len(m.Cards) == 0 {
				warning = fmt.Sprintf("%s has no cards: every transaction will be rejected as unknown_card", filepath.Join(cfg.Data, csvfile.CardsFile))
				slog.Warn("WARNING: " + warning)
			}
			db, err := openDB(ctx, cfg)
			if err != nil {
				return err
			}
			var (
				loaded   int
				rejected []txpipe.Rejected
			)
			if db != nil {
				defer db.Close()
				if loaded, rejected, err = db.LoadInitial(ctx, m, filepath.Join(cfg.Data, csvfile.TransactionsFile)); err != nil {
					return err
				}
				if _, err := batch.LoadDemographics(ctx, db.SQL, cfg.Data); err != nil {
					return err
				}
				slog.Info("master data and transactions stored in MySQL", "customers", len(m.Customers), "cards", len(m.Cards), "transactions", loaded, "rejected", len(rejected))
			}
			if err := kafkaReady(ctx, cfg); err != nil {
				if db != nil {
					return fmt.Errorf("the master data is stored in MySQL, but publishing it to Kafka at %s failed (run load initial again: it stores the same rows and publishes all of them again): %w", cfg.KafkaBootstrap, err)
				}
				return err
			}
			opts, err := clientOpts(cfg)
			if err != nil {
				return err
			}
			pctx, cancel := context.WithTimeout(ctx, brokerTimeout)
			defer cancel()
			if err := stream.PublishMaster(pctx, cfg.Brokers(), topicsOf(cfg), m.Cards, m.Customers, opts...); err != nil {
				if db != nil {
					return fmt.Errorf("the master data is stored in MySQL, but publishing it to Kafka at %s failed (run load initial again: it stores the same rows and publishes all of them again): %w", cfg.KafkaBootstrap, err)
				}
				return fmt.Errorf("publish the master data to Kafka at %s: %w", cfg.KafkaBootstrap, err)
			}
			slog.Info("master data published", "cards", len(m.Cards), "customers", len(m.Customers))
			if err := loadStolen(cmd, cfg, m); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if db == nil {
				fmt.Fprintf(out, "load initial: %d customers, %d cards published (no database configured)\n", len(m.Customers), len(m.Cards))
			} else {
				if err := writeRejected(cfg.Results, rejected); err != nil {
					return err
				}
				fmt.Fprintf(out, "load initial: %d customers, %d cards, %d transactions loaded, %d rejected\n",
					len(m.Customers), len(m.Cards), loaded, len(rejected))
			}
			if warning != "" {
				fmt.Fprintln(out, "load initial: WARNING:", warning)
			}
			return nil
		},
	})
	for _, sub := range []struct {
		name, short string
		files       map[string]string
	}{
		{"stream", "Load results/stream_transactions.csv into MySQL", map[string]string{"stream_transactions": csvfile.StreamFile}},
		{"updated", "Load the batch results (batch_transactions, cards_updated, customers_updated) into MySQL", map[string]string{
			"batch_transactions": csvfile.BatchFile, "cards_updated": csvfile.CardsUpdatedFile, "customers_updated": csvfile.CustomersUpdFile,
		}},
	} {
		cmd.AddCommand(&cobra.Command{
			Use:     sub.name,
			Short:   sub.short,
			Example: "  DB_HOST=127.0.0.1 txpipe load " + sub.name + " --results results",
			Args:    cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				cfg, err := loadConfig(cmd)
				if err != nil {
					return err
				}
				if !cfg.HasDB() {
					return fmt.Errorf("load %s needs a database: set DB_HOST (and DB_PORT, DB_USER, DB_PASSWORD, DB_NAME)", sub.name)
				}
				db, err := openDB(cmd.Context(), cfg)
				if err != nil {
					return err
				}
				defer db.Close()
				for table, file := range sub.files {
					n, err := db.LoadResults(cmd.Context(), table, filepath.Join(cfg.Results, file))
					if err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "load %s: %d rows into %s\n", sub.name, n, table)
				}
				return nil
			},
		})
	}
	return cmd
}

// writeRejected writes the transaction rows load initial could not load to
// results/load_rejected.csv.
func writeRejected(resultsDir string, rejected []txpipe.Rejected) error {
	w, err := csvfile.Create(filepath.Join(resultsDir, csvfile.LoadRejectedFile), csvfile.RejectedColumns[:11])
	if err != nil {
		return err
	}
	var rec []string
	for _, r := range rejected {
		rec = csvfile.AppendRejected(rec[:0], r)[:11] // no Kafka position: these never reached Kafka
		if err := w.Write(rec); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Commit()
}
