package batch

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"time"

	"github.com/txpipe/txpipe/serving/csvfile"
)

// Run statuses in batch_runs.
const (
	statusRunning = "running"
	statusOK      = "ok"
	statusFailed  = "failed"
)

// RunsFile is the runs record of CSV mode, in the results directory.
const RunsFile = "batch_runs.csv"

// RunColumns are the columns of batch_runs (table and CSV file).
var RunColumns = []string{"run_id", "started_at", "finished_at", "rows_read", "cutoff", "status", "error", "cutoff_offsets"}

const runTimeLayout = "2006-01-02 15:04:05.000000"

type runRecord struct {
	ID         int64
	StartedAt  time.Time
	FinishedAt time.Time
	Rows       int64
	Cutoff     string
	Status     string
	Error      string
	Topic      string  // the validated topic of Cutoffs
	Cutoffs    cutoffs // per partition: what the run's views cover
}

// runs records the start and the end of every run.
type runs interface {
	start(ctx context.Context, at time.Time) (int64, error)
	finish(ctx context.Context, r runRecord) error
}

// csvRuns records runs in results/batch_runs.csv, a line per run; the file
// is rewritten atomically each time.
type csvRuns struct {
	path    string
	started time.Time
}

func (r *csvRuns) read() ([][]string, error) {
	f, err := os.Open(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", r.path, err)
	}
	defer f.Close()
	cr := csv.NewReader(f)
	cr.FieldsPerRecord = -1
	recs, err := cr.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", r.path, err)
	}
	if len(recs) == 0 {
		return nil, nil
	}
	// Files written before cutoff_offsets have one column less.
	for i, rec := range recs {
		if len(rec) == len(RunColumns)-1 {
			recs[i] = append(rec, "")
		} else if len(rec) != len(RunColumns) {
			return nil, fmt.Errorf("read %s:%d: %d fields, want %d", r.path, i+1, len(rec), len(RunColumns))
		}
	}
	for i, rec := range recs[1:] {
		if _, err := strconv.ParseInt(rec[0], 10, 64); err != nil {
			return nil, fmt.Errorf("read %s:%d: run_id %q is not an integer", r.path, i+2, rec[0])
		}
	}
	return recs[1:], nil
}

func (r *csvRuns) write(recs [][]string) error {
	w, err := csvfile.Create(r.path, RunColumns)
	if err != nil {
		return err
	}
	for _, rec := range recs {
		if err := w.Write(rec); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Commit()
}

func (r *csvRuns) start(ctx context.Context, at time.Time) (int64, error) {
	recs, err := r.read()
	if err != nil {
		return 0, err
	}
	var id int64
	for _, rec := range recs {
		n, _ := strconv.ParseInt(rec[0], 10, 64)
		id = max(id, n)
	}
	id++
	r.started = at
	recs = append(recs, runRecord{ID: id, StartedAt: at, Status: statusRunning}.fields())
	if err := r.write(recs); err != nil {
		return 0, fmt.Errorf("record the run: %w", err)
	}
	return id, nil
}

func (r *csvRuns) finish(ctx context.Context, run runRecord) error {
	recs, err := r.read()
	if err != nil {
		return err
	}
	run.StartedAt = r.started
	id := strconv.FormatInt(run.ID, 10)
	found := false
	for i, rec := range recs {
		if rec[0] == id {
			recs[i], found = run.fields(), true
		}
	}
	if !found {
		recs = append(recs, run.fields())
	}
	if err := r.write(recs); err != nil {
		return fmt.Errorf("record the end of run %d: %w", run.ID, err)
	}
	return nil
}

func (r runRecord) fields() []string {
	finished := ""
	if !r.FinishedAt.IsZero() {
		finished = r.FinishedAt.UTC().Format(runTimeLayout)
	}
	offsets := ""
	if len(r.Cutoffs) > 0 {
		offsets = r.Topic + " " + r.Cutoffs.String()
	}
	return []string{strconv.FormatInt(r.ID, 10), r.StartedAt.UTC().Format(runTimeLayout), finished,
		strconv.FormatInt(r.Rows, 10), r.Cutoff, r.Status, r.Error, offsets}
}
