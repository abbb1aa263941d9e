package csvfile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/batch/analytics"
)

// Events answers the query side's questions about alerts and latency from
// a results directory's alerts.csv and event_staging.csv. The files are
// read on each question: they are what consume merged last (when its
// input paused for a second, and when it stopped). A file that does not
// exist yet holds nothing.
type Events struct{ Dir string }

var _ txpipe.EventStore = Events{}

// Alerts returns a page of alerts.csv, by window end and position.
func (e Events) Alerts(ctx context.Context, q txpipe.AlertQuery) (txpipe.AlertPage, error) {
	path := filepath.Join(e.Dir, AlertsFile)
	var rows []txpipe.Alert
	n := 0
	err := scanFile(path, AlertColumns, func(vals []string) error {
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		a, err := parseAlert(vals)
		if err != nil {
			return fmt.Errorf("%s row %d: %w", path, n+1, err)
		}
		switch {
		case q.CardID != 0 && a.CardID != q.CardID, q.Type != "" && a.Type != q.Type,
			!q.From.IsZero() && a.To.Before(q.From), !q.To.IsZero() && a.To.After(q.To),
			q.After != nil && a.Key().Compare(*q.After) <= 0:
			return nil
		}
		rows = append(rows, a)
		return nil
	})
	if err != nil {
		return txpipe.AlertPage{}, err
	}
	slices.SortStableFunc(rows, func(a, b txpipe.Alert) int { return a.Key().Compare(b.Key()) })
	page := txpipe.AlertPage{Rows: rows}
	if len(rows) > q.Limit {
		page.Rows, page.More = rows[:q.Limit:q.Limit], true
	}
	return page, nil
}

// Latency counts the latencies of event_staging.csv's events that
// happened between from and to, per event type.
func (e Events) Latency(ctx context.Context, from, to time.Time) ([]txpipe.LatencyStats, error) {
	path := filepath.Join(e.Dir, StagingFile)
	hists := map[string]*analytics.LatencyHist{}
	n := 0
	err := scanFile(path, []string{"event_type", "event_date_origin", "event_dw_regdate"}, func(vals []string) error {
		if n++; n%65536 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		origin, err1 := time.Parse(AlertTimeLayout, vals[1])
		reg, err2 := time.Parse(RegisteredTimeLayout, vals[2])
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("%s row %d: %w", path, n+1, err)
		}
		if !from.IsZero() && origin.Before(from) || !to.IsZero() && origin.After(to) {
			return nil
		}
		h := hists[vals[0]]
		if h == nil {
			h = &analytics.LatencyHist{}
			hists[vals[0]] = h
		}
		h.Add(reg.Sub(origin).Microseconds())
		return nil
	})
	if err != nil {
		return nil, err
	}
	return analytics.Latencies(hists), nil
}

// scanFile streams the named columns of a CSV file; a missing file has no
// rows.
func scanFile(path string, cols []string, fn func(vals []string) error) error {
	var ferr error
	err := ReadColumns(path, cols, func(vals []string) {
		if ferr == nil {
			ferr = fn(vals)
		}
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return ferr
}

// parseAlert reads a row of AlertColumns.
func parseAlert(v []string) (txpipe.Alert, error) {
	var a txpipe.Alert
	var errs []error
	num := func(col int, bits int) int64 {
		x, err := strconv.ParseInt(v[col], 10, bits)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q: not an integer", AlertColumns[col], v[col]))
		}
		return x
	}
	tm := func(col int) time.Time {
		t, err := time.Parse(AlertTimeLayout, v[col])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q: not a time", AlertColumns[col], v[col]))
		}
		return t
	}
	a.Type, a.CardID = v[0], num(1, 64)
	a.From, a.To = tm(2), tm(3)
	a.Late = v[4] == "1"
	a.Count = num(5, 64)
	total, err := txpipe.ParseMoney(v[6])
	if err != nil {
		errs = append(errs, fmt.Errorf("total %q: %w", v[6], err))
	}
	a.Total = total
	a.First, a.Last, a.Origin = tm(7), tm(8), tm(9)
	a.JSON = v[10]
	a.Pos = txpipe.Position{Topic: v[11], Partition: int32(num(12, 32)), Offset: num(13, 64)}
	return a, errors.Join(errs...)
}
