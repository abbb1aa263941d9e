package embedded_test

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/dataset"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/stream"
	"github.com/txpipe/txpipe/stream/embedded"
)

func start(t *testing.T, r embedded.Retention) *embedded.Broker {
	t.Helper()
	b, err := embedded.Start(0, "", embedded.WithRetention(r))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func client(t *testing.T, b *embedded.Broker, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.Addrs()...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func create(t *testing.T, cl *kgo.Client, topic string, partitions int32, cfg map[string]*string) {
	t.Helper()
	resp, err := kadm.NewClient(cl).CreateTopic(ctxT(t), partitions, -1, cfg, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
}

func starts(t *testing.T, cl *kgo.Client, topic string) map[int32]int64 {
	t.Helper()
	offs, err := kadm.NewClient(cl).ListStartOffsets(ctxT(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

func retain(t *testing.T, b *embedded.Broker) embedded.RetainStats {
	t.Helper()
	st, err := b.Retain(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestRetentionBoundsTopics: a plain topic gets the retention and loses
// what is older or more than it allows; master data (compacted) and a
// topic kept whole (retention.ms=-1) lose nothing, however old.
func TestRetentionBoundsTopics(t *testing.T) {
	b := start(t, embedded.Retention{Time: time.Hour, Bytes: 16 << 10, SegmentBytes: 4 << 10})
	cl := client(t, b, kgo.ProducerLinger(0))
	ctx := ctxT(t)
	create(t, cl, "plain", 1, nil)
	create(t, cl, "aged", 1, nil)
	create(t, cl, "master", 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")})
	create(t, cl, "archive", 1, map[string]*string{"cleanup.policy": kadm.StringPtr("delete"), "retention.ms": kadm.StringPtr("-1")})
	old := time.Now().Add(-2 * time.Hour)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 100 { // about 100 KB each: over the 16 KiB bound
		key := []byte(fmt.Sprint(i))
		value := make([]byte, 1000) // random: it does not compress
		for j := range value {
			value[j] = byte(rng.Uint32())
		}
		recs := []*kgo.Record{
			{Topic: "plain", Key: key, Value: value},
			{Topic: "aged", Key: key, Value: []byte("v"), Timestamp: old},
			{Topic: "master", Key: key, Value: value, Timestamp: old},
			{Topic: "archive", Key: key, Value: value, Timestamp: old},
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	st := retain(t, b)
	if !reflect.DeepEqual(st.Bounded, []string{"aged", "plain"}) {
		t.Fatalf("bounded %v, want [aged plain]", st.Bounded)
	}
	cfgs, err := kadm.NewClient(cl).DescribeTopicConfigs(ctx, "plain")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range cfgs[0].Configs {
		if c.Source == 1 && c.Value != nil { // DYNAMIC_TOPIC_CONFIG
			got[c.Key] = *c.Value
		}
	}
	if got["retention.ms"] != "3600000" || got["retention.bytes"] != "16384" {
		t.Fatalf("plain's configs: %v", got)
	}
	if s := starts(t, cl, "plain")[0]; s < 80 { // at most 16 KiB of 1 KB records are left
		t.Fatalf("plain starts at %d: retention by size did not delete", s)
	}
	if s := starts(t, cl, "aged")[0]; s != 100 {
		t.Fatalf("aged starts at %d: retention by age did not delete its two-hour-old records", s)
	}
	for _, topic := range []string{"master", "archive"} {
		if s := starts(t, cl, topic)[0]; s != 0 {
			t.Fatalf("%s starts at %d: it must keep everything", topic, s)
		}
	}
	if st.Deleted["plain"] < 80 || st.Deleted["aged"] != 100 || st.Deleted["master"] != 0 {
		t.Fatalf("deleted %v", st.Deleted)
	}
	// A second pass finds the topics bounded already.
	if st := retain(t, b); len(st.Bounded) != 0 || len(st.Deleted) != 0 {
		t.Fatalf("second pass: %+v", st)
	}
}

// lastValues reads a topic read_committed as a restore does: the last
// value of each key, tombstones deleting.
func lastValues(t *testing.T, b *embedded.Broker, topic string) map[string]string {
	t.Helper()
	cl := client(t, b)
	ends, err := kadm.NewClient(cl).ListCommittedOffsets(ctxT(t), topic) // up to a transaction still open
	if err != nil {
		t.Fatal(err)
	}
	end := ends[topic][0].Offset
	rd := client(t, b, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	out := map[string]string{}
	for next := int64(-1); next < end-1; {
		fs := rd.PollFetches(ctxT(t))
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			next = r.Offset
			switch {
			case r.Attrs.IsControl():
			case r.Value == nil:
				delete(out, string(r.Key))
			default:
				out[string(r.Key)] = string(r.Value)
			}
		})
	}
	return out
}

// TestTrimKeepsLastCommittedValues: the state and positions topics are
// trimmed only below the records still needed: the last committed value
// of each key (not one an aborted transaction wrote over it), a young
// tombstone, a transaction still open.
func TestTrimKeepsLastCommittedValues(t *testing.T) {
	b := start(t, embedded.Retention{Time: time.Hour, Bytes: 1 << 10})
	topic := stream.TopicsFor("tx").State
	admin := client(t, b)
	create(t, admin, topic, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("delete"), "retention.ms": kadm.StringPtr("-1")})
	txn := client(t, b, kgo.TransactionalID("trim-test"), kgo.DefaultProduceTopic(topic))
	ctx := ctxT(t)
	write := func(end string, kv ...string) {
		t.Helper()
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(kv); i += 2 {
			r := &kgo.Record{Key: []byte(kv[i])}
			if kv[i+1] != "<nil>" {
				r.Value = []byte(kv[i+1])
			}
			if err := txn.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if end != "open" {
			if err := txn.EndTransaction(ctx, kgo.TransactionEndTry(end == "commit")); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(want map[string]string) {
		t.Helper()
		before := lastValues(t, b, topic)
		retain(t, b)
		after := lastValues(t, b, topic)
		if !maps.Equal(before, want) || !maps.Equal(after, want) {
			t.Fatalf("last values before %v, after the trim %v; want %v", before, after, want)
		}
	}
	write("commit", "c/1", "a1", "c/2", "b1", "c/1", "a2") // 0-2, marker 3
	write("abort", "c/1", "a3", "c/2", "<nil>")            // 4-5 aborted, marker 6
	check(map[string]string{"c/1": "a2", "c/2": "b1"})
	if s := starts(t, admin, topic)[0]; s != 1 {
		t.Fatalf("starts at %d, want 1 (c/2's value)", s)
	}
	write("commit", "c/2", "b2", "m", "x") // 7-8, marker 9
	check(map[string]string{"c/1": "a2", "c/2": "b2", "m": "x"})
	if s := starts(t, admin, topic)[0]; s != 2 {
		t.Fatalf("starts at %d, want 2 (c/1's value)", s)
	}
	// An open transaction: its records and everything they would
	// supersede stay.
	write("open", "c/1", "a4", "c/2", "b3", "m", "y") // 10-12, open
	check(map[string]string{"c/1": "a2", "c/2": "b2", "m": "x"})
	if s := starts(t, admin, topic)[0]; s != 2 {
		t.Fatalf("open transaction: starts at %d, want 2", s)
	}
	if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil { // marker 13
		t.Fatal(err)
	}
	write("commit", "c/2", "<nil>") // a tombstone at 14, marker 15
	check(map[string]string{"c/1": "a4", "m": "y"})
	if s := starts(t, admin, topic)[0]; s != 10 {
		t.Fatalf("starts at %d, want 10", s)
	}
}

// TestRestoreAfterRetention runs the validator on a broker whose retention
// deletes most of the input and validated topics and trims the state
// topic, stops it, lets retention run, runs it again over more input: a
// restore after retention still gives exactly the card states of an
// uninterrupted run on a broker without retention.
func TestRestoreAfterRetention(t *testing.T) {
	data := t.TempDir()
	if _, err := dataset.Generate(context.Background(), data, dataset.Options{Customers: 40, Cards: 60, Transactions: 3000, Seed: 4}); err != nil {
		t.Fatal(err)
	}
	part1, part2, n1, n2 := splitTransactions(t, filepath.Join(data, csvfile.TransactionsFile))
	m, err := csvfile.ReadMaster(data)
	if err != nil {
		t.Fatal(err)
	}
	topics := stream.TopicsFor("pay")
	const every = 40                                                    // results per partition between checkpoints: about 6 KB
	run := func(b *embedded.Broker, results, file string, want int64) { // want: rows this run writes
		t.Helper()
		src, err := stream.CSVRows(file)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Produce(ctxT(t), stream.ProducerConfig{Brokers: b.Addrs(), Topics: topics}, src); err != nil {
			t.Fatal(err)
		}
		var written int64
		cs, err := stream.Consume(ctxT(t), stream.ConsumeConfig{
			Brokers: b.Addrs(), Topics: topics, Group: "g", Instance: "i1", ResultsDir: results,
			MaxBatch: 20, CheckpointEvery: every, StatusEvery: -1,
			Done: func(s stream.ConsumeStats) bool { written = s.Written; return s.Written >= want },
		})
		if err != nil || written < want {
			t.Fatalf("consume: %+v, %v", cs, err)
		}
	}
	states := func(b *embedded.Broker) map[int64]txpipe.CardState {
		t.Helper()
		s, err := stream.CardStates(ctxT(t), b.Addrs(), topics)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	// The uninterrupted run, without retention.
	ref := start(t, embedded.Retention{})
	if err := stream.PublishMaster(ctxT(t), ref.Addrs(), topics, m.Cards, m.Customers); err != nil {
		t.Fatal(err)
	}
	refResults := t.TempDir()
	run(ref, refResults, part1, n1)
	run(ref, refResults, part2, n2)
	want := states(ref)

	// 16 KiB per partition: about 130 results of the 375 each partition
	// gets, over three checkpoints' worth.
	b := start(t, embedded.Retention{Time: time.Hour, Bytes: 16 << 10, SegmentBytes: 4 << 10})
	if err := stream.PublishMaster(ctxT(t), b.Addrs(), topics, m.Cards, m.Customers); err != nil {
		t.Fatal(err)
	}
	results := t.TempDir()
	run(b, results, part1, n1)
	before := states(b)
	st := retain(t, b)
	t.Logf("first retention pass: %+v", st)
	for _, topic := range []string{topics.Input, topics.Validated, topics.State} {
		if st.Deleted[topic] == 0 {
			t.Errorf("retention deleted nothing of %s", topic)
		}
	}
	if after := states(b); !reflect.DeepEqual(after, before) {
		t.Fatalf("card states changed by retention:\n%s", diffStates(before, after))
	}
	run(b, results, part2, n2)
	st = retain(t, b)
	t.Logf("second retention pass: %+v", st)
	if got := states(b); !reflect.DeepEqual(got, want) {
		t.Fatalf("card states after a restore past retention differ from the uninterrupted run's:\n%s", diffStates(want, got))
	}
	if len(want) != len(m.Cards) {
		t.Fatalf("%d card states for %d cards", len(want), len(m.Cards))
	}
}

func diffStates(want, got map[int64]txpipe.CardState) string {
	var b strings.Builder
	for id, w := range want {
		if g, ok := got[id]; !ok || !reflect.DeepEqual(g, w) {
			fmt.Fprintf(&b, "card %d: want %+v, got %+v (present %v)\n", id, w, g, ok)
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			fmt.Fprintf(&b, "card %d: not expected\n", id)
		}
	}
	return b.String()
}

// splitTransactions writes the first and second half of a transactions
// file to two files, each with the header.
func splitTransactions(t *testing.T, path string) (string, string, int64, int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	half := 1 + (len(lines)-1)/2
	write := func(name string, rows []string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Join(append([]string{lines[0]}, rows...), "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("part1.csv", lines[1:half]), write("part2.csv", lines[half:]), int64(half - 1), int64(len(lines) - half)
}
