package mysqlstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/txpipe/txpipe"
)

// stolenBatch is how many cards one statement of ApplyStolen carries.
const stolenBatch = 500

// ApplyStolen applies stolen-card reports and clearings to the
// stolen_cards table, in one transaction: a reported card is inserted or
// gets its new report time, a cleared card's row is deleted. Later
// entries for a card win over earlier ones.
func (db *DB) ApplyStolen(ctx context.Context, cards []txpipe.StolenCard) error {
	last := make(map[int64]txpipe.StolenCard, len(cards))
	var order []int64
	for _, s := range cards {
		if _, seen := last[s.CardID]; !seen {
			order = append(order, s.CardID)
		}
		last[s.CardID] = s
	}
	var reported []txpipe.StolenCard
	var cleared []int64
	for _, id := range order {
		if s := last[id]; s.Cleared {
			cleared = append(cleared, id)
		} else {
			reported = append(reported, s)
		}
	}
	tx, err := db.SQL.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("stolen_cards: begin: %w", err)
	}
	defer tx.Rollback()
	for len(cleared) > 0 {
		n := min(len(cleared), stolenBatch)
		args := make([]any, n)
		for i, id := range cleared[:n] {
			args[i] = id
		}
		q := "DELETE FROM stolen_cards WHERE card_id IN (" + strings.TrimSuffix(strings.Repeat("?,", n), ",") + ")"
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("stolen_cards: clear %d cards: %w", n, err)
		}
		cleared = cleared[n:]
	}
	for len(reported) > 0 {
		n := min(len(reported), stolenBatch)
		args := make([]any, 0, 2*n)
		for _, s := range reported[:n] {
			args = append(args, s.CardID, txpipe.ReportedAtOf(s.ReportedAt).Format(txpipe.TimestampLayout))
		}
		q := "INSERT INTO stolen_cards (card_id, reported_at) VALUES " +
			strings.TrimSuffix(strings.Repeat("(?, ?),", n), ",") +
			" ON DUPLICATE KEY UPDATE reported_at = VALUES(reported_at)"
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("stolen_cards: report %d cards: %w", n, err)
		}
		reported = reported[n:]
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("stolen_cards: commit: %w", err)
	}
	return nil
}

// StolenCards reads the stolen_cards table: the cards reported stolen, by id.
func (db *DB) StolenCards(ctx context.Context) (map[int64]txpipe.StolenCard, error) {
	rows, err := db.SQL.QueryContext(ctx, "SELECT card_id, DATE_FORMAT(reported_at, '%Y-%m-%d %H:%i:%s') FROM stolen_cards")
	if err != nil {
		return nil, fmt.Errorf("stolen_cards: %w", err)
	}
	defer rows.Close()
	out := map[int64]txpipe.StolenCard{}
	for rows.Next() {
		var id int64
		var at string
		if err := rows.Scan(&id, &at); err != nil {
			return nil, fmt.Errorf("stolen_cards: %w", err)
		}
		t, ok := txpipe.ParseTimestamp(at)
		if !ok {
			return nil, fmt.Errorf("stolen_cards: card %d: reported_at %q", id, at)
		}
		out[id] = txpipe.StolenCard{CardID: id, ReportedAt: t}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("stolen_cards: %w", err)
	}
	return out, nil
}
