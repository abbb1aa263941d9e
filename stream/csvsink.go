package stream

import (
	"bufio"
	"container/heap"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/serving/csvfile"
)

// segmentDir holds the CSV sink's per-partition segments inside the results
// directory.
const segmentDir = ".txpipe-segments"

// csvSegment is one partition's rows, appended exactly once: the next
// offset and the committed byte length are recorded beside the rows, and a
// restart truncates the rows to that length.
type csvSegment struct {
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

// CSVSink writes the validated and dead-letter topics to per-partition
// segment files, exactly once, and merges them into
// results/stream_transactions.csv and results/rejected_transactions.csv.
type CSVSink struct {
	dir  string // results directory
	segs map[string]*csvSegment
	buf  []byte
	rec  []string
}

// NewCSVSink opens the CSV sink over a results directory.
func NewCSVSink(resultsDir string) (*CSVSink, error) {
	if err := os.MkdirAll(filepath.Join(resultsDir, segmentDir), 0o755); err != nil {
		return nil, fmt.Errorf("create segment directory: %w", err)
	}
	return &CSVSink{dir: resultsDir, segs: map[string]*csvSegment{}}, nil
}

func segName(topic string, p int32) string { return topic + "-" + strconv.Itoa(int(p)) }

// Open opens (or reopens) a partition's segment, truncating rows written
// after the last recorded position, and returns the next offset to write.
// topicID identifies this incarnation of the topic: a segment written from
// a topic since deleted and created again (a new broker) starts over.
func (s *CSVSink) Open(topic string, p int32, topicID string) (int64, error) {
	name := segName(topic, p)
	if seg, ok := s.segs[name]; ok {
		return seg.next, nil
	}
	base := filepath.Join(s.dir, segmentDir, name)
	seg := &csvSegment{pos: base + ".pos"}
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

// Close closes a partition's segment (its partition left this process).
func (s *CSVSink) Close(topic string, p int32) {
	if seg, ok := s.segs[segName(topic, p)]; ok {
		seg.rows.Close()
		delete(s.segs, segName(topic, p))
	}
}

// CloseAll closes every open segment.
func (s *CSVSink) CloseAll() {
	for name, seg := range s.segs {
		seg.rows.Close()
		delete(s.segs, name)
	}
}

// Append writes a partition's rows (results or rejected, each with its
// seq) and records next as the partition's next offset. Rows are synced
// before the position, so a crash leaves at most rows past the position,
// which the next Open truncates.
func (s *CSVSink) Append(topic string, p int32, results []txpipe.Result, rejected []txpipe.Rejected, next int64) error {
	seg, ok := s.segs[segName(topic, p)]
	if !ok {
		return fmt.Errorf("segment %s/%d is not open", topic, p)
	}
	var b strings.Builder
	w := csv.NewWriter(&b)
	for _, r := range results {
		s.rec = append(s.rec[:0], strconv.FormatInt(r.Seq, 10))
		s.rec = csvfile.AppendStreamResult(s.rec, r)
		w.Write(s.rec)
	}
	for _, r := range rejected {
		s.rec = append(s.rec[:0], strconv.FormatInt(r.Seq, 10))
		s.rec = csvfile.AppendRejected(s.rec, r)
		w.Write(s.rec)
	}
	w.Flush()
	if b.Len() > 0 {
		if _, err := seg.rows.WriteString(b.String()); err != nil {
			return fmt.Errorf("append to %s: %w", seg.rows.Name(), err)
		}
		if err := seg.rows.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", seg.rows.Name(), err)
		}
		seg.size += int64(b.Len())
	}
	seg.next = next
	pos, _ := json.Marshal(segmentPos{Next: seg.next, Length: seg.size, TopicID: seg.topicID})
	tmp := seg.pos + ".tmp"
	if err := os.WriteFile(tmp, pos, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, seg.pos); err != nil {
		return fmt.Errorf("record position %s: %w", seg.pos, err)
	}
	return nil
}

// MergeCSV merges the committed part of every segment of the validated
// topic into stream_transactions.csv (ordered by timestamp, then input
// order) and of the dead-letter topic into rejected_transactions.csv
// (ordered by input order). Both files are replaced atomically.
func MergeCSV(resultsDir string, t Topics) error {
	if err := mergeTopic(resultsDir, t.Validated, csvfile.StreamFile, csvfile.StreamColumns, func(rec []string) string {
		return rec[4] + "\x00" + pad(rec[0]) // timestamp (column 3 after the seq), then seq
	}); err != nil {
		return err
	}
	return mergeTopic(resultsDir, t.DLQ, csvfile.RejectedFile, csvfile.RejectedColumns, func(rec []string) string {
		return pad(rec[0])
	})
}

func pad(seq string) string {
	if len(seq) >= 20 {
		return seq
	}
	return strings.Repeat("0", 20-len(seq)) + seq
}

type mergeSource struct {
	r   *csv.Reader
	rec []string
	key string
}

type mergeHeap []*mergeSource

func (h mergeHeap) Len() int           { return len(h) }
func (h mergeHeap) Less(i, j int) bool { return h[i].key < h[j].key }
func (h mergeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)        { *h = append(*h, x.(*mergeSource)) }
func (h *mergeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func mergeTopic(resultsDir, topic, file string, header []string, key func([]string) string) error {
	pattern := filepath.Join(resultsDir, segmentDir, topic+"-*.pos")
	positions, err := filepath.Glob(pattern)
	if err != nil {
		return err
	}
	sort.Strings(positions)
	var h mergeHeap
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, pos := range positions {
		b, err := os.ReadFile(pos)
		if err != nil {
			return fmt.Errorf("read %s: %w", pos, err)
		}
		var sp segmentPos
		if err := json.Unmarshal(b, &sp); err != nil {
			return fmt.Errorf("read %s: %w", pos, err)
		}
		f, err := os.Open(strings.TrimSuffix(pos, ".pos") + ".csv")
		if err != nil {
			return fmt.Errorf("open segment: %w", err)
		}
		files = append(files, f)
		src := &mergeSource{r: csv.NewReader(bufio.NewReaderSize(io.LimitReader(f, sp.Length), 64<<10))}
		src.r.FieldsPerRecord = -1
		if ok, err := src.advance(key, f.Name()); err != nil {
			return err
		} else if ok {
			h = append(h, src)
		}
	}
	heap.Init(&h)
	w, err := csvfile.Create(filepath.Join(resultsDir, file), header)
	if err != nil {
		return err
	}
	for h.Len() > 0 {
		src := h[0]
		if err := w.Write(src.rec[1:]); err != nil {
			w.Abort()
			return err
		}
		ok, err := src.advance(key, "")
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

func (s *mergeSource) advance(key func([]string) string, name string) (bool, error) {
	rec, err := s.r.Read()
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read segment %s: %w", name, err)
	}
	if len(rec) < 2 {
		return false, fmt.Errorf("read segment %s: short row", name)
	}
	s.rec, s.key = rec, key(rec)
	return true, nil
}
