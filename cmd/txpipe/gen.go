package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/dataset"
	"github.com/txpipe/txpipe/serving/csvfile"
)

func newGen() *cobra.Command {
	def := dataset.DefaultOptions()
	o := def
	var (
		out   string
		force bool
	)
	cmd := &cobra.Command{
		Use:   "gen",
		Short: "Generate a deterministic dataset (customers, card types, cards, transactions)",
		Long: `gen writes customers.csv, credit_card_types.csv, cards.csv and transactions.csv
in the reference format. The same arguments always give the same bytes, and
memory does not grow with the number of transactions. Without --out it
refuses to overwrite the dataset already in dataset/ (--force does).`,
		Example: `  txpipe gen --customers 30 --cards 50 --transactions 400 --seed 22 --out dataset
  txpipe gen --customers 30000 --cards 50000 --transactions 1000000 --out /tmp/big
  txpipe gen --transactions 2000 --bad-rows 20 --out /tmp/dirty
  txpipe gen --customers 3000 --cards 5000 --transactions 200000 --days 90 --demographics --out /tmp/analytics`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("out") && !force {
				if name, ok := holdsDataset(out); ok {
					return fmt.Errorf("%s already holds a dataset (%s): name a directory with --out DIR, or pass --force to overwrite it", out, name)
				}
			}
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
	f.BoolVar(&force, "force", false, "overwrite the dataset in dataset/ when --out is not given")
	cmd.AddCommand(newGenCards())
	return cmd
}

// holdsDataset reports whether dir holds a file of a dataset (and names it).
func holdsDataset(dir string) (string, bool) {
	for _, name := range dataset.Files {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return name, true
		}
	}
	return "", false
}

func newGenCards() *cobra.Command {
	def := dataset.DefaultCardsOptions()
	o := def
	var (
		out, shares, from string
		force             bool
	)
	cmd := &cobra.Command{
		Use:   "cards",
		Short: "Generate test cards (Luhn-valid numbers by provider), a share of them stolen",
		Long: `cards writes a cards file: card_id, card_number, provider, stolen,
reported_at, home_zip. New cards (--count) get Luhn-valid numbers — Visa 4
with 16 or 13 digits, Mastercard 51-55 or 2221-2720 with 16, Amex 34 or 37
with 15 — each provider exactly its share (--providers), and a home ZIP.
With --data DIR the cards of that dataset are marked instead (their ids,
numbers and their customers' ZIPs), by default into DIR/stolen_cards.csv,
which txpipe load initial publishes. Exactly round(n x --stolen) cards are
stolen, each with a report time in [--reported-from, +--reported-span).
The same arguments give the same file; an existing file is kept unless
--force.`,
		Example: `  txpipe gen cards --count 1000 --stolen 0.1 --seed 7 --out cards.csv
  txpipe gen cards --data /tmp/d --stolen 0.1          # writes /tmp/d/stolen_cards.csv
  txpipe gen cards --count 50000 --providers visa=60,mastercard=30,amex=10 --visa13 0 --out big.csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if cmd.Flags().Changed("providers") {
				if o.Shares, err = dataset.ParseShares(shares); err != nil {
					return fmt.Errorf("--providers: %w", err)
				}
			}
			if cmd.Flags().Changed("reported-from") {
				t, ok := parseTime(from)
				if !ok {
					return fmt.Errorf("--reported-from %q: not a time: use \"YYYY-MM-DD HH:MM:SS\" (UTC) or RFC 3339", from)
				}
				o.ReportedFrom = t
			}
			var cards []dataset.TestCard
			what := ""
			if cmd.Flags().Changed("data") {
				for _, f := range []string{"count", "providers", "visa13"} {
					if cmd.Flags().Changed(f) {
						return fmt.Errorf("--%s makes new cards: with --data the cards are the dataset's", f)
					}
				}
				dir, _ := cmd.Flags().GetString("data")
				if !cmd.Flags().Changed("out") {
					out = filepath.Join(dir, dataset.StolenCardsFile)
				}
				if cards, err = datasetCards(dir); err != nil {
					return err
				}
				if cards, err = dataset.MarkCards(cards, o); err != nil {
					return err
				}
				what = "cards of " + dir
			} else {
				if cards, err = dataset.GenerateCards(o); err != nil {
					return err
				}
				what = "new cards"
			}
			if err := dataset.WriteCardsFile(out, cards, force); err != nil {
				if errors.Is(err, fs.ErrExist) {
					return fmt.Errorf("%w: pass --force to overwrite it", err)
				}
				return err
			}
			stolen := 0
			for _, c := range cards {
				if c.Stolen {
					stolen++
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "gen cards: %d %s, %d stolen, in %s\n", len(cards), what, stolen, out)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Count, "count", def.Count, "number of new cards")
	f.Float64Var(&o.Stolen, "stolen", def.Stolen, "share of the cards reported stolen (0 to 1)")
	f.Int64Var(&o.Seed, "seed", def.Seed, "random seed")
	f.StringVar(&shares, "providers", "visa=50,mastercard=35,amex=15", "weights of the providers of new cards")
	f.Float64Var(&o.Visa13, "visa13", def.Visa13, "share of new Visa cards with 13 digits instead of 16")
	f.StringVar(&from, "reported-from", def.ReportedFrom.Format(txpipe.TimestampLayout), "earliest report time of a stolen card (UTC)")
	f.DurationVar(&o.ReportedSpan, "reported-span", def.ReportedSpan, "report times are spread over this span from --reported-from")
	f.StringVar(&out, "out", dataset.StolenCardsFile, "the cards file to write (with --data: DIR/"+dataset.StolenCardsFile+")")
	f.BoolVar(&force, "force", false, "overwrite an existing cards file")
	return cmd
}

// datasetCards reads the cards of a dataset directory with their
// customers' ZIPs.
func datasetCards(dir string) ([]dataset.TestCard, error) {
	m, err := csvfile.ReadMaster(dir)
	if err != nil {
		return nil, err
	}
	zip := make(map[int64]string, len(m.Customers))
	for _, c := range m.Customers {
		zip[c.ID] = txpipe.ZIP(c.Address)
	}
	cards := make([]dataset.TestCard, len(m.Cards))
	for i, c := range m.Cards {
		cards[i] = dataset.TestCard{ID: c.ID, Number: c.Number, HomeZIP: zip[c.CustomerID]}
	}
	return cards, nil
}

// parseTime reads a time given on the command line: "YYYY-MM-DD HH:MM:SS"
// (UTC) or RFC 3339.
func parseTime(s string) (time.Time, bool) {
	if t, ok := txpipe.ParseTimestamp(s); ok {
		return t, true
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t.UTC(), err == nil
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
