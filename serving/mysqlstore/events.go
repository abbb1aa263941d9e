package mysqlstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/batch/analytics"
)

var _ txpipe.EventStore = (*Queries)(nil)

// Alerts returns a page of the alerts table, by window end and position.
func (q *Queries) Alerts(ctx context.Context, aq txpipe.AlertQuery) (txpipe.AlertPage, error) {
	var where []string
	var args []any
	if aq.CardID != 0 {
		where, args = append(where, "card_id = ?"), append(args, aq.CardID)
	}
	if aq.Type != "" {
		where, args = append(where, "alert_type = ?"), append(args, aq.Type)
	}
	if !aq.From.IsZero() {
		where, args = append(where, "window_to >= ?"), append(args, aq.From.UTC().Format(msLayout))
	}
	if !aq.To.IsZero() {
		where, args = append(where, "window_to <= ?"), append(args, aq.To.UTC().Format(msLayout))
	}
	if a := aq.After; a != nil {
		where = append(where, "(window_to, kafka_topic, kafka_partition, kafka_offset) > (?, ?, ?, ?)")
		args = append(args, a.To.UTC().Format(msLayout), a.Pos.Topic, a.Pos.Partition, a.Pos.Offset)
	}
	query := "SELECT kafka_topic, kafka_partition, kafka_offset, alert_type, card_id, window_from, window_to, late, payments, total, " +
		"first_seen, last_seen, event_date_origin, alert_json FROM alerts"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY window_to, kafka_topic, kafka_partition, kafka_offset LIMIT ?"
	args = append(args, aq.Limit+1)
	var page txpipe.AlertPage
	err := q.read(ctx, "read alerts", func(ctx context.Context) error {
		page = txpipe.AlertPage{}
		rows, err := q.db.QueryContext(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("read alerts: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var a txpipe.Alert
			var total string
			if err := rows.Scan(&a.Pos.Topic, &a.Pos.Partition, &a.Pos.Offset, &a.Type, &a.CardID, &a.From, &a.To, &a.Late, &a.Count, &total,
				&a.First, &a.Last, &a.Origin, &a.JSON); err != nil {
				return fmt.Errorf("read alerts: %w", err)
			}
			if a.Total, err = txpipe.ParseMoney(total); err != nil {
				return fmt.Errorf("read alerts at %s/%d/%d: total: %w", a.Pos.Topic, a.Pos.Partition, a.Pos.Offset, err)
			}
			page.Rows = append(page.Rows, a)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read alerts: %w", err)
		}
		if len(page.Rows) > aq.Limit {
			page.Rows, page.More = page.Rows[:aq.Limit], true
		}
		return nil
	})
	return page, err
}

// Latency counts the latencies of the staged events that happened between
// from and to, per event type. The database sends one number per event
// (the difference in microseconds) and the histogram is counted here:
// MySQL 8 has no percentile function.
func (q *Queries) Latency(ctx context.Context, from, to time.Time) ([]txpipe.LatencyStats, error) {
	var where []string
	var args []any
	if !from.IsZero() {
		where, args = append(where, "event_date_origin >= ?"), append(args, from.UTC().Format(msLayout))
	}
	if !to.IsZero() {
		where, args = append(where, "event_date_origin <= ?"), append(args, to.UTC().Format(msLayout))
	}
	query := "SELECT event_type, TIMESTAMPDIFF(MICROSECOND, event_date_origin, event_dw_regdate) FROM event_staging"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	var out []txpipe.LatencyStats
	err := q.read(ctx, "read event latencies", func(ctx context.Context) error {
		hists := map[string]*analytics.LatencyHist{}
		rows, err := q.db.QueryContext(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("read event_staging: %w", err)
		}
		defer rows.Close()
		for n := 0; rows.Next(); n++ {
			if n%65536 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			var typ string
			var us int64
			if err := rows.Scan(&typ, &us); err != nil {
				return fmt.Errorf("read event_staging: %w", err)
			}
			h := hists[typ]
			if h == nil {
				h = &analytics.LatencyHist{}
				hists[typ] = h
			}
			h.Add(us)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read event_staging: %w", err)
		}
		out = analytics.Latencies(hists)
		return nil
	})
	return out, err
}
