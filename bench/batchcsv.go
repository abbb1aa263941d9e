package bench

import (
	"bufio"
	"cmp"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/batch"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/stream"
)

// csvRounds is how many times the CSV batch stage measures the raw read
// and write, the batch without analytics and the batch with them, in
// turn; the fastest of each counts.
const csvRounds = 3

// viewFiles are the batch's three view files: the output of the raw write.
var viewFiles = []string{csvfile.BatchFile, csvfile.CardsUpdatedFile, csvfile.CustomersUpdFile}

// batchCSVStage measures the batch in CSV mode (`txpipe batch` without a
// database) against a raw read of the same stream_transactions.csv
// (encoding/csv, every record split into fields, nothing converted) plus
// a raw write of the same output bytes (the three view files, each
// written to a temporary file, synced and renamed, as the batch commits
// them). The batch runs without and with the analytics views.
func (b *bencher) batchCSVStage(ctx context.Context, rep *Report) error {
	dir := filepath.Join(b.tmp, "batch-csv")
	results := filepath.Join(dir, "results")
	if err := os.MkdirAll(results, 0o755); err != nil {
		return err
	}
	streamFile := filepath.Join(results, csvfile.StreamFile)
	rows, err := b.writeStreamCSV(ctx, streamFile)
	if err != nil {
		return err
	}
	// The encoded input (millions of pointers) is of no further use: the
	// garbage collector would mark it on every cycle of the batch and the
	// raw read, as it does not in `txpipe batch`.
	b.enc = encoded{}
	runtime.GC()
	run := func(analytics bool) (timing, error) {
		m := startMeasure()
		sum, err := batch.Run(ctx, batch.Options{DataDir: b.data, ResultsDir: results, Analytics: analytics, Log: b.log})
		m.stop()
		if err != nil {
			return m, err
		}
		if sum.Transactions != rows {
			return m, fmt.Errorf("the batch read %d rows of %s, want %d", sum.Transactions, streamFile, rows)
		}
		return m, nil
	}
	// A first run warms the page cache and gives the output bytes.
	if _, err := run(false); err != nil {
		return err
	}
	views := make([][]byte, len(viewFiles))
	var outBytes int
	for i, f := range viewFiles {
		if views[i], err = os.ReadFile(filepath.Join(results, f)); err != nil {
			return err
		}
		outBytes += len(views[i])
	}
	inInfo, err := os.Stat(streamFile)
	if err != nil {
		return err
	}
	b.log.Info("bench: batch-csv", "rows", rows, "read_bytes", inInfo.Size(), "write_bytes", outBytes)

	rawDir := filepath.Join(dir, "raw")
	if err := os.MkdirAll(rawDir, 0o755); err != nil {
		return err
	}
	raw, plain, withAn := timing{wall: math.MaxInt64}, timing{wall: math.MaxInt64}, timing{wall: math.MaxInt64}
	for round := range csvRounds {
		if err := ctx.Err(); err != nil {
			return err
		}
		read := startMeasure()
		n, err := rawCSVRead(streamFile)
		read.stop()
		if err != nil {
			return fmt.Errorf("raw read: %w", err)
		}
		if n != rows {
			return fmt.Errorf("raw read: %d records in %s, want %d", n, streamFile, rows)
		}
		write := startMeasure()
		err = rawWrite(rawDir, views)
		write.stop()
		if err != nil {
			return fmt.Errorf("raw write: %w", err)
		}
		p, err := run(false)
		if err != nil {
			return err
		}
		a, err := run(true)
		if err != nil {
			return err
		}
		b.log.Info("bench: batch-csv round", "round", round+1, "raw_read_s", read.wall.Seconds(), "raw_write_s", write.wall.Seconds(),
			"batch_s", p.wall.Seconds(), "batch_analytics_s", a.wall.Seconds(),
			"raw_cpu_s", read.cpu+write.cpu, "batch_cpu_s", p.cpu, "batch_analytics_cpu_s", a.cpu)
		if r := (timing{wall: read.wall + write.wall, cpu: read.cpu + write.cpu}); r.wall < raw.wall {
			raw = r
		}
		if p.wall < plain.wall {
			plain = p
		}
		if a.wall < withAn.wall {
			withAn = a
		}
	}
	rep.BatchCSV.finish(rows, raw.wall, rows, plain.wall)
	rep.BatchCSVAnalytics.finish(rows, raw.wall, rows, withAn.wall)
	rep.BatchCSV.RawCPU, rep.BatchCSV.CPU = raw.cpu, plain.cpu
	rep.BatchCSVAnalytics.RawCPU, rep.BatchCSVAnalytics.CPU = raw.cpu, withAn.cpu
	b.logStage(rep.BatchCSV)
	b.logStage(rep.BatchCSVAnalytics)

	// Profiles of one more run each, outside the timing ones.
	for _, analytics := range []bool{false, true} {
		if b.o.Profile == "" {
			break
		}
		name := "batch-csv"
		if analytics {
			name += "-analytics"
		}
		stop, err := b.startProfile(name, rep)
		if err != nil {
			return err
		}
		_, err = run(analytics)
		stop()
		if err != nil {
			return err
		}
	}
	return b.batchCSVChild(ctx, rep, results, rows)
}

// timing is the wall-clock and CPU time (of the whole process) of a
// measured run.
type timing struct {
	wall  time.Duration
	cpu   float64 // seconds
	begin time.Time
}

func startMeasure() timing { return timing{begin: time.Now(), cpu: -cpuSeconds()} }

func (m *timing) stop() {
	m.wall = time.Since(m.begin)
	m.cpu += cpuSeconds()
}

// writeStreamCSV writes the validate stage's results (the validated
// topic) to path as the stream sink's CSV view holds them: in event
// order (timestamp, input order, then partition and offset), with their
// positions. It returns the rows written.
func (b *bencher) writeStreamCSV(ctx context.Context, path string) (int64, error) {
	topic, n := b.val.topics.Validated, b.val.processed
	cl, err := b.client(
		kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	results := make([]txpipe.Result, 0, n)
	for int64(len(results)) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("read %s: %d of %d records: %w", topic, len(results), n, err)
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("read %s/%d: %w", t, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if ferr != nil {
				return
			}
			res, err := stream.DecodeResult(r.Value)
			if err != nil {
				ferr = fmt.Errorf("%s/%d/%d: %w", r.Topic, r.Partition, r.Offset, err)
				return
			}
			res.Pos = txpipe.Position{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
			results = append(results, res)
		})
		if ferr != nil {
			return 0, ferr
		}
	}
	slices.SortFunc(results, func(x, y txpipe.Result) int {
		return cmp.Or(x.Timestamp.Compare(y.Timestamp), cmp.Compare(x.Seq, y.Seq),
			cmp.Compare(x.Pos.Partition, y.Pos.Partition), cmp.Compare(x.Pos.Offset, y.Pos.Offset))
	})
	w, err := csvfile.Create(path, csvfile.StreamColumns)
	if err != nil {
		return 0, err
	}
	var rec []string
	for _, r := range results {
		rec = csvfile.AppendStreamResult(rec[:0], r)
		if err := w.Write(rec); err != nil {
			w.Abort()
			return 0, err
		}
	}
	if err := w.Commit(); err != nil {
		return 0, err
	}
	return int64(len(results)), nil
}

// rawCSVRead reads a CSV file with encoding/csv (records reused), every
// record split into its fields and nothing else, and returns the records
// after the header.
func rawCSVRead(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReaderSize(f, 1<<20))
	r.ReuseRecord = true
	var n int64
	for {
		_, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, err
		}
		n++
	}
	return n - 1, nil
}

// rawWrite writes each of files to a temporary file in dir (256 KiB at a
// time), syncs it and renames it into place, one after the other.
func rawWrite(dir string, files [][]byte) error {
	for i, data := range files {
		f, err := os.CreateTemp(dir, ".raw.*.tmp")
		if err != nil {
			return err
		}
		for p := data; len(p) > 0; {
			k := min(len(p), 256<<10)
			if _, err := f.Write(p[:k]); err != nil {
				f.Close()
				return err
			}
			p = p[k:]
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(f.Name(), filepath.Join(dir, strconv.Itoa(i)+".csv"))
		}
		if err != nil {
			os.Remove(f.Name())
			return err
		}
	}
	return nil
}

// batchCSVChild runs `txpipe batch --no-publish` in CSV mode on the
// stage's files, without and with analytics, and records its peak RSS.
func (b *bencher) batchCSVChild(ctx context.Context, rep *Report, results string, rows int64) error {
	if b.o.Binary == "" {
		return nil
	}
	env := map[string]string{"TXPIPE_DATA": b.data, "TXPIPE_RESULTS": results}
	for _, analytics := range []bool{false, true} {
		out, rss, _, err := b.child(ctx, env, "batch", "--no-publish", "--analytics="+strconv.FormatBool(analytics))
		if err != nil {
			return err
		}
		if m := batchRows.FindStringSubmatch(out); m == nil {
			return fmt.Errorf("txpipe batch printed no summary: %q", tail(out, 500))
		} else if n, _ := strconv.ParseInt(m[1], 10, 64); n != rows {
			return fmt.Errorf("txpipe batch read %d rows, want %d", n, rows)
		}
		if analytics {
			rep.BatchCSVAnalytics.RSSMiB = rss
		} else {
			rep.BatchCSV.RSSMiB = rss
		}
	}
	return nil
}
