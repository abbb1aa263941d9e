package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/config"
	"github.com/txpipe/txpipe/dataset"
	"github.com/txpipe/txpipe/stream"
)

// stolenBound bounds publishing stolen-card changes (and storing them in
// MySQL): a broker or database that does not answer is an error, not a
// hang.
const stolenBound = time.Minute

func newReportStolen() *cobra.Command {
	var (
		at           string
		clear, force bool
	)
	cmd := &cobra.Command{
		Use:   "report-stolen CARD_ID...",
		Short: "Report cards stolen (or, with --clear, no longer stolen) to every running consumer",
		Long: `report-stolen publishes the stolen status of cards to the compacted topic
txpipe.stolen-cards (keyed by card id), which every running consumer
follows: a payment on a card reported stolen at or before its event time
is declined. --at says when the card was reported ("YYYY-MM-DD HH:MM:SS" in
UTC, or RFC 3339; default now; kept to the second); --clear withdraws the
report (a tombstone). With a database the stolen_cards table gets the same
change. A card must be in the master data (txpipe.cards) unless --force.`,
		Example: `  txpipe report-stolen 17
  txpipe report-stolen 17 23 --at "2025-04-02 13:05:00"
  txpipe report-stolen --clear 17`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			ids := make([]int64, 0, len(args))
			for _, a := range args {
				id, ok := txpipe.ParseID(strings.TrimSpace(a))
				if !ok {
					return fmt.Errorf("card id %q is not a positive integer", a)
				}
				ids = append(ids, id)
			}
			when := txpipe.ReportedAtOf(time.Now())
			if cmd.Flags().Changed("at") {
				if clear {
					return errors.New("--at and --clear do not go together: a cleared card has no report time")
				}
				t, ok := parseTime(at)
				if !ok {
					return fmt.Errorf("--at %q: not a time: use \"YYYY-MM-DD HH:MM:SS\" (UTC) or RFC 3339, e.g. 2025-04-02T15:05:00+02:00", at)
				}
				when = txpipe.ReportedAtOf(t)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), stolenBound)
			defer cancel()
			topics := topicsOf(cfg)
			opts, err := clientOpts(cfg)
			if err != nil {
				return err
			}
			if !force {
				known, err := stream.KnownCards(ctx, cfg.Brokers(), topics, ids, opts...)
				if err != nil {
					return fmt.Errorf("check the cards against the master data (--force skips it): %w", err)
				}
				for _, id := range ids {
					if !known[id] {
						return fmt.Errorf("card %d is not in the master data (%s on %s): publish it with txpipe load initial, or pass --force", id, topics.Cards, cfg.KafkaBootstrap)
					}
				}
			}
			changes := make([]txpipe.StolenCard, len(ids))
			for i, id := range ids {
				changes[i] = txpipe.StolenCard{CardID: id, ReportedAt: when, Cleared: clear}
			}
			where, err := applyStolen(ctx, cfg, topics, changes)
			if err != nil {
				return err
			}
			for _, s := range changes {
				if s.Cleared {
					fmt.Fprintf(cmd.OutOrStdout(), "report-stolen: card %d cleared (%s)\n", s.CardID, where)
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "report-stolen: card %d reported stolen at %s UTC (%s)\n", s.CardID, s.ReportedAt.Format(txpipe.TimestampLayout), where)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&at, "at", "", `when the card was reported: "YYYY-MM-DD HH:MM:SS" (UTC) or RFC 3339 (default now)`)
	f.BoolVar(&clear, "clear", false, "withdraw the report: the card is no longer stolen")
	f.BoolVar(&force, "force", false, "publish also for cards the master data does not hold")
	return cmd
}

// applyStolen publishes stolen-card changes and, with a database, applies
// them to the stolen_cards table; it says where they went.
func applyStolen(ctx context.Context, cfg *config.Config, topics stream.Topics, changes []txpipe.StolenCard) (string, error) {
	opts, err := clientOpts(cfg)
	if err != nil {
		return "", err
	}
	if err := stream.PublishStolen(ctx, cfg.Brokers(), topics, changes, opts...); err != nil {
		return "", err
	}
	where := topics.Stolen
	db, err := openDB(ctx, cfg)
	if err != nil {
		return "", fmt.Errorf("published to %s, but the stolen_cards table was not changed: %w", topics.Stolen, err)
	}
	if db != nil {
		defer db.Close()
		if err := db.ApplyStolen(ctx, changes); err != nil {
			return "", fmt.Errorf("published to %s, but the stolen_cards table was not changed (run the command again): %w", topics.Stolen, err)
		}
		where += " and the stolen_cards table"
	}
	return where, nil
}

// loadStolen publishes the stolen status of the cards a dataset's
// stolen_cards.csv lists (reported, or cleared for those not stolen) and,
// with a database, applies it to the stolen_cards table. Every card it
// lists must be in the dataset, with the same number. A dataset without
// the file is left alone.
func loadStolen(cmd *cobra.Command, cfg *config.Config, m *txpipe.Master) error {
	path := filepath.Join(cfg.Data, dataset.StolenCardsFile)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	cards, err := dataset.ReadCardsFile(path)
	if err != nil {
		return err
	}
	number := make(map[int64]string, len(m.Cards))
	for _, c := range m.Cards {
		number[c.ID] = c.Number
	}
	changes := make([]txpipe.StolenCard, len(cards))
	stolen := 0
	for i, c := range cards {
		num, ok := number[c.ID]
		if !ok {
			return fmt.Errorf("%s: card %d is not in %s", path, c.ID, dataset.CardsFile)
		}
		if n, err := dataset.NormalizeNumber(num); err == nil && n != c.Number {
			return fmt.Errorf("%s: card %d has number …%s there but …%s in %s: a cards file of another dataset?", path, c.ID, last4(c.Number), last4(n), dataset.CardsFile)
		}
		changes[i] = c.StolenCard()
		if c.Stolen {
			stolen++
		}
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), stolenBound)
	defer cancel()
	where, err := applyStolen(ctx, cfg, topicsOf(cfg), changes)
	if err != nil {
		return err
	}
	slog.Info("stolen cards published", "file", path, "stolen", stolen, "listed", len(cards))
	fmt.Fprintf(cmd.OutOrStdout(), "load initial: %d of the %d cards in %s stolen (%s)\n", stolen, len(cards), path, where)
	return nil
}

func last4(s string) string { return s[max(0, len(s)-4):] }
