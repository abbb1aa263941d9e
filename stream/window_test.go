package stream

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/dataset"
	"github.com/txpipe/txpipe/serving/csvfile"
)

// countOp is a toy operator that proves the engine carries event-time
// windows: it counts, per card, the results the ledger forwards in
// tumbling windows of size (event time; a minute here), closes a window once the
// partition's watermark (largest event time seen minus bound) passes its
// end, and closes every open window on a processing-time timer when its
// partition has been quiet for idle. Closed windows go to the topic out
// as "card,start,count". Its state is a changelog: every transaction
// writes the windows it changed.
type countOp struct {
	out               string
	size, bound, idle time.Duration
	clock             Clock
}

func (o *countOp) Name() string           { return "count" }
func (o *countOp) Inputs() []string       { return []string{ForwardResults} }
func (o *countOp) OutputTopics() []string { return []string{o.out} }
func (o *countOp) NewTask(int32) Task {
	return &countTask{op: o, windows: map[wkey]int64{}, dirty: map[wkey]bool{}}
}

type wkey struct{ card, start int64 }

type countTask struct {
	op       *countOp
	windows  map[wkey]int64
	maxEvent int64     // unix seconds
	quiet    time.Time // processing time of the last result, or of the restore
	dirty    map[wkey]bool
	// the mark of the transaction in flight
	markWindows map[wkey]int64
	markDirty   map[wkey]bool
	markMax     int64
	markQuiet   time.Time
	// open is len(windows), for the test to read while the task runs on
	// the engine's workers.
	open atomic.Int64
}

func (t *countTask) Process(*kgo.Record, *Emitter) {}

func (t *countTask) Receive(_ string, v any, out *Emitter) {
	r := v.(*txpipe.Result)
	at := r.Timestamp.Unix()
	size := int64(t.op.size / time.Second)
	k := wkey{card: r.CardID, start: at - at%size}
	t.windows[k]++
	t.dirty[k] = true
	t.maxEvent = max(t.maxEvent, at)
	t.quiet = out.Now()
	t.close(out, t.maxEvent-int64(t.op.bound/time.Second))
}

// close emits and drops the windows that end at or before watermark, in
// a fixed order.
func (t *countTask) close(out *Emitter, watermark int64) {
	size := int64(t.op.size / time.Second)
	var done []wkey
	for k := range t.windows {
		if k.start+size <= watermark {
			done = append(done, k)
		}
	}
	slices.SortFunc(done, func(a, b wkey) int {
		if a.start != b.start {
			return int(a.start - b.start)
		}
		return int(a.card - b.card)
	})
	for _, k := range done {
		v := []byte(fmt.Sprintf("%d,%d,%d", k.card, k.start, t.windows[k]))
		out.Send(&kgo.Record{Topic: t.op.out, Key: strconv.AppendInt(nil, k.card, 10), Value: v}, false)
		delete(t.windows, k)
		t.dirty[k] = true
	}
	t.open.Store(int64(len(t.windows)))
}

func (t *countTask) NextTimer() time.Time {
	if len(t.windows) == 0 || t.quiet.IsZero() {
		return time.Time{}
	}
	return t.quiet.Add(t.op.idle)
}

func (t *countTask) OnTime(now time.Time, out *Emitter) {
	if !now.Before(t.quiet.Add(t.op.idle)) {
		t.close(out, t.maxEvent+int64(t.op.size/time.Second)) // an idle watermark: every window closes
	}
}

func (t *countTask) Dirty() bool { return len(t.dirty) > 0 }

func (t *countTask) Begin() {
	t.markWindows, t.markDirty = maps.Clone(t.windows), maps.Clone(t.dirty)
	t.markMax, t.markQuiet = t.maxEvent, t.quiet
}

func (t *countTask) Rollback() {
	t.windows, t.dirty, t.maxEvent, t.quiet = t.markWindows, t.markDirty, t.markMax, t.markQuiet
	t.open.Store(int64(len(t.windows)))
}

func (t *countTask) Commit(map[string]int64) {}

func (t *countTask) Checkpoint(w *StateWriter, _ bool, _ map[string]int64) {
	if len(t.dirty) == 0 {
		return
	}
	for k := range t.dirty {
		key := []byte(fmt.Sprintf("w/%d/%d", k.card, k.start))
		if n, ok := t.windows[k]; ok {
			w.Put(key, strconv.AppendInt(nil, n, 10))
		} else {
			w.Put(key, nil)
		}
	}
	w.Put([]byte("m"), strconv.AppendInt(nil, t.maxEvent, 10))
	clear(t.dirty)
}

func (t *countTask) Restore(key, value []byte) error {
	switch {
	case string(key) == "m":
		n, err := strconv.ParseInt(string(value), 10, 64)
		t.maxEvent = n
		return err
	case bytes.HasPrefix(key, []byte("w/")):
		var k wkey
		if _, err := fmt.Sscanf(string(key), "w/%d/%d", &k.card, &k.start); err != nil {
			return err
		}
		if value == nil {
			delete(t.windows, k)
			return nil
		}
		n, err := strconv.ParseInt(string(value), 10, 64)
		t.windows[k] = n
		return err
	}
	return fmt.Errorf("unknown key %q", key)
}

// Restored starts the idle timer afresh.
func (t *countTask) Restored(context.Context, StateReader) error {
	t.quiet = t.op.clock.Now()
	t.open.Store(int64(len(t.windows)))
	return nil
}

// fakeClock is a processing-time clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

const windowTopic = "win"

func windowOp(idle time.Duration, clock Clock) *countOp {
	return &countOp{out: windowTopic + ".counts", size: time.Minute, bound: 10 * time.Second, idle: idle, clock: clock}
}

// TestWindowHelperProcess is the consumer that TestWindowOperatorSurvivesKill
// runs as a child process and kills; it does nothing in a normal test run.
func TestWindowHelperProcess(t *testing.T) {
	brokers := os.Getenv("TXPIPE_WINDOW_BROKERS")
	if brokers == "" {
		t.Skip("a child process of TestWindowOperatorSurvivesKill")
	}
	v, err := NewValidator(context.Background(), ValidatorConfig{
		Brokers: strings.Split(brokers, ","), Topics: TopicsFor(windowTopic), Group: "win", Instance: "w1",
		MaxBatch: 50, CheckpointEvery: 300, Operators: []Operator{windowOp(time.Hour, realClock{})},
		Log: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Fatal(v.Run(context.Background())) // until killed
}

// TestWindowOperatorSurvivesKill runs the ledger and the toy window
// operator in child processes that are SIGKILLed at random points of
// progress and restarted, then finishes the stream in this process with a
// fake clock, whose idle timer closes the last windows. Every (card,
// window) must come out exactly once with the count an independent
// recomputation from the validated topic gives.
func TestWindowOperatorSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("child processes")
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.ClusterID(EmbeddedClusterID))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	topics := TopicsFor(windowTopic)
	data := t.TempDir()
	if _, err := dataset.Generate(context.Background(), data, dataset.Options{Customers: 5, Cards: 6, Transactions: 20000, Days: 1, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	m, err := csvfile.ReadMaster(data)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := PublishMaster(ctx, brokers, topics, m.Cards, m.Customers); err != nil {
		t.Fatal(err)
	}
	src, err := CSVRows(filepath.Join(data, csvfile.TransactionsFile))
	if err != nil {
		t.Fatal(err)
	}
	ps, err := Produce(ctx, ProducerConfig{Brokers: brokers, Topics: topics}, src)
	if err != nil {
		t.Fatal(err)
	}
	adm, cl := admin(t, brokers)
	defer cl.Close()
	committed := func() int64 {
		offs, err := adm.FetchOffsets(ctx, "win")
		if err != nil {
			return 0
		}
		var n int64
		offs.Each(func(o kadm.OffsetResponse) {
			if o.Topic == topics.Input {
				n += o.At
			}
		})
		return n
	}
	rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 5))
	total := ps.Records + ps.Rejected
	kills := 0
	for kills < 6 && committed() < total*9/10 {
		var logs bytes.Buffer
		cmd := exec.Command(os.Args[0], "-test.run=^TestWindowHelperProcess$", "-test.v")
		cmd.Env = append(os.Environ(), "TXPIPE_WINDOW_BROKERS="+strings.Join(brokers, ","))
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		from := committed()
		step := total/20 + rng.Int64N(total/10)
		deadline := time.Now().Add(2 * time.Minute)
		for committed() < min(from+step, total) {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("the child made no progress in 2 minutes:\n%s", logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond) // into the next transaction, or not
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		kills++
	}
	if kills == 0 {
		t.Fatal("no child was killed")
	}

	// The rest, in this process, with a fake clock.
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	v, err := NewValidator(ctx, ValidatorConfig{
		Brokers: brokers, Topics: topics, Group: "win", Instance: "w1", MaxBatch: 50, CheckpointEvery: 300,
		Operators: []Operator{windowOp(10*time.Second, clock)}, Clock: clock, Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	v.cfg.PollWait = 50 * time.Millisecond
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- v.Run(rctx) }()
	for committed() < total {
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(readCounts(t, brokers, topics)); n == 0 {
		t.Fatal("no window closed before the idle timer")
	}
	open := func() int { // windows still open in the tasks
		v.mu.Lock()
		defer v.mu.Unlock()
		n := 0
		for _, p := range v.owned {
			n += int(p.tasks[1].(*countTask).open.Load())
		}
		return n
	}
	if open() == 0 {
		t.Fatal("every window closed before the idle timer: the test proves nothing about timers")
	}
	clock.add(9 * time.Second)
	time.Sleep(200 * time.Millisecond)
	if open() == 0 {
		t.Fatal("the idle timer fired early")
	}
	clock.add(2 * time.Second)
	for deadline := time.Now().Add(time.Minute); open() > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the idle timer did not close the open windows")
		}
	}
	time.Sleep(100 * time.Millisecond) // the timer's transaction commits
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	v.Close()

	got := readCounts(t, brokers, topics)
	want := map[wkey]int64{}
	readTopic(t, brokers, topics.Validated, func(r *kgo.Record) {
		res, err := DecodeResult(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		at := res.Timestamp.Unix()
		want[wkey{res.CardID, at - at%60}]++
	})
	dup := 0
	for k, n := range got {
		if len(n) > 1 {
			dup++
			t.Errorf("window %v emitted %d times: %v", k, len(n), n)
		}
		if n[0] != want[k] {
			t.Errorf("window %v: count %d, want %d", k, n[0], want[k])
		}
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			t.Errorf("window %v (count %d) never emitted", k, want[k])
		}
	}
	t.Logf("%d kills; %d windows over %d results, %d emitted twice", kills, len(want), total, dup)
}

func admin(t *testing.T, brokers []string) (*kadm.Client, *kgo.Client) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	return kadm.NewClient(cl), cl
}

// readTopic reads every committed record of a topic.
func readTopic(t *testing.T, brokers []string, topic string, fn func(*kgo.Record)) {
	t.Helper()
	base := []kgo.Opt{kgo.SeedBrokers(brokers...)}
	if _, err := readRange(context.Background(), base, topic, nil, false, fn); err != nil {
		t.Fatal(err)
	}
}

// readCounts reads the window counts emitted so far, per window.
func readCounts(t *testing.T, brokers []string, topics Topics) map[wkey][]int64 {
	t.Helper()
	got := map[wkey][]int64{}
	readTopic(t, brokers, windowTopic+".counts", func(r *kgo.Record) {
		var k wkey
		var n int64
		if _, err := fmt.Sscanf(string(r.Value), "%d,%d,%d", &k.card, &k.start, &n); err != nil {
			t.Fatalf("count record %q: %v", r.Value, err)
		}
		got[k] = append(got[k], n)
	})
	return got
}
