package main

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/txpipe/txpipe"
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
		Long: `initial reads the dataset directory (--data), checks the master data (a bad
row stops it with the file, line and column), publishes cards (with their
limits) and customers (with their addresses) to their compacted topics, and,
when a database is configured, replaces customers, credit_card_types, cards
and transactions in MySQL in one transaction each. Transaction rows that
cannot be judged go to results/rejected_transactions.csv and the
rejected_transactions table with their reason.`,
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
			opts, err := clientOpts(cfg)
			if err != nil {
				return err
			}
			if err := stream.PublishMaster(ctx, cfg.Brokers(), topicsOf(cfg), m.Cards, m.Customers, opts...); err != nil {
				return err
			}
			slog.Info("master data published", "cards", len(m.Cards), "customers", len(m.Customers))
			db, err := openDB(ctx, cfg)
			if err != nil || db == nil {
				if err == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "load initial: %d customers, %d cards published (no database configured)\n", len(m.Customers), len(m.Cards))
				}
				return err
			}
			defer db.Close()
			if err := db.LoadMaster(ctx, m); err != nil {
				return err
			}
			n, rejected, err := db.LoadTransactions(ctx, filepath.Join(cfg.Data, csvfile.TransactionsFile))
			if err != nil {
				return err
			}
			if err := writeRejected(cfg.Results, rejected); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "load initial: %d customers, %d cards, %d transactions loaded, %d rejected\n",
				len(m.Customers), len(m.Cards), n, len(rejected))
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

// writeRejected writes rows that could not be judged to
// results/rejected_transactions.csv.
func writeRejected(resultsDir string, rejected []txpipe.Rejected) error {
	w, err := csvfile.Create(filepath.Join(resultsDir, csvfile.RejectedFile), csvfile.RejectedColumns)
	if err != nil {
		return err
	}
	for _, r := range rejected {
		if err := w.WriteRejected(r); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Commit()
}
