package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/txpipe/txpipe/stream"
)

func newReset() *cobra.Command {
	var withDB, yes bool
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Start the dev state over: delete the stream's topics and groups and the result files (--db: empty the tables)",
		Long: `reset deletes, so that the pipeline starts over on the same broker:
  - the topics of KAFKA_TOPIC (input, .validated, .dlq, .repartition,
    .alerts, .card-state) and the master-data topics;
  - the producer's positions of KAFKA_TOPIC's sources (those of other
    inputs in txpipe.producer-positions stay);
  - the consumer groups KAFKA_GROUP_ID and KAFKA_GROUP_ID.sink;
  - the result files in TXPIPE_RESULTS (CSV, Parquet and the sink's segments;
    results/README.md stays);
  - with --db, every row of the tables in DB_NAME (the schema stays).
Stop every txpipe consume first. It asks for --yes before it deletes
anything; without it, it prints what it would delete.`,
		Example: `  txpipe reset --yes
  DB_HOST=127.0.0.1 txpipe reset --db --yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			topics := topicsOf(cfg)
			groups := []string{cfg.KafkaGroupID, cfg.KafkaGroupID + ".sink"}
			files, err := resultFiles(cfg.Results)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if !yes {
				fmt.Fprintf(out, "reset would delete, on %s: topics %s; consumer groups %s; the producer positions of %s\n", cfg.KafkaBootstrap, strings.Join(stream.ResetTopics(topics), ", "), strings.Join(groups, ", "), topics.Input)
				fmt.Fprintf(out, "and in %s: %d files\n", cfg.Results, len(files))
				if withDB {
					fmt.Fprintf(out, "and every row of the tables of database %s on %s:%d\n", cfg.DBName, cfg.DBHost, cfg.DBPort)
				}
				return fmt.Errorf("nothing deleted: add --yes to reset")
			}
			ctx := cmd.Context()
			if err := kafkaReady(ctx, cfg); err != nil {
				return err
			}
			deleted, gone, err := stream.Reset(ctx, cfg.Brokers(), topics, groups)
			if err != nil {
				return err
			}
			for _, f := range files {
				if err := os.RemoveAll(f); err != nil {
					return fmt.Errorf("remove %s: %w", f, err)
				}
			}
			fmt.Fprintf(out, "reset: deleted topics [%s], groups [%s], %d result files\n", strings.Join(deleted, " "), strings.Join(gone, " "), len(files))
			if withDB {
				if !cfg.HasDB() {
					return fmt.Errorf("--db needs a database: set DB_HOST")
				}
				db, err := openDB(ctx, cfg)
				if err != nil {
					return err
				}
				defer db.Close()
				tables, err := db.Reset(ctx)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "reset: emptied %d tables of %s\n", len(tables), cfg.DBName)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&withDB, "db", false, "also empty every table of DB_NAME")
	cmd.Flags().BoolVar(&yes, "yes", false, "delete; without it, only say what would be deleted")
	return cmd
}

// resultFiles lists what reset deletes in the results directory: every
// entry but README.md.
func resultFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	var out []string
	for _, e := range ents {
		if e.Name() != "README.md" {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	slices.Sort(out)
	return out, nil
}
