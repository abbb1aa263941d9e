package stream_test

// Failure tests of the speed layer against real brokers (the embedded
// kfake on loopback, and Apache Kafka: see internal/kafkatest) and, where a
// database is involved, the real MariaDB: the database going away mid-run, the broker restarting
// mid-run, and a third-party Kafka client (kcat) reading txpipe's topics.

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/dataset"
	"github.com/txpipe/txpipe/internal/kafkatest"
	"github.com/txpipe/txpipe/internal/mysqltest"
	"github.com/txpipe/txpipe/internal/reftest"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/serving/mysqlstore"
	"github.com/txpipe/txpipe/stream"
)

// ---- helpers ---------------------------------------------------------------

// failName is a topic or group name no other test (or earlier run on a
// shared broker) uses.
func failName(prefix string) string { return kafkatest.Name(prefix) }

// failDataset writes a generated dataset with injected malformed rows.
func failDataset(t *testing.T, transactions, bad int) string {
	t.Helper()
	dir := t.TempDir()
	_, err := dataset.Generate(context.Background(), dir, dataset.Options{
		Customers: 300, Cards: 500, Transactions: transactions, Seed: 11, BadRows: bad,
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// failLog collects a run's log lines; safe for concurrent writers.
type failLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *failLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *failLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lines returns the lines holding any of the words.
func (s *failLog) lines(words ...string) string {
	var out []string
	for _, line := range strings.Split(s.String(), "\n") {
		for _, w := range words {
			if strings.Contains(line, w) {
				out = append(out, line)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

func (s *failLog) tail(n int) string {
	str := s.String()
	if len(str) > n {
		str = "…" + str[len(str)-n:]
	}
	return str
}

// summary counts the warnings and errors of a run's log by message, and
// the aborted transactions.
func (s *failLog) summary() string {
	counts := map[string]int{}
	for _, line := range strings.Split(s.String(), "\n") {
		level := ""
		for _, l := range []string{"level=WARN", "level=ERROR"} {
			if strings.Contains(line, l) {
				level = l[len("level="):]
			}
		}
		if strings.Contains(line, "transaction aborted") {
			level = "INFO"
		}
		if level == "" {
			continue
		}
		msg := line
		if i := strings.Index(line, "msg="); i >= 0 {
			msg = line[i+len("msg="):]
			if strings.HasPrefix(msg, `"`) {
				if j := strings.Index(msg[1:], `"`); j >= 0 {
					msg = msg[1 : j+1]
				}
			} else if j := strings.IndexByte(msg, ' '); j >= 0 {
				msg = msg[:j]
			}
		}
		counts[level+" "+msg]++
	}
	var out []string
	for k, n := range counts {
		out = append(out, fmt.Sprintf("%dx %s", n, k))
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}

// failReference consumes a topic in-process with nothing going wrong,
// until every produced record is written; it returns the results
// directory.
func failReference(t *testing.T, brokers []string, topics stream.Topics, st stream.ProduceStats) string {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	want := st.Records + st.Rejected
	cs, err := stream.Consume(ctx, stream.ConsumeConfig{
		Brokers: brokers, Topics: topics, Group: failName("ref"), Instance: "ref", ResultsDir: dir,
		Log:  slog.New(slog.DiscardHandler),
		Done: func(s stream.ConsumeStats) bool { return s.Written >= want },
	})
	if err != nil {
		t.Fatalf("uninterrupted run: %v", err)
	}
	if cs.Written < want {
		t.Fatalf("uninterrupted run: %d of %d records written in 3 minutes", cs.Written, want)
	}
	return dir
}

// failSameFile fails unless two stream views hold the same rows (Kafka
// offsets aside), naming the first that differs.
func failSameFile(t *testing.T, got, want string) {
	t.Helper()
	reftest.SameRows(t, got, want)
}

// failCSVTotals counts the rows of a stream_transactions file and sums their
// pending balances (in cents).
func failCSVTotals(t *testing.T, path string) (rows int64, sum txpipe.Money) {
	t.Helper()
	err := csvfile.ReadResults(path, func(r txpipe.Result, _ int) error {
		rows++
		sum += r.PendingBalance
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rows, sum
}

// failCSVRows counts the data rows of a CSV file with a header.
func failCSVRows(t *testing.T, path, col string) int64 {
	t.Helper()
	var n int64
	if err := csvfile.ReadColumns(path, []string{col}, func([]string) { n++ }); err != nil {
		t.Fatal(err)
	}
	return n
}

// failCommitted sums the offsets a consumer group committed on a topic.
func failCommitted(t *testing.T, brokers []string, group, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch offsets of group %s: %v", group, err)
	}
	var sum int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil && o.At > 0 {
			sum += o.At
		}
	})
	return sum
}

// failDiffStates lists the cards whose states differ.
func failDiffStates(got, want map[string]string) string {
	var diffs []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("card %s: missing, want %s", k, w))
		} else if g != w {
			diffs = append(diffs, fmt.Sprintf("card %s: %s, want %s", k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("card %s: %s, not in the uninterrupted run", k, g))
		}
	}
	slices.Sort(diffs)
	if len(diffs) > 10 {
		diffs = append(diffs[:10], fmt.Sprintf("… %d differences in all", len(diffs)))
	}
	return strings.Join(diffs, "\n")
}

// failProxy forwards loopback connections to a target. down closes the
// listener and every proxied connection (the database "goes away"); up
// listens again on the same address.
type failProxy struct {
	target, addr string

	mu    sync.Mutex
	ln    net.Listener // nil while down
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startFailProxy(t *testing.T, target string) *failProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &failProxy{target: target, addr: ln.Addr().String(), conns: map[net.Conn]struct{}{}}
	p.serve(ln)
	t.Cleanup(func() {
		p.down()
		p.wg.Wait()
	})
	return p
}

func (p *failProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.handle(c)
			}()
		}
	}()
}

func (p *failProxy) handle(c net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // went down while dialing
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

func (p *failProxy) down() {
	p.mu.Lock()
	ln := p.ln
	p.ln = nil
	conns := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	for _, c := range conns {
		c.Close()
	}
}

func (p *failProxy) up(t *testing.T) {
	t.Helper()
	var err error
	for range 50 {
		var ln net.Listener
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			p.serve(ln)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("proxy: listen again on %s: %v", p.addr, err)
}

// failRuns starts a test's consume runs in the background. Their context
// ends with the test, before the broker and the database go, and the
// cleanup waits (a bounded time) for them to return.
type failRuns struct {
	ctx context.Context
	wg  sync.WaitGroup
}

func newFailRuns(t *testing.T) *failRuns {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	r := &failRuns{ctx: ctx}
	t.Cleanup(func() {
		cancel()
		stopped := make(chan struct{})
		go func() { r.wg.Wait(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(20 * time.Second):
			t.Log("a consume run did not stop within 20 s of the test's end")
		}
	})
	return r
}

func (r *failRuns) goRun(fn func(ctx context.Context)) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		fn(r.ctx)
	}()
}

// failWait polls cond every 20 ms until it holds or the timeout passes.
func failWait(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

// ---- the database goes away ---------------------------------------------------

// TestDatabaseOutageMidRun takes MySQL away for about 2 s while a consume
// run with a MySQL store is in progress (every connection cut, new ones
// refused) and brings it back. The validator must keep judging while the
// database is down (its group's committed offsets advance), the sink must
// retry and resume, and the results must equal an uninterrupted run: the
// same stream CSV bytes, and in MySQL as many stream rows and the same
// Σ pending_balance as that CSV, as many rejected rows as the rejected CSV.
func TestDatabaseOutageMidRun(t *testing.T) {
	kafkatest.EachConcurrent(t, func(t *testing.T, b kafkatest.Broker) {
		dbCfg := mysqltest.NewDatabase(t)
		brokers := b.Addrs
		data := failDataset(t, 20000, 40)

		refTopics := b.Topics(t, "outage-ref")
		runTopics := b.Topics(t, "outage")
		refSt := loadAndProduce(t, brokers, refTopics, data)
		st := loadAndProduce(t, brokers, runTopics, data)
		if st.Records != refSt.Records || st.Rejected != refSt.Rejected || st.Rejected == 0 {
			t.Fatalf("produce: %+v vs %+v", st, refSt)
		}
		refDir := failReference(t, brokers, refTopics, refSt)

		proxy := startFailProxy(t, dbCfg.Addr)
		viaProxy := dbCfg.Clone()
		viaProxy.Addr = proxy.addr
		logs := &failLog{}
		log := slog.New(slog.NewTextHandler(logs, nil))
		openCtx, cancelOpen := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancelOpen()
		store, err := mysqlstore.Open(openCtx, viaProxy, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })

		group := failName("outage")
		results := t.TempDir()
		var progress atomic.Pointer[stream.ConsumeStats]
		progress.Store(&stream.ConsumeStats{})
		type outcome struct {
			st  stream.ConsumeStats
			err error
		}
		done := make(chan outcome, 1)
		start := time.Now()
		runs := newFailRuns(t)
		runs.goRun(func(ctx context.Context) {
			cs, err := stream.Consume(ctx, stream.ConsumeConfig{
				Brokers: brokers, Topics: runTopics, Group: group, Instance: "outage-1", ResultsDir: results,
				Store: store, Transient: mysqlstore.IsTransient,
				UntilIdle: 4 * time.Second, MaxBatch: 25, Log: log,
				Done: func(s stream.ConsumeStats) bool { progress.Store(&s); return false },
			})
			done <- outcome{cs, err}
		})

		// Take the database away once the run is well under way: the sink has
		// (normally) written to MySQL and the validator has judged part of the
		// input, but not all of it.
		total := st.Records
		if !failWait(30*time.Second, func() bool {
			p := progress.Load()
			judged := p.Judged + p.Rejected
			return (p.Written > 0 && judged >= total/10) || judged >= total/3
		}) {
			t.Fatalf("the run made no progress: %+v", *progress.Load())
		}
		atDown := *progress.Load()
		if atDown.Judged+atDown.Rejected >= total {
			t.Fatalf("the validator finished before the outage (%+v): slow it down (MaxBatch)", atDown)
		}
		committedAtDown := failCommitted(t, brokers, group, runTopics.Input)
		proxy.down()
		downAt := time.Now()
		// A COMMIT the server received just before the cut may still land.
		time.Sleep(300 * time.Millisecond)
		rowsAtDown, err := failCount(dbCfg, "stream_transactions")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Until(downAt.Add(2 * time.Second)))
		committedAtUp := failCommitted(t, brokers, group, runTopics.Input)
		rowsAtUp, err := failCount(dbCfg, "stream_transactions")
		if err != nil {
			t.Fatal(err)
		}
		atUp := *progress.Load()
		proxy.up(t)
		t.Logf("database down for %v at %.1fs into the run: validator judged %d → %d, group offsets %d → %d, MySQL rows %d → %d",
			time.Since(downAt).Round(time.Millisecond), downAt.Sub(start).Seconds(),
			atDown.Judged+atDown.Rejected, atUp.Judged+atUp.Rejected, committedAtDown, committedAtUp, rowsAtDown, rowsAtUp)

		var out outcome
		select {
		case out = <-done:
		case <-time.After(2 * time.Minute):
			t.Fatalf("the run did not finish after the database came back\n%s", logs.tail(3000))
		}
		if out.err != nil {
			t.Fatalf("consume: %v\n%s", out.err, logs.tail(3000))
		}
		t.Logf("consume: %+v (total %v); log: %s", out.st, time.Since(start).Round(time.Millisecond), logs.summary())
		if os.Getenv("TXPIPE_TEST_LOGS") != "" {
			t.Logf("run log:\n%s", logs.String())
		}

		if got := out.st.Judged + out.st.Rejected; got != st.Records {
			t.Errorf("the validator committed %d decisions for %d input records", got, st.Records)
		}
		// The validator kept deciding while the database was down.
		if committedAtUp <= committedAtDown {
			t.Errorf("the validators' committed offsets did not advance while the database was down: %d → %d", committedAtDown, committedAtUp)
		}
		// The sink noticed, retried and resumed.
		logText := logs.String()
		if !strings.Contains(logText, "unavailable, retrying with backoff") || !strings.Contains(logText, "available again") || !strings.Contains(logText, "output=mysql") {
			t.Errorf("the sink did not report the outage and the recovery:\n%s", logs.tail(3000))
		}
		if rowsAtUp != rowsAtDown {
			t.Errorf("MySQL rows changed while the database was unreachable through the proxy: %d → %d", rowsAtDown, rowsAtUp)
		}

		// Same results as the uninterrupted run.
		failSameFile(t, filepath.Join(results, csvfile.StreamFile), filepath.Join(refDir, csvfile.StreamFile))
		failSameFile(t, filepath.Join(results, csvfile.RejectedFile), filepath.Join(refDir, csvfile.RejectedFile))
		wantRows, wantSum := failCSVTotals(t, filepath.Join(refDir, csvfile.StreamFile))
		wantRejected := failCSVRows(t, filepath.Join(refDir, csvfile.RejectedFile), "reason")
		direct := failOpenDB(t, dbCfg)
		var n int64
		var sum string
		if err := direct.QueryRow("SELECT COUNT(*), COALESCE(SUM(pending_balance), 0) FROM stream_transactions").Scan(&n, &sum); err != nil {
			t.Fatal(err)
		}
		gotSum, err := failSumCents(sum)
		if err != nil {
			t.Fatal(err)
		}
		if n != wantRows || n == 0 {
			t.Errorf("MySQL has %d stream rows, the uninterrupted run's CSV %d", n, wantRows)
		}
		if gotSum != int64(wantSum) {
			t.Errorf("MySQL Σ pending_balance %s, the uninterrupted run's CSV %s", sum, wantSum)
		}
		var rej int64
		if err := direct.QueryRow("SELECT COUNT(*) FROM rejected_transactions").Scan(&rej); err != nil {
			t.Fatal(err)
		}
		if rej != wantRejected || rej == 0 {
			t.Errorf("MySQL has %d rejected rows, the uninterrupted run's CSV %d", rej, wantRejected)
		}
		t.Logf("%d stream rows (Σ pending %s), %d rejected rows in MySQL and CSV", n, wantSum, rej)
	})
}

// failOpenDB opens the test database without the proxy.
func failOpenDB(t *testing.T, cfg interface{ FormatDSN() string }) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func failCount(cfg interface{ FormatDSN() string }, table string) (int64, error) {
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int64
	err = db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n)
	return n, err
}

// failSumCents reads a DECIMAL sum with two decimals as cents.
func failSumCents(s string) (int64, error) {
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) > 2 && strings.Trim(frac[2:], "0") != "" {
		return 0, fmt.Errorf("sum %q: more than two decimals", s)
	}
	frac = (frac + "00")[:2]
	neg := strings.HasPrefix(whole, "-")
	n, err := strconv.ParseInt(strings.TrimPrefix(whole, "-")+frac, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("sum %q: %w", s, err)
	}
	if neg {
		n = -n
	}
	return n, nil
}

// ---- the broker restarts ------------------------------------------------------

// TestBrokerRestartMidRun stops the broker (the embedded one with a data
// directory, or a private Kafka) while a consume run is in progress, and
// starts it again on the same port and directory a second later. The run must carry on and
// leave exactly what an uninterrupted run leaves: the same stream and
// rejected CSV bytes and the same last state of every card in the
// changelog (read_committed).
func TestBrokerRestartMidRun(t *testing.T) {
	kafkatest.EachRestartable(t, func(t *testing.T, b *kafkatest.Restartable) {
		data := failDataset(t, 20000, 40)

		// The uninterrupted run, on an in-memory embedded broker of its
		// own (on Kafka too: both brokers must give the same results).
		refBrokers := kafkatest.StartEmbedded(t).Addrs
		refTopics := b.Topics(t, "restart")
		refSt := loadAndProduce(t, refBrokers, refTopics, data)
		refDir := failReference(t, refBrokers, refTopics, refSt)

		brokers := b.Addrs
		topics := refTopics // the same names on the other broker: the rejected CSV's sources match
		st := loadAndProduce(t, brokers, topics, data)
		if st != (stream.ProduceStats{Records: refSt.Records, Rejected: refSt.Rejected, Elapsed: st.Elapsed}) {
			t.Fatalf("produce: %+v vs %+v", st, refSt)
		}

		logs := &failLog{}
		log := slog.New(slog.NewTextHandler(logs, nil))
		results := t.TempDir()
		group := failName("restart")
		var progress atomic.Pointer[stream.ConsumeStats]
		progress.Store(&stream.ConsumeStats{})
		type outcome struct {
			st  stream.ConsumeStats
			err error
		}
		done := make(chan outcome, 1)
		start := time.Now()
		runs := newFailRuns(t)
		consume := func(ctx context.Context, untilIdle time.Duration) {
			cs, err := stream.Consume(ctx, stream.ConsumeConfig{
				Brokers: brokers, Topics: topics, Group: group, Instance: "restart-1", ResultsDir: results,
				UntilIdle: untilIdle, MaxBatch: 25, Log: log,
				Done: func(s stream.ConsumeStats) bool { progress.Store(&s); return false },
			})
			done <- outcome{cs, err}
		}
		runs.goRun(func(ctx context.Context) { consume(ctx, 8*time.Second) })

		total := st.Records
		if !failWait(30*time.Second, func() bool {
			p := progress.Load()
			judged := p.Judged + p.Rejected
			return (p.Written > 0 && judged >= total/5) || judged >= total/3
		}) {
			t.Fatalf("the run made no progress: %+v\n%s", *progress.Load(), logs.tail(3000))
		}
		atStop := *progress.Load()
		if atStop.Judged+atStop.Rejected >= total {
			t.Fatalf("the validator finished before the restart (%+v): slow it down (MaxBatch)", atStop)
		}
		b.Stop(t)
		stoppedAt := time.Now()
		time.Sleep(time.Second)
		b.Start(t)
		t.Logf("broker stopped at %.1fs into the run (validator had judged %d of %d, sink written %d), back after %v",
			stoppedAt.Sub(start).Seconds(), atStop.Judged+atStop.Rejected, total, atStop.Written, time.Since(stoppedAt).Round(time.Millisecond))

		// The run must ride out the restart (retry with backoff, resume). If
		// it gives up instead, that is reported as a failure, and the run is
		// started again, as a supervisor would, so that the exactly-once
		// results are still checked.
		var runErrs []error
		for {
			var out outcome
			select {
			case out = <-done:
			case <-time.After(2 * time.Minute):
				t.Fatalf("the run did not finish after the broker came back\n%s", logs.tail(4000))
			}
			t.Logf("consume: %+v, err %v (total %v); log: %s", out.st, out.err, time.Since(start).Round(time.Millisecond), logs.summary())
			if out.err == nil {
				break
			}
			runErrs = append(runErrs, out.err)
			t.Errorf("the consume run did not survive the broker restart (DESIGN.md: a broker that goes away is retried with backoff and the run resumes): %v", out.err)
			if len(runErrs) > 2 {
				t.Fatalf("consume failed %d times after the broker came back\n%s", len(runErrs), logs.tail(4000))
			}
			runs.goRun(func(ctx context.Context) { consume(ctx, 4*time.Second) })
		}
		if os.Getenv("TXPIPE_TEST_LOGS") != "" {
			t.Logf("run log:\n%s", logs.String())
		}

		failSameFile(t, filepath.Join(results, csvfile.StreamFile), filepath.Join(refDir, csvfile.StreamFile))
		failSameFile(t, filepath.Join(results, csvfile.RejectedFile), filepath.Join(refDir, csvfile.RejectedFile))
		got, want := stStates(t, brokers, topics), stStates(t, refBrokers, refTopics)
		if d := failDiffStates(got, want); d != "" || len(want) == 0 {
			t.Fatalf("card states differ from the uninterrupted run (%d vs %d cards):\n%s", len(got), len(want), d)
		}
		t.Logf("%d card states equal", len(got))
	})
}

// ---- a third-party client reads the topics -------------------------------------

// TestKcatReadsTopics checks that txpipe's topics on either broker are
// ordinary Kafka topics to librdkafka's kcat: it lists them, and reading
// the validated topic read_committed gives exactly the judged
// transactions, each a valid result record.
func TestKcatReadsTopics(t *testing.T) {
	kafkatest.EachConcurrent(t, func(t *testing.T, b kafkatest.Broker) {
		kcat, err := exec.LookPath("kcat")
		if err != nil {
			t.Skip("kcat is not on PATH (CI installs it: apt-get install kcat)")
		}
		data := reftest.Data(t)
		brokers := b.Addrs
		topics := b.Topics(t, "kcat")
		st := loadAndProduce(t, brokers, topics, data)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cs, err := stream.Consume(ctx, stream.ConsumeConfig{
			Brokers: brokers, Topics: topics, Group: failName("kcat"), Instance: "kcat-1", ResultsDir: t.TempDir(),
			Log:  slog.New(slog.DiscardHandler),
			Done: func(s stream.ConsumeStats) bool { return s.Written >= st.Records+st.Rejected },
		})
		if err != nil {
			t.Fatal(err)
		}
		if cs.Judged == 0 {
			t.Fatalf("nothing judged: %+v", cs)
		}
		addr := brokers[0]

		run := func(args ...string) []byte {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, kcat, args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("kcat %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
			}
			return out
		}

		meta := string(run("-b", addr, "-L"))
		for _, topic := range []string{topics.Input, topics.Validated, topics.DLQ, topics.State, topics.Cards, topics.Customers} {
			if !strings.Contains(meta, fmt.Sprintf("topic %q with ", topic)) {
				t.Errorf("kcat -L does not list topic %s:\n%s", topic, meta)
			}
		}

		out := run("-b", addr, "-C", "-t", topics.Validated, "-o", "beginning", "-e",
			"-X", "isolation.level=read_committed", "-f", "%s\n")
		var n int64
		sc := bufio.NewScanner(bytes.NewReader(out))
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		seen := map[int64]bool{}
		for sc.Scan() {
			line := sc.Bytes()
			if len(line) == 0 {
				continue
			}
			n++
			r, err := stream.DecodeResult(line)
			if err != nil {
				t.Fatalf("line %d of kcat's output is not a result record: %v\n%s", n, err, line)
			}
			if seen[r.ID] {
				t.Errorf("transaction %d appears twice on %s", r.ID, topics.Validated)
			}
			seen[r.ID] = true
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		if n != cs.Judged {
			t.Fatalf("kcat read %d records from %s, the validator judged %d", n, topics.Validated, cs.Judged)
		}
		t.Logf("kcat listed the 6 topics and read %d judged transactions (read_committed)", n)
	})
}

// TestStopStorm stops a consumer again and again at random points, each
// stop mid-batch as often as not (SIGTERM does the same): every stop
// finishes or aborts the transaction in flight, never commits half of it,
// so the results and card states equal an uninterrupted run's.
func TestStopStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("many restarts")
	}
	kafkatest.EachConcurrent(t, func(t *testing.T, b kafkatest.Broker) {
		brokers := b.Addrs
		data := failDataset(t, 20000, 10)
		calm, storm := b.Topics(t, "calm"), b.Topics(t, "storm")
		ref := loadAndProduce(t, brokers, calm, data)
		loadAndProduce(t, brokers, storm, data)
		want := t.TempDir()
		done := make(chan stRun, 1)
		stConsume(context.Background(), t, brokers, calm, "calm", want, 2*time.Second, nil, done)
		if r := <-done; r.err != nil {
			t.Fatal(r.err)
		}

		got := t.TempDir()
		total := ref.Records + ref.Rejected
		var written int64
		rng := mrand.New(mrand.NewPCG(7, 11))
		stops := 0
		// Each run is stopped on progress, never after a time: after a
		// random number of committed transactions, at a random moment of
		// the next one (its first records produced or not), so the number
		// of stops does not depend on the machine's speed.
		for deadline := time.Now().Add(5 * time.Minute); written < total; stops++ {
			if time.Now().After(deadline) {
				t.Fatalf("after %d stops only %d of %d records written", stops, written, total)
			}
			ctx, cancel := context.WithCancel(context.Background())
			stopAfter, delay := 2+rng.IntN(5), time.Duration(rng.IntN(3000))*time.Microsecond
			commits := 0
			cfg := stream.ConsumeConfig{
				Brokers: brokers, Topics: storm, Group: "g-" + storm.Input, Instance: "s1",
				ResultsDir: got, MaxBatch: 100 + rng.IntN(400), CheckpointEvery: 50 + rng.IntN(500),
				Log:  slog.New(slog.DiscardHandler),
				Done: func(s stream.ConsumeStats) bool { return written+s.Written >= total },
			}
			stream.SetAfterCommit(&cfg, func(int) {
				if commits++; commits == stopAfter {
					time.AfterFunc(delay, cancel)
				}
			})
			st, err := stream.Consume(ctx, cfg)
			cancel()
			if err != nil {
				t.Fatalf("stop %d: %v", stops, err)
			}
			written += st.Written
		}
		if stops < 5 {
			t.Fatalf("the consumer was stopped only %d times", stops)
		}
		if written != total {
			t.Fatalf("written %d records in all, want %d", written, total)
		}
		stSameFiles(t, got, want, csvfile.StreamFile, csvfile.RejectedFile)
		if t.Failed() {
			stAudit(t, brokers, storm, calm)
		}
		if d := failDiffStates(stStates(t, brokers, storm), stStates(t, brokers, calm)); d != "" {
			t.Fatalf("card states differ from the uninterrupted run: %s", d)
		}
		t.Logf("%d records over %d stops", total, stops)
	})
}
