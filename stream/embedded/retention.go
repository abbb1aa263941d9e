package embedded

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe/stream"
)

// Retention on the embedded broker.
//
// kfake applies retention.ms and retention.bytes (a topic's, else the
// broker's log.retention.*) to every topic, compacted ones too, on a
// timer (log.cleaner.backoff.ms, one hour by default, running only while
// some topic is compacted or has a retention config of its own) or when
// asked (Cluster.ApplyRetention): it moves a partition's start past the
// batches older than retention.ms (by their timestamps) and past the
// oldest ones while the partition holds more than retention.bytes, and
// deletes a segment file (kept in memory without a data directory) once
// all of it is below the start. It rolls segments by segment.bytes only
// (not segment.ms). It ignores open transactions when it deletes by age
// or size, and it compacts past them (which is why txpipe keeps its
// state and positions topics on the delete policy there).
//
// So the broker here sets log.retention.ms and log.retention.bytes to -1
// (nothing is deleted by a default: master data, compacted, is never
// aged out) and smaller segments (space comes back sooner), and a
// janitor, every Retention.Every, sorts the topics:
//
//   - compacted topics (the master data): left to kfake's compaction;
//   - topics created with retention.ms=-1 (kept whole on purpose: the
//     card-state topic, txpipe.producer-positions): never aged or sized
//     out. The state and positions topics, whose readers keep the last
//     value of each key as on a compacted topic, are trimmed instead:
//     their start moves up to the oldest record still needed — the
//     latest committed value of a key, a tombstone younger than
//     TombstoneHold, a record of a transaction still open — so a
//     restore reads exactly what it read before;
//   - every other topic (input, validated, dead letters, repartition,
//     outputs): gets retention.ms and retention.bytes of Retention, which
//     kfake then applies.

// Retention says how much of each topic partition the embedded broker
// keeps (of the topics it bounds: see the package documentation).
type Retention struct {
	// Time deletes records older than this (0: no bound by age).
	Time time.Duration
	// Bytes bounds each partition's size (0: no bound by size). It must
	// hold more than a validator's checkpoint interval of results
	// (--checkpoint-every, 50,000 by default, 150 to 200 bytes each).
	Bytes int64
	// SegmentBytes is the size of a log segment: space is freed a whole
	// segment at a time (0: kfake's 100 MiB).
	SegmentBytes int64
	// Every is how often retention is applied (0: only by Retain).
	Every time.Duration
}

// DefaultRetention is the embedded broker's retention: a day, or 32 MiB
// per partition, whichever is less, checked every 30 s, in 4 MiB
// segments. A day and 32 MiB are far more than the validator's checkpoint
// interval (5 minutes, or 50,000 results of 150 to 200 bytes per
// partition), so a restore finds the results it replays.
func DefaultRetention() Retention {
	return Retention{Time: 24 * time.Hour, Bytes: 32 << 20, SegmentBytes: 4 << 20, Every: 30 * time.Second}
}

// TombstoneHold is how long a trimmed topic keeps a tombstone after the
// janitor first saw it, so that a reader that had read the key's value
// before it also reads the tombstone (as Kafka's delete.retention.ms).
const TombstoneHold = 10 * time.Minute

// RetainStats says what a pass of Retain did.
type RetainStats struct {
	// Bounded are the topics that got the retention configs in this pass.
	Bounded []string
	// Deleted counts, per topic, the records deleted in this pass (by age
	// or size, or trimmed as no longer needed).
	Deleted map[string]int64
}

// keyLog follows the keys of a trimmed topic's partition: what it read
// and which records are still needed.
type keyLog struct {
	id      [16]byte               // the topic incarnation it follows
	next    int64                  // the next offset to read
	live    map[string]int64       // key → offset of its latest committed value
	dead    map[string]tombstone   // key → its latest committed record is a tombstone
	pending map[int64][]pendingRec // producer id → records of its open transaction, in order
}

type tombstone struct {
	offset int64
	seen   time.Time
}

type pendingRec struct {
	key       string
	offset    int64
	tombstone bool
}

func newKeyLog(id [16]byte, start int64) *keyLog {
	return &keyLog{id: id, next: start, live: map[string]int64{}, dead: map[string]tombstone{}, pending: map[int64][]pendingRec{}}
}

// apply takes a committed record into account.
func (k *keyLog) apply(key string, offset int64, isTombstone bool, now time.Time) {
	if isTombstone {
		delete(k.live, key)
		k.dead[key] = tombstone{offset: offset, seen: now}
		return
	}
	delete(k.dead, key)
	k.live[key] = offset
}

// record follows one record read at offset k.next.
func (k *keyLog) record(r *kgo.Record, now time.Time) {
	k.follow(r.Offset, r.Key, r.Value == nil, r.Attrs.IsControl(), r.Attrs.IsTransactional(), r.ProducerID, now)
}

// follow takes the record at offset (k.next) into account: a transaction
// marker (control; its key is a version, int16, then 0 for abort or 1 for
// commit) applies or drops its producer's open records; a record of a
// transaction waits for its marker; any other applies at once.
func (k *keyLog) follow(offset int64, key []byte, isTombstone, control, transactional bool, producer int64, now time.Time) {
	k.next = offset + 1
	switch {
	case control:
		recs := k.pending[producer]
		delete(k.pending, producer)
		if len(key) >= 4 && binary.BigEndian.Uint16(key[2:4]) == 1 {
			for _, p := range recs {
				k.apply(p.key, p.offset, p.tombstone, now)
			}
		}
	case transactional:
		k.pending[producer] = append(k.pending[producer], pendingRec{key: string(key), offset: offset, tombstone: isTombstone})
	default:
		k.apply(string(key), offset, isTombstone, now)
	}
}

// needed is the oldest offset still needed: nothing below it is the
// latest committed value of a key, a tombstone held, or part of an open
// transaction (and nothing at or after next has been looked at).
func (k *keyLog) needed(now time.Time) int64 {
	low := k.next
	for _, off := range k.live {
		low = min(low, off)
	}
	for key, t := range k.dead {
		if now.Sub(t.seen) >= TombstoneHold {
			delete(k.dead, key)
			continue
		}
		low = min(low, t.offset)
	}
	for _, recs := range k.pending {
		low = min(low, recs[0].offset)
	}
	return low
}

// topicKind is how the janitor treats a topic.
type topicKind int

const (
	kindBounded topicKind = iota // gets Retention's configs
	kindCompact                  // compacted: left to kfake
	kindKept                     // retention.ms=-1: kept whole
	kindTrimmed                  // retention.ms=-1 and last-value-per-key: trimmed
)

func classify(name string, cfg map[string]*string) topicKind {
	if v := cfg["cleanup.policy"]; v != nil && strings.Contains(*v, "compact") {
		return kindCompact
	}
	if v := cfg["retention.ms"]; v != nil && strings.TrimSpace(*v) == "-1" {
		if trimmable(name) {
			return kindTrimmed
		}
		return kindKept
	}
	return kindBounded
}

// trimmable says whether a kept-whole topic is read as the last value of
// each key (as a compacted topic): the validators' state topics and the
// producers' positions.
func trimmable(name string) bool {
	if name == stream.PositionsTopic {
		return true
	}
	input, ok := strings.CutSuffix(name, ".card-state")
	return ok && input != "" && stream.TopicsFor(input).State == name
}

// wantConfigs are the configs a bounded topic gets.
func (r Retention) wantConfigs() map[string]string {
	ms := int64(1<<63 - 1) // no bound by age; never -1, which marks a topic kept whole
	if r.Time > 0 {
		ms = r.Time.Milliseconds()
	}
	bytes := int64(-1)
	if r.Bytes > 0 {
		bytes = r.Bytes
	}
	return map[string]string{"retention.ms": strconv.FormatInt(ms, 10), "retention.bytes": strconv.FormatInt(bytes, 10)}
}

// Retain applies retention once: bounds the topics that have no
// retention of their own yet, deletes what is older or more than the
// retention allows, and trims the state and positions topics down to the
// records still needed. The janitor calls it every Retention.Every; tests
// call it directly.
func (b *Broker) Retain(ctx context.Context) (RetainStats, error) {
	b.retainMu.Lock()
	defer b.retainMu.Unlock()
	st := RetainStats{Deleted: map[string]int64{}}
	if b.ret.Time <= 0 && b.ret.Bytes <= 0 {
		return st, nil
	}
	adm := kadm.NewClient(b.admin)
	listed, err := adm.ListTopics(ctx)
	if err != nil {
		return st, fmt.Errorf("retention: list topics on %v: %w", b.Addrs(), err)
	}
	starts := map[string][]int64{}
	var trimmed []string
	want := b.ret.wantConfigs()
	for _, name := range slices.Sorted(maps.Keys(listed)) {
		info := b.c.TopicInfo(name)
		if info == nil || strings.HasPrefix(name, "__") {
			continue
		}
		switch classify(name, info.Configs) {
		case kindBounded:
			var alter []kadm.AlterConfig
			for _, k := range slices.Sorted(maps.Keys(want)) {
				if v := info.Configs[k]; v == nil || *v != want[k] {
					alter = append(alter, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: kadm.StringPtr(want[k])})
				}
			}
			if len(alter) > 0 {
				resp, err := adm.AlterTopicConfigs(ctx, alter, name)
				if err == nil {
					_, err = resp.On(name, nil)
				}
				if err != nil {
					return st, fmt.Errorf("retention: set retention.ms=%s, retention.bytes=%s on %s: %w", want["retention.ms"], want["retention.bytes"], name, err)
				}
				st.Bounded = append(st.Bounded, name)
				b.log.Info("embedded broker: topic bounded", "topic", name, "retention", b.ret.Time, "retention_bytes_per_partition", b.ret.Bytes)
			}
			starts[name] = b.startOffsets(name)
		case kindTrimmed:
			trimmed = append(trimmed, name)
		}
	}
	b.c.ApplyRetention()
	for name, before := range starts {
		for p, after := range b.startOffsets(name) {
			if p < len(before) && after > before[p] {
				st.Deleted[name] += after - before[p]
			}
		}
	}
	for _, name := range trimmed {
		n, err := b.trim(ctx, name)
		if n > 0 {
			st.Deleted[name] += n
		}
		if err != nil {
			return st, err
		}
	}
	for name, n := range st.Deleted {
		if n == 0 {
			delete(st.Deleted, name)
		}
	}
	if len(st.Deleted) > 0 {
		b.log.Info("embedded broker: retention deleted records", "deleted", st.Deleted)
	}
	return st, nil
}

func (b *Broker) startOffsets(topic string) []int64 {
	infos := b.c.PartitionInfos(topic)
	out := make([]int64, len(infos))
	for i, p := range infos {
		out[i] = p.LogStartOffset
	}
	return out
}

// trim reads what is new on a trimmed topic and moves each partition's
// start up to its oldest record still needed. It returns the records it
// deleted.
func (b *Broker) trim(ctx context.Context, topic string) (int64, error) {
	info := b.c.TopicInfo(topic)
	if info == nil {
		delete(b.logs, topic)
		return 0, nil
	}
	parts := b.c.PartitionInfos(topic)
	logs := b.logs[topic]
	if logs == nil {
		logs = map[int32]*keyLog{}
		b.logs[topic] = logs
	}
	read := map[int32]kgo.Offset{}
	ends := map[int32]int64{}
	for _, p := range parts {
		k := logs[p.Partition]
		// A new topic of the same name, records deleted by someone else
		// past what was read, or a log that went back (a data directory
		// restored from before): follow it afresh from its start.
		if k == nil || k.id != info.TopicID || k.next < p.LogStartOffset || k.next > p.HighWatermark {
			k = newKeyLog(info.TopicID, p.LogStartOffset)
			logs[p.Partition] = k
		}
		if k.next < p.HighWatermark {
			read[p.Partition] = kgo.NewOffset().At(k.next)
			ends[p.Partition] = p.HighWatermark
		}
	}
	for p := range logs {
		if int(p) >= len(parts) {
			delete(logs, p)
		}
	}
	var readErr error
	if len(read) > 0 {
		readErr = b.readKeys(ctx, topic, read, ends, logs)
	}
	// What was read counts even when the read stopped early: a log only
	// knows what it read, and trims below that.
	now := time.Now()
	var deleted int64
	for _, p := range parts {
		k := logs[p.Partition]
		if k == nil {
			continue
		}
		if low := k.needed(now); low > p.LogStartOffset {
			if err := b.c.DeleteRecords(topic, p.Partition, low); err != nil {
				return deleted, fmt.Errorf("retention: trim %s/%d to offset %d: %w", topic, p.Partition, low, err)
			}
			deleted += low - p.LogStartOffset
		}
	}
	return deleted, readErr
}

// readKeys reads partitions of topic from the given offsets up to ends,
// every record (read_uncommitted, with the transaction markers), into
// their key logs. A gap in the offsets (records deleted meanwhile) drops
// that partition's log: the next pass follows it afresh.
func (b *Broker) readKeys(ctx context.Context, topic string, from map[int32]kgo.Offset, ends map[int32]int64, logs map[int32]*keyLog) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(b.Addrs()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxBytes(16<<20),
	)
	if err != nil {
		return fmt.Errorf("retention: kafka client: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, readBound)
	defer cancel()
	left := len(ends)
	for left > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("retention: read %s (%d partitions not read to their end; the next pass goes on): %w", topic, left, err)
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			ferr = fmt.Errorf("retention: read %s/%d: %w", t, p, err)
		})
		if ferr != nil {
			return ferr
		}
		now := time.Now()
		fs.EachRecord(func(r *kgo.Record) {
			k := logs[r.Partition]
			end, reading := ends[r.Partition]
			if k == nil || !reading || r.Offset >= end {
				return
			}
			if r.Offset < k.next {
				return
			}
			if r.Offset > k.next {
				delete(logs, r.Partition)
				delete(ends, r.Partition)
				left--
				return
			}
			k.record(r, now)
			if k.next >= end {
				delete(ends, r.Partition)
				left--
			}
		})
	}
	return nil
}

// readBound bounds the reading of one trim pass.
const readBound = 2 * time.Minute

// janitor applies retention every Retention.Every until stop.
func (b *Broker) janitor(stop <-chan struct{}) {
	defer close(b.janitorDone)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // the pass in flight ends with the janitor
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	t := time.NewTicker(b.ret.Every)
	defer t.Stop()
	for {
		if _, err := b.Retain(ctx); err != nil && !errors.Is(err, context.Canceled) {
			b.log.Warn("embedded broker: retention", "err", err)
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}
