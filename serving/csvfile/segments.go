package csvfile

import (
	"bufio"
	"bytes"
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/txpipe/txpipe"
)

// SegmentDir holds the CSV view's per-partition segments inside the
// results directory.
const SegmentDir = ".txpipe-segments"

// Segments is the CSV view of the stream: each partition of the validated
// and dead-letter topics appends its rows exactly once to a segment file,
// recording beside it the next offset and the committed byte length; a
// restart truncates the rows to that length. Merge turns the segments
// into results/stream_transactions.csv and rejected_transactions.csv.
//
// A segment row is: its kind ("r" result, "x" rejected, "a" alert, "e"
// staged event), its order key (a result's or rejected row's seq), then the
// columns of StreamColumns, RejectedColumns, AlertColumns or
// StagingColumns.
type Segments struct {
	dir  string // results directory
	segs map[string]*segment
	rec  []string
	buf  strings.Builder
}

type segment struct {
	rows    *os.File
	pos     string
	topicID string
	next    int64
	size    int64
}

type segmentPos struct {
	Next    int64  `json:"next_offset"`
	Length  int64  `json:"length"`
	TopicID string `json:"topic_id,omitempty"`
}

// NewSegments opens the CSV view over a results directory.
func NewSegments(resultsDir string) (*Segments, error) {
	if err := os.MkdirAll(filepath.Join(resultsDir, SegmentDir), 0o755); err != nil {
		return nil, fmt.Errorf("create segment directory: %w", err)
	}
	return &Segments{dir: resultsDir, segs: map[string]*segment{}}, nil
}

// Name names the view in logs.
func (s *Segments) Name() string { return "csv" }

func segName(topic string, p int32) string { return topic + "-" + strconv.Itoa(int(p)) }

// Open opens (or reopens) partitions' segments, truncating rows written
// after the last recorded position, and returns the next offset to write
// of each. topicID identifies this incarnation of the topic: a segment
// written from a topic since deleted and created again (a new broker)
// starts over.
func (s *Segments) Open(_ context.Context, topic, topicID string, partitions []int32) (map[int32]int64, error) {
	out := make(map[int32]int64, len(partitions))
	for _, p := range partitions {
		next, err := s.open(topic, p, topicID)
		if err != nil {
			return nil, err
		}
		out[p] = next
	}
	return out, nil
}

func (s *Segments) open(topic string, p int32, topicID string) (int64, error) {
	name := segName(topic, p)
	if seg, ok := s.segs[name]; ok {
		return seg.next, nil
	}
	base := filepath.Join(s.dir, SegmentDir, name)
	seg := &segment{pos: base + ".pos"}
	if b, err := os.ReadFile(seg.pos); err == nil {
		var sp segmentPos
		if err := json.Unmarshal(b, &sp); err != nil {
			return 0, fmt.Errorf("read %s: %w", seg.pos, err)
		}
		seg.next, seg.size = sp.Next, sp.Length
		if sp.TopicID != "" && topicID != "" && sp.TopicID != topicID {
			seg.next, seg.size = 0, 0 // another topic of the same name: rewrite
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("read %s: %w", seg.pos, err)
	}
	f, err := os.OpenFile(base+".csv", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return 0, fmt.Errorf("open segment: %w", err)
	}
	if err := f.Truncate(seg.size); err != nil {
		f.Close()
		return 0, fmt.Errorf("truncate %s to %d: %w", f.Name(), seg.size, err)
	}
	if _, err := f.Seek(seg.size, io.SeekStart); err != nil {
		f.Close()
		return 0, err
	}
	seg.rows, seg.topicID = f, topicID
	s.segs[name] = seg
	return seg.next, nil
}

// Close closes partitions' segments (they left this process).
func (s *Segments) Close(topic string, partitions []int32) {
	for _, p := range partitions {
		if seg, ok := s.segs[segName(topic, p)]; ok {
			seg.rows.Close()
			delete(s.segs, segName(topic, p))
		}
	}
}

// CloseAll closes every open segment.
func (s *Segments) CloseAll() {
	for name, seg := range s.segs {
		seg.rows.Close()
		delete(s.segs, name)
	}
}

// Write appends rows, each to the segment of its position, and records
// next as the next offset of each partition it names. Rows are synced
// before the position, so a crash leaves at most rows past the position,
// which the next Open truncates.
func (s *Segments) Write(_ context.Context, vb *txpipe.ViewBatch) error {
	rows := map[string]*rowBuf{}
	writer := func(topic string, p int32) (*rowBuf, error) {
		name := segName(topic, p)
		if b := rows[name]; b != nil {
			return b, nil
		}
		if _, ok := s.segs[name]; !ok {
			return nil, fmt.Errorf("segment %s/%d is not open", topic, p)
		}
		rows[name] = &rowBuf{}
		return rows[name], nil
	}
	for i := range vb.Results {
		r := &vb.Results[i]
		cw, err := writer(r.Pos.Topic, r.Pos.Partition)
		if err != nil {
			return err
		}
		s.rec = append(s.rec[:0], "r", strconv.FormatInt(r.Seq, 10))
		cw.Write(AppendStreamResult(s.rec, *r))
	}
	for i := range vb.Rejected {
		r := &vb.Rejected[i]
		cw, err := writer(r.Pos.Topic, r.Pos.Partition)
		if err != nil {
			return err
		}
		s.rec = append(s.rec[:0], "x", strconv.FormatInt(r.Seq, 10))
		cw.Write(AppendRejected(s.rec, *r))
	}
	for i := range vb.Alerts {
		a := &vb.Alerts[i]
		cw, err := writer(a.Pos.Topic, a.Pos.Partition)
		if err != nil {
			return err
		}
		s.rec = append(s.rec[:0], "a", "")
		cw.Write(AppendAlert(s.rec, *a))
	}
	for i := range vb.Events {
		e := &vb.Events[i]
		cw, err := writer(e.Pos.Topic, e.Pos.Partition)
		if err != nil {
			return err
		}
		s.rec = append(s.rec[:0], "e", "")
		cw.Write(AppendEvent(s.rec, *e))
	}
	for _, o := range vb.Next {
		seg, ok := s.segs[segName(o.Topic, o.Partition)]
		if !ok {
			return fmt.Errorf("segment %s/%d is not open", o.Topic, o.Partition)
		}
		if b := rows[segName(o.Topic, o.Partition)]; b != nil {
			if _, err := seg.rows.Write(b.b); err != nil {
				return fmt.Errorf("append to %s: %w", seg.rows.Name(), err)
			}
			if err := seg.rows.Sync(); err != nil {
				return fmt.Errorf("sync %s: %w", seg.rows.Name(), err)
			}
			seg.size += int64(len(b.b))
		}
		seg.next = o.Next
		pos, _ := json.Marshal(segmentPos{Next: seg.next, Length: seg.size, TopicID: seg.topicID})
		tmp := seg.pos + ".tmp"
		if err := os.WriteFile(tmp, pos, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", tmp, err)
		}
		if err := os.Rename(tmp, seg.pos); err != nil {
			return fmt.Errorf("record position %s: %w", seg.pos, err)
		}
	}
	return nil
}

// rowBuf collects CSV rows, encoded as encoding/csv.Writer encodes them
// (AppendField), without its per-field writes.
type rowBuf struct{ b []byte }

func (r *rowBuf) Write(rec []string) {
	for i, f := range rec {
		if i > 0 {
			r.b = append(r.b, ',')
		}
		r.b = AppendField(r.b, f)
	}
	r.b = append(r.b, '\n')
}

// Merge merges the committed part of every segment into
// stream_transactions.csv (ordered by event time, input order, then Kafka
// position) and rejected_transactions.csv (by input order, then input
// partition and position). Of the stream rows with one transaction id it
// keeps the first and makes the others rejected rows (txpipe.Duplicate).
// Both files are replaced atomically. It holds one id per stream row in
// memory (about 16 bytes each). Only the segments of topics are merged
// (the validated and dead-letter topics of one input).
func Merge(resultsDir string, topics ...string) error {
	srcs, closeAll, err := openSegments(resultsDir, topics)
	if err != nil {
		return err
	}
	defer closeAll()
	var dups [][]string
	seen := map[int64]struct{}{}
	err = mergeRows(srcs, "r", streamKey, filepath.Join(resultsDir, StreamFile), StreamColumns, func(rec []string, topic string) (bool, error) {
		id, err := strconv.ParseInt(rec[2], 10, 64)
		if err != nil {
			return false, fmt.Errorf("transaction_id %q: %w", rec[2], err)
		}
		if _, dup := seen[id]; !dup {
			seen[id] = struct{}{}
			return true, nil
		}
		d, err := duplicateRow(rec, topic)
		if err != nil {
			return false, err
		}
		dups = append(dups, d)
		return false, nil
	})
	if err != nil {
		return err
	}
	for _, s := range srcs {
		if err := s.rewind(); err != nil {
			return err
		}
	}
	extra := &sliceSource{rows: dups}
	slices.SortStableFunc(extra.rows, func(a, b []string) int { return strings.Compare(rejectedKey(a), rejectedKey(b)) })
	if err := mergeRows(append(srcs, extra), "x", rejectedKey, filepath.Join(resultsDir, RejectedFile), RejectedColumns, nil); err != nil {
		return err
	}
	// Alerts and staged events, where there are any (or were before).
	for _, v := range []struct {
		kind, file string
		cols       []string
		key        func([]string) string
	}{
		{"a", AlertsFile, AlertColumns, alertKey},
		{"e", StagingFile, StagingColumns, eventKey},
	} {
		has := false
		for _, s := range srcs {
			if err := s.rewind(); err != nil {
				return err
			}
			if fs, ok := s.(*fileSource); ok && fs.kinds[v.kind] {
				has = true
			}
		}
		if _, err := os.Stat(filepath.Join(resultsDir, v.file)); !has && err != nil {
			continue
		}
		if err := mergeRows(srcs, v.kind, v.key, filepath.Join(resultsDir, v.file), v.cols, nil); err != nil {
			return err
		}
	}
	return nil
}

// alertKey orders alerts: by the end of what they cover, card, type, then
// Kafka position.
func alertKey(rec []string) string {
	return rec[5] + "\x00" + pad(rec[3]) + "\x00" + rec[2] + "\x00" + pad(rec[len(rec)-2]) + "\x00" + pad(rec[len(rec)-1])
}

// eventKey orders staged events: when they happened, then Kafka position.
func eventKey(rec []string) string {
	return rec[4] + "\x00" + rec[len(rec)-3] + "\x00" + pad(rec[len(rec)-2]) + "\x00" + pad(rec[len(rec)-1])
}

// duplicateRow is the rejected segment row of a stream segment row that a
// view does not keep.
func duplicateRow(rec []string, topic string) ([]string, error) {
	raw := txpipe.RawTransaction{TransactionID: rec[2], CardID: rec[3], Merchant: rec[4], Timestamp: rec[5], Amount: rec[6], Location: rec[7], Type: rec[8], RelatedID: rec[9]}
	tx, reason, detail := txpipe.ParseTransaction(raw)
	if reason != "" {
		return nil, fmt.Errorf("segment row of transaction %s: %s: %s", rec[2], reason, detail)
	}
	seq, err := strconv.ParseInt(rec[1], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("segment row of transaction %s: seq %q", rec[2], rec[1])
	}
	tx.Seq = seq
	res := txpipe.Result{Transaction: tx, Status: txpipe.Status(rec[10]), DeclineReason: txpipe.DeclineReason(rec[12])}
	if res.PendingBalance, err = txpipe.ParseMoney(rec[11]); err != nil {
		return nil, fmt.Errorf("segment row of transaction %s: pending_balance: %w", rec[2], err)
	}
	p, err1 := strconv.ParseInt(rec[13], 10, 32)
	o, err2 := strconv.ParseInt(rec[14], 10, 64)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("segment row of transaction %s: no Kafka position", rec[2])
	}
	res.Pos = txpipe.Position{Topic: topic, Partition: int32(p), Offset: o}
	return append([]string{"x", rec[1]}, AppendRejected(nil, txpipe.Duplicate(&res, PositionSource(res.Pos)))...), nil
}

// PositionSource names a record by its position, as rejected rows' source
// does: topic/partition/offset.
func PositionSource(p txpipe.Position) string {
	return p.Topic + "/" + strconv.Itoa(int(p.Partition)) + "/" + strconv.FormatInt(p.Offset, 10)
}

func pad(n string) string {
	if len(n) >= 20 {
		return n
	}
	return strings.Repeat("0", 20-len(n)) + n
}

// streamKey orders stream rows: event time, seq, partition, offset.
func streamKey(rec []string) string {
	return rec[5] + "\x00" + pad(rec[1]) + "\x00" + pad(rec[len(rec)-2]) + "\x00" + pad(rec[len(rec)-1])
}

// rejectedKey orders rejected rows: seq, partition, offset.
func rejectedKey(rec []string) string {
	return pad(rec[1]) + "\x00" + pad(rec[len(rec)-2]) + "\x00" + pad(rec[len(rec)-1])
}

// rowSource is a sorted source of segment rows.
type rowSource interface {
	next(kind byte) ([]string, error) // the next row of a kind; nil at the end
	// raw is the last row's fields after its kind and key, as written
	// (CSV, with its newline), valid until next; nil when not known.
	raw() []byte
	rewind() error
	topic() string
}

type fileSource struct {
	f      *os.File
	length int64
	name   string
	t      string
	r      *bufio.Reader
	buf    []byte          // the record being read
	tail   []byte          // its fields after kind and key, with the newline
	kinds  map[string]bool // the kinds of rows seen
}

func (s *fileSource) raw() []byte { return s.tail }

func (s *fileSource) rewind() error {
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	s.r = bufio.NewReaderSize(io.LimitReader(s.f, s.length), 256<<10)
	return nil
}

// next returns the next row of kind. A merge reads every segment once per
// kind, and most rows are of another kind (staged events outnumber the
// rest): those are only scanned for their end, never split.
func (s *fileSource) next(kind byte) ([]string, error) {
	for {
		rec, err := s.record()
		if err != nil || rec == nil {
			return nil, err
		}
		if len(rec) < 2 || rec[1] != ',' {
			return nil, fmt.Errorf("read segment %s: a row without a kind", s.name)
		}
		if !s.kinds[string(rec[:1])] {
			if s.kinds == nil {
				s.kinds = map[string]bool{}
			}
			s.kinds[string(rec[:1])] = true
		}
		if rec[0] != kind {
			continue
		}
		fields, err := splitRecord(rec)
		if err != nil {
			return nil, fmt.Errorf("read segment %s: %w", s.name, err)
		}
		if len(fields) < 4 {
			return nil, fmt.Errorf("read segment %s: short row", s.name)
		}
		// Kind and key are never quoted: what follows them is the row as
		// the merged file has it, encoded by the same CSV writer.
		s.tail = nil
		if k := 2 + len(fields[1]); len(rec) > k && rec[k] == ',' && rec[2] != '"' {
			if len(s.buf) == len(rec) { // the last record had no newline
				s.buf = append(s.buf, '\n')
			}
			s.tail = s.buf[k+1 : len(rec)+1]
		}
		return fields, nil
	}
}

// record reads the bytes of one CSV record, without its newline: up to a
// newline outside quotes. nil at the end.
func (s *fileSource) record() ([]byte, error) {
	s.buf = s.buf[:0]
	quotes := 0
	for {
		line, err := s.r.ReadSlice('\n')
		s.buf = append(s.buf, line...)
		quotes += bytes.Count(line, []byte{'"'})
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case errors.Is(err, io.EOF):
			if len(s.buf) == 0 {
				return nil, nil
			}
			if quotes%2 != 0 {
				return nil, fmt.Errorf("read segment %s: a quoted field runs to the end", s.name)
			}
			return s.buf, nil
		case err != nil:
			return nil, fmt.Errorf("read segment %s: %w", s.name, err)
		}
		if quotes%2 == 0 {
			return s.buf[:len(s.buf)-1], nil
		}
	}
}

// splitRecord splits a record as encoding/csv.Writer writes them: fields
// separated by commas, a field that needs it quoted with its quotes
// doubled.
func splitRecord(rec []byte) ([]string, error) {
	n := 1
	out := make([]byte, 0, len(rec))
	var ends []int
	for i := 0; i <= len(rec); {
		if i < len(rec) && rec[i] == '"' {
			i++
			for {
				j := bytes.IndexByte(rec[i:], '"')
				if j < 0 {
					return nil, errors.New("unterminated quoted field")
				}
				out = append(out, rec[i:i+j]...)
				i += j + 1
				if i < len(rec) && rec[i] == '"' {
					out = append(out, '"')
					i++
					continue
				}
				break
			}
			if i < len(rec) && rec[i] != ',' {
				return nil, fmt.Errorf("field %d: text after its closing quote", n)
			}
		} else {
			j := bytes.IndexByte(rec[i:], ',')
			if j < 0 {
				j = len(rec) - i
			}
			if bytes.IndexByte(rec[i:i+j], '"') >= 0 {
				return nil, fmt.Errorf("field %d: a quote in an unquoted field", n)
			}
			out = append(out, rec[i:i+j]...)
			i += j
		}
		ends = append(ends, len(out))
		if i >= len(rec) {
			break
		}
		i++ // the comma
		n++
		if i == len(rec) { // a last, empty field
			ends = append(ends, len(out))
			break
		}
	}
	str := string(out)
	fields := make([]string, len(ends))
	start := 0
	for k, e := range ends {
		fields[k] = str[start:e]
		start = e
	}
	return fields, nil
}

func (s *fileSource) topic() string { return s.t }

type sliceSource struct {
	rows [][]string
	i    int
}

func (s *sliceSource) next(kind byte) ([]string, error) {
	for s.i < len(s.rows) {
		s.i++
		if rec := s.rows[s.i-1]; rec[0] != "" && rec[0][0] == kind {
			return rec, nil
		}
	}
	return nil, nil
}
func (s *sliceSource) raw() []byte   { return nil }
func (s *sliceSource) rewind() error { s.i = 0; return nil }
func (s *sliceSource) topic() string { return "" }

// openSegments opens the committed part of every segment of topics.
func openSegments(resultsDir string, topics []string) ([]rowSource, func(), error) {
	var positions []string
	for _, t := range topics {
		ps, err := filepath.Glob(filepath.Join(resultsDir, SegmentDir, t+"-*.pos"))
		if err != nil {
			return nil, nil, err
		}
		for _, p := range ps {
			base := strings.TrimSuffix(filepath.Base(p), ".pos")
			if _, err := strconv.Atoi(base[len(t)+1:]); err == nil { // not topic.other-3
				positions = append(positions, p)
			}
		}
	}
	sort.Strings(positions)
	var srcs []rowSource
	closeAll := func() {
		for _, s := range srcs {
			if f, ok := s.(*fileSource); ok {
				f.f.Close()
			}
		}
	}
	for _, pos := range positions {
		b, err := os.ReadFile(pos)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("read %s: %w", pos, err)
		}
		var sp segmentPos
		if err := json.Unmarshal(b, &sp); err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("read %s: %w", pos, err)
		}
		name := strings.TrimSuffix(pos, ".pos")
		f, err := os.Open(name + ".csv")
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("open segment: %w", err)
		}
		base := filepath.Base(name)
		topic := base[:strings.LastIndexByte(base, '-')]
		s := &fileSource{f: f, length: sp.Length, name: f.Name(), t: topic}
		srcs = append(srcs, s)
		if err := s.rewind(); err != nil {
			closeAll()
			return nil, nil, err
		}
	}
	return srcs, closeAll, nil
}

type mergeItem struct {
	src rowSource
	rec []string
	key string
}

type mergeHeap []*mergeItem

func (h mergeHeap) Len() int           { return len(h) }
func (h mergeHeap) Less(i, j int) bool { return h[i].key < h[j].key }
func (h mergeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)        { *h = append(*h, x.(*mergeItem)) }
func (h *mergeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// mergeRows merges the rows of one kind of every source, in key order,
// into a new file at path; keep (when set) says whether a row is written.
func mergeRows(srcs []rowSource, kind string, key func([]string) string, path string, header []string, keep func(rec []string, topic string) (bool, error)) error {
	advance := func(it *mergeItem) (bool, error) {
		rec, err := it.src.next(kind[0])
		if err != nil || rec == nil {
			return false, err
		}
		it.rec, it.key = rec, key(rec)
		return true, nil
	}
	var h mergeHeap
	for _, s := range srcs {
		it := &mergeItem{src: s}
		ok, err := advance(it)
		if err != nil {
			return err
		}
		if ok {
			h = append(h, it)
		}
	}
	heap.Init(&h)
	w, err := Create(path, header)
	if err != nil {
		return err
	}
	for h.Len() > 0 {
		it := h[0]
		write := true
		if keep != nil {
			if write, err = keep(it.rec, it.src.topic()); err != nil {
				w.Abort()
				return err
			}
		}
		if write {
			if raw := it.src.raw(); raw != nil {
				err = w.WriteEncoded(raw)
			} else {
				err = w.Write(it.rec[2:])
			}
			if err != nil {
				w.Abort()
				return err
			}
		}
		ok, err := advance(it)
		if err != nil {
			w.Abort()
			return err
		}
		if ok {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
	}
	return w.Commit()
}
