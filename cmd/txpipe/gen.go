package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/txpipe/txpipe/dataset"
)

func newGen() *cobra.Command {
	def := dataset.DefaultOptions()
	o := def
	var out string
	cmd := &cobra.Command{
		Use:   "gen",
		Short: "Generate a deterministic dataset (customers, card types, cards, transactions)",
		Long: `gen writes customers.csv, credit_card_types.csv, cards.csv and transactions.csv
in the reference format. The same arguments always give the same bytes, and
memory does not grow with the number of transactions.`,
		Example: `  txpipe gen --customers 30 --cards 50 --transactions 400 --seed 22 --out dataset
  txpipe gen --customers 30000 --cards 50000 --transactions 1000000 --out /tmp/big
  txpipe gen --transactions 2000 --bad-rows 20 --out /tmp/dirty
  txpipe gen --customers 3000 --cards 5000 --transactions 200000 --days 90 --demographics --out /tmp/analytics`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			start := time.Now()
			st, err := dataset.Generate(cmd.Context(), out, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "gen: %d customers, %d cards, %d transactions (%d malformed) in %s in %.2f s\n",
				st.Customers, st.Cards, st.Transactions, sum(st.Bad), out, time.Since(start).Seconds())
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Customers, "customers", def.Customers, "number of customers")
	f.IntVar(&o.Cards, "cards", def.Cards, "number of cards (0: about 1.6 per customer)")
	f.IntVar(&o.Transactions, "transactions", def.Transactions, "number of transactions")
	f.Int64Var(&o.Seed, "seed", def.Seed, "random seed")
	f.IntVar(&o.Days, "days", def.Days, "days the transactions span (0: 4)")
	f.IntVar(&o.BadRows, "bad-rows", 0, "malformed transaction rows to add, of every kind")
	f.BoolVar(&o.Demographics, "demographics", false, "add the optional age and gender columns to customers.csv (for the analytics' age and gender segments)")
	f.StringVar(&out, "out", "dataset", "output directory")
	return cmd
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
