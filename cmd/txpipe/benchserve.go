package main

import (
	"errors"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/txpipe/txpipe/bench"
)

func newBenchServe() *cobra.Command {
	o := bench.ServeOptions{Transactions: 1000000, Cards: 50000, Requests: 20000, Clients: 8}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Measure txpipe serve against the same SQL issued bare, and its memory",
		Long: `bench serve generates --transactions transactions over --cards cards, loads
their stream results into a database of its own (MySQL from DB_*, dropped
at the end), runs the batch over the first 80 %, and issues the same
--requests requests (a card's or a merchant's transactions, a page of 100)
from --clients concurrent loopback clients: first the statements of the
answers bare on the query side's connection pool, then through the API in
the same process, then against txpipe serve run as a child process with
MySQL and without a database (the results folder and an embedded broker),
whose peak RSS it reports. It prints a table and a summary line.`,
		Example: `  DB_HOST=127.0.0.1 txpipe bench serve
  DB_HOST=127.0.0.1 txpipe bench serve --transactions 100000 --cards 5000 --requests 5000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			if !cfg.HasDB() {
				return errors.New("bench serve needs a database: set DB_HOST")
			}
			o.MySQL, o.Out, o.Log = cfg.MySQL(), cmd.OutOrStdout(), slog.Default()
			o.Binary, _ = os.Executable()
			_, err = bench.RunServe(cmd.Context(), o)
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Transactions, "transactions", o.Transactions, "transactions to generate")
	f.IntVar(&o.Cards, "cards", o.Cards, "cards they are spread over")
	f.IntVar(&o.Requests, "requests", o.Requests, "requests of each phase")
	f.IntVar(&o.Clients, "clients", o.Clients, "concurrent clients")
	return cmd
}
