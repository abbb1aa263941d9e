package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe/config"
	"github.com/txpipe/txpipe/dataset"
	"github.com/txpipe/txpipe/internal/kafkatest"
)

// TestEveryCodecReadableByKcat runs load, produce and consume with each
// --kafka-compression and checks every topic txpipe writes: each record
// franz-go reads back is in the chosen codec (or uncompressed, where a
// batch would not shrink), and librdkafka's kcat reads every topic whole.
// With TXPIPE_TEST_PYTHON naming a Python that has kafka-python and the
// codec libraries (lz4, python-snappy, zstandard), kafka-python must read
// every topic as kcat does.
func TestEveryCodecReadableByKcat(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat is not on PATH (CI installs it: apt-get install kcat)")
	}
	data := t.TempDir()
	gen, err := dataset.Generate(context.Background(), data, dataset.Options{Customers: 40, Cards: 60, Transactions: 1500, Seed: 4, BadRows: 12})
	if err != nil {
		t.Fatal(err)
	}
	python := os.Getenv("TXPIPE_TEST_PYTHON")
	if python == "" {
		t.Log("TXPIPE_TEST_PYTHON is not set: kafka-python is not tried (scripts/python-kafka makes one)")
	}
	kafkatest.Each(t, func(t *testing.T, b kafkatest.Broker) {
		for i, codec := range config.Compressions {
			t.Run(codec, func(t *testing.T) {
				t.Parallel()
				topics := b.Topics(t, "codec-"+codec)
				flags := []string{
					"--kafka-bootstrap-servers", b.Bootstrap(), "--kafka-topic", topics.Input,
					"--kafka-cards-topic", topics.Cards, "--kafka-customers-topic", topics.Customers,
					"--kafka-group-id", kafkatest.Name("codec"), "--kafka-compression", codec,
					"--db-host", "", "--data", data, "--results", t.TempDir(),
				}
				runCLI(t, append([]string{"load", "initial"}, flags...)...)
				runCLI(t, append([]string{"produce", "--no-progress"}, flags...)...)
				out := runCLI(t, append([]string{"consume", "--instance", "codec-" + strconv.Itoa(i), "--until-idle", "2s", "--memory-limit", "0", "--checkpoint-every", "100"}, flags...)...)
				if !strings.Contains(out, strconv.Itoa(gen.Transactions)+" judged") {
					t.Fatalf("consume: %s", out)
				}
				want := map[string]int{
					topics.Input: -1, topics.Validated: gen.Transactions, topics.DLQ: -1, topics.State: -1,
					topics.Cards: 60, topics.Customers: 40,
				}
				for topic, n := range want {
					checkCodec(t, b, topic, codec)
					got := kcatCount(t, kcat, b, topic)
					if (n >= 0 && got != n) || got == 0 {
						t.Errorf("kcat read %d records from %s (%s), want %d", got, topic, codec, n)
					}
					want[topic] = got
				}
				if python != "" {
					for topic, n := range pythonCounts(t, python, b, want) {
						if n != want[topic] {
							t.Errorf("kafka-python read %d records from %s (%s), kcat %d", n, topic, codec, want[topic])
						}
					}
				}
			})
		}
	})
}

// checkCodec reads topic (read_committed) and fails when a record is
// compressed with a codec other than codec, or when none is compressed
// with codec (and codec is not "none").
func checkCodec(t *testing.T, b kafkatest.Broker, topic, codec string) {
	t.Helper()
	want := map[string]uint8{"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}[codec]
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs...), kgo.ConsumeTopics(topic), kgo.KeepControlRecords(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	remaining := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			remaining[o.Partition] = o.Offset
		}
	})
	seen := map[uint8]int{}
	for len(remaining) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: not read to its end in 30 s", topic)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= remaining[r.Partition]-1 {
				delete(remaining, r.Partition)
			}
			if !r.Attrs.IsControl() {
				seen[r.Attrs.CompressionType()]++
			}
		})
	}
	for c, n := range seen {
		if c != want && c != 0 {
			t.Errorf("%s: %d records compressed with codec %d, want %s (%d)", topic, n, c, codec, want)
		}
	}
	if want != 0 && seen[want] == 0 {
		t.Errorf("%s: no record compressed with %s (codecs seen: %v)", topic, codec, seen)
	}
}

// kcatCount is the number of records kcat reads from topic
// (read_committed).
func kcatCount(t *testing.T, kcat string, b kafkatest.Broker, topic string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, "-b", b.Addrs[0], "-C", "-t", topic, "-o", "beginning", "-e", "-q",
		"-X", "isolation.level=read_committed", "-f", "%o\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat -t %s: %v\n%s", topic, err, stderr.String())
	}
	return strings.Count(string(out), "\n")
}

// pythonReader reads the topics named on its command line whole
// (read_committed) with kafka-python and prints "topic count" lines.
const pythonReader = `
import sys
from kafka import KafkaConsumer, TopicPartition
servers, topics = sys.argv[1], sys.argv[2:]
c = KafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False, isolation_level="read_committed")
parts = [TopicPartition(t, p) for t in topics for p in sorted(c.partitions_for_topic(t) or [])]
c.assign(parts)
c.seek_to_beginning(*parts)
ends = c.end_offsets(parts)
counts = {t: 0 for t in topics}
left = {tp for tp in parts if ends[tp] > 0}
while left:
    got = c.poll(timeout_ms=10000)
    if not got and all(c.position(tp) >= ends[tp] for tp in left):
        break
    if not got:
        sys.exit("no records for 10 s")
    for tp, records in got.items():
        counts[tp.topic] += len(records)
    left = {tp for tp in left if c.position(tp) < ends[tp]}
for t in topics:
    print(t, counts[t])
`

// pythonCounts reads the topics with kafka-python.
func pythonCounts(t *testing.T, python string, b kafkatest.Broker, topics map[string]int) map[string]int {
	t.Helper()
	args := []string{"-c", pythonReader, b.Bootstrap()}
	for topic := range topics {
		args = append(args, topic)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kafka-python (%s): %v\n%s", python, err, stderr.String())
	}
	counts := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		topic, n, _ := strings.Cut(line, " ")
		counts[topic], _ = strconv.Atoi(n)
	}
	return counts
}
