package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/dataset"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/stream"
)

func newSimulate() *cobra.Command {
	var (
		cardsFile string
		noBar     bool
		sc        stream.SimulateConfig
	)
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Publish an endless stream of payments for randomly chosen cards",
		Long: `simulate publishes payments to KAFKA_TOPIC at --rate per second, for cards
chosen at random from a cards file (--cards, as txpipe gen cards writes) or
from a dataset's cards.csv and customers.csv (--data, default TXPIPE_DATA),
until Ctrl-C or --count. Each is a transaction the validator judges —
keyed by card id, with the producer's headers (event_type PAYMENT_EVENT,
seq, source simulate:<n>) — plus event_date_origin, when the payment
happened (RFC 3339, milliseconds). Most are made near the holder's ZIP and
kept well inside the card's limit, so most are accepted; refunds of
earlier payments keep the balances in bounds. --late makes a share of them
late by --late-by (their event time lags); --jitter delays every one by up
to that much. Transaction ids are unique across runs (see the README). A
stop waits up to --stop-timeout for the broker's acknowledgements and
reports exactly what it acknowledged.`,
		Example: `  txpipe simulate --rate 100
  txpipe simulate --data /tmp/d --rate 5000 --late 0.01 --late-by 30s
  txpipe simulate --cards cards.csv --rate 50 --count 1000 --jitter 2s --seed 7`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			var from string
			if cardsFile != "" {
				if cmd.Flags().Changed("data") {
					return fmt.Errorf("--cards and --data: give one source of cards")
				}
				cards, err := dataset.ReadCardsFile(cardsFile)
				if err != nil {
					return err
				}
				for _, c := range cards {
					sc.Cards = append(sc.Cards, stream.SimCard{ID: c.ID, ZIP: c.HomeZIP})
				}
				from = cardsFile
			} else {
				m, err := csvfile.ReadMaster(cfg.Data)
				if err != nil {
					return err
				}
				zip := make(map[int64]string, len(m.Customers))
				for _, c := range m.Customers {
					zip[c.ID] = txpipe.ZIP(c.Address)
				}
				for _, c := range m.Cards {
					sc.Cards = append(sc.Cards, stream.SimCard{ID: c.ID, ZIP: zip[c.CustomerID], Limit: c.CreditLimit})
				}
				from = cfg.Data
			}
			opts, err := clientOpts(cfg)
			if err != nil {
				return err
			}
			sc.Brokers, sc.Topics, sc.ClientOpts = cfg.Brokers(), topicsOf(cfg), append(sc.ClientOpts, opts...)
			if !noBar && stream.IsTerminal(os.Stderr) {
				sc.Progress = os.Stderr
			} else {
				sc.StatusEvery = 10 * time.Second
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "simulate: %d cards of %s, %g payments/s to %s on %s; Ctrl-C stops\n", len(sc.Cards), from, sc.Rate, cfg.KafkaTopic, cfg.KafkaBootstrap)
			st, err := stream.Simulate(cmd.Context(), sc)
			fmt.Fprintln(cmd.OutOrStdout(), "simulate:", st)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&cardsFile, "cards", "", "cards file to pay with (default: the dataset's cards, --data)")
	f.Float64Var(&sc.Rate, "rate", 100, "payments per second")
	f.Int64Var(&sc.Count, "count", 0, "stop after this many payments (0: until Ctrl-C)")
	f.Float64Var(&sc.Late, "late", 0, "share of late payments (0 to 1)")
	f.DurationVar(&sc.LateBy, "late-by", 30*time.Second, "how far a late payment's event time lags")
	f.DurationVar(&sc.Jitter, "jitter", 0, "each payment happened up to this long before it is sent")
	f.Int64Var(&sc.Seed, "seed", 0, "random seed of the cards, amounts and places chosen (0: a new one each run)")
	f.DurationVar(&sc.StopTimeout, "stop-timeout", 10*time.Second, "how long a stop waits for the broker's acknowledgements")
	f.BoolVar(&noBar, "no-progress", false, "no progress line (a status line every 10 s is logged instead)")
	return cmd
}
