package batch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/serving/csvfile"
)

// The fields of a result row the batch reads, by role.
const (
	fID = iota
	fCard
	fMerchant
	fTimestamp
	fAmount
	fLocation
	fType
	fRelated
	fStatus
	fPending
	fDecline
	fPartition
	fOffset
	numFields
)

// fieldNames are the columns of the roles, in role order.
var fieldNames = [numFields]string{"transaction_id", "card_id", "merchant_name", "timestamp", "amount", "location",
	"transaction_type", "related_transaction_id", "status", "pending_balance", "decline_reason", "kafka_partition", "kafka_offset"}

// requiredFields are the roles csvfile.ReadResults requires a column of
// (decline_reason and the position are optional).
const requiredFields = fDecline

// csvLineMax is the longest line the plain reader takes (and its buffer's
// size); a longer one is left to csvfile.ReadResults.
const csvLineMax = 1 << 20

// readStreamCSV streams results/stream_transactions.csv in file order (the
// order the stream sink wrote, which is event order) into records; seq is
// the line number. It reads what csvfile.ReadResults reads, as it reads
// it, but straight from the file's bytes: rows in the plain shape (one
// line, fields quoted the RFC 4180 way, the header's number of fields,
// values in the forms the sink writes) go to the builder without a string
// or a txpipe.Result each. At the first row that is not plain the rest of
// the file is read by csvfile.ReadResults itself, which then also words
// any error.
func readStreamCSV(path string, b *txBuilder, cut cutoffs, emit emitFunc) error {
	from, err := readPlainCSV(path, b, cut, emit)
	if err != nil {
		return err
	}
	if from > 0 {
		if err := readResultsFrom(path, from, b, cut, emit); err != nil {
			return err
		}
	}
	if rec := b.newRecord(); rec != nil {
		return emit(rec)
	}
	return nil
}

// streamReader reads the stream file into records in a goroutine of its
// own, which hands them over in order.
type streamReader struct {
	ch     chan arrow.Record
	cut    cutoffs // complete once ch is closed
	err    error   // set before ch is closed
	cancel context.CancelFunc
}

// startStreamCSV starts reading path (readStreamCSV) into records of
// batchRows rows.
func startStreamCSV(ctx context.Context, path string, mem memory.Allocator, batchRows int) *streamReader {
	ctx, cancel := context.WithCancel(ctx)
	s := &streamReader{ch: make(chan arrow.Record, 2), cut: cutoffs{}, cancel: cancel}
	go func() {
		defer close(s.ch)
		b := newTxBuilder(mem, batchRows)
		defer b.release()
		s.err = readStreamCSV(path, b, s.cut, func(rec arrow.Record) error {
			select {
			case s.ch <- rec:
				return nil
			case <-ctx.Done():
				rec.Release()
				return ctx.Err()
			}
		})
	}()
	return s
}

// each hands every record to emit, in order, and returns the first error
// of either.
func (s *streamReader) each(emit emitFunc) error {
	for rec := range s.ch {
		if err := emit(rec); err != nil {
			s.stop()
			return err
		}
	}
	return s.err
}

// stop ends the reading and releases the records not handed over; the
// goroutine has ended when it returns.
func (s *streamReader) stop() {
	s.cancel()
	for rec := range s.ch {
		rec.Release()
	}
}

// errStop ends csvfile.ReadResults early with an error that is not the
// file's.
type errStop struct{ err error }

func (e errStop) Error() string { return e.err.Error() }

// readResultsFrom reads the rows of path from line from on with
// csvfile.ReadResults.
func readResultsFrom(path string, from int, b *txBuilder, cut cutoffs, emit emitFunc) error {
	err := csvfile.ReadResults(path, func(r txpipe.Result, line int) error {
		if line < from {
			return nil // read by the plain reader
		}
		b.appendResult(&r)
		cut.add(r.Pos)
		if b.full() {
			if err := emit(b.newRecord()); err != nil {
				return errStop{err}
			}
		}
		return nil
	})
	var stop errStop
	if errors.As(err, &stop) {
		return stop.err
	}
	if err != nil {
		return fmt.Errorf("read %w", err)
	}
	return nil
}

// lineReader returns the lines of a file from a buffer of its own.
type lineReader struct {
	f          *os.File
	buf        []byte
	start, end int // buf[start:end] is not read yet
	eof        bool
	err        error
}

// next returns the next line without its line end ("\n" or "\r\n"); ok is
// false at the end of the file, on an error (r.err) and for a line longer
// than the buffer.
func (r *lineReader) next() (line []byte, ok bool) {
	for {
		if i := bytes.IndexByte(r.buf[r.start:r.end], '\n'); i >= 0 {
			line = r.buf[r.start : r.start+i]
			r.start += i + 1
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			return line, true
		}
		if r.eof {
			if r.start == r.end {
				return nil, false
			}
			line, r.start = r.buf[r.start:r.end], r.end
			return line, true
		}
		if r.start == 0 && r.end == len(r.buf) {
			return nil, false // longer than the buffer
		}
		r.end = copy(r.buf, r.buf[r.start:r.end])
		r.start = 0
		for r.end < len(r.buf) && !r.eof {
			n, err := r.f.Read(r.buf[r.end:])
			r.end += n
			if errors.Is(err, io.EOF) {
				r.eof = true
			} else if err != nil {
				r.err = err
				return nil, false
			}
		}
	}
}

// rowSplitter splits plain CSV lines into the fields of their roles.
type rowSplitter struct {
	roles  []int8 // per column of the file: its role, -1 for none
	fields [numFields][]byte
	esc    []byte // unquoted fields with doubled quotes
}

// split splits line into s.fields; false when the line is not plain: a
// quoted field that does not end on the line or has anything but a comma
// after its closing quote, a quote in an unquoted field, or a number of
// fields other than the header's.
func (s *rowSplitter) split(line []byte) bool {
	if cap(s.esc) < len(line) {
		s.esc = make([]byte, 0, 2*len(line))
	}
	esc := s.esc[:0] // never grows beyond len(line): the fields stay valid
	col := 0
	for {
		if col >= len(s.roles) {
			return false
		}
		var field []byte
		if len(line) > 0 && line[0] == '"' {
			line = line[1:]
			q := bytes.IndexByte(line, '"')
			if q < 0 {
				return false // continues on the next line
			}
			if q+1 < len(line) && line[q+1] == '"' {
				start := len(esc)
				for {
					esc = append(esc, line[:q+1]...) // up to one quote of the pair
					line = line[q+2:]
					q = bytes.IndexByte(line, '"')
					if q < 0 {
						return false
					}
					if q+1 >= len(line) || line[q+1] != '"' {
						break
					}
				}
				esc = append(esc, line[:q]...)
				field = esc[start:]
			} else {
				field = line[:q]
			}
			line = line[q+1:]
			if len(line) > 0 && line[0] != ',' {
				return false
			}
		} else {
			c := bytes.IndexByte(line, ',')
			if c < 0 {
				c = len(line)
			}
			field = line[:c]
			if bytes.IndexByte(field, '"') >= 0 {
				return false
			}
			line = line[c:]
		}
		if r := s.roles[col]; r >= 0 {
			s.fields[r] = field
		}
		col++
		if len(line) == 0 {
			return col == len(s.roles)
		}
		line = line[1:] // the comma
	}
}

// header reads the header as csvfile's tables do: names trimmed of
// spaces and a byte order mark, the last of equal names counting. It
// returns false when a column ReadResults requires is missing.
func (s *rowSplitter) header(line []byte) bool {
	var names []string
	for {
		c := bytes.IndexByte(line, ',')
		if c < 0 {
			names = append(names, string(line))
			break
		}
		names = append(names, string(line[:c]))
		line = line[c+1:]
	}
	var pos [numFields]int
	for r := range pos {
		pos[r] = -1
	}
	for i, n := range names {
		n = strings.TrimSpace(strings.TrimPrefix(n, "\ufeff"))
		for r, name := range fieldNames {
			if n == name {
				pos[r] = i
			}
		}
	}
	s.roles = make([]int8, len(names))
	for i := range s.roles {
		s.roles[i] = -1
	}
	for r, i := range pos {
		if i < 0 && r < requiredFields {
			return false
		}
		if i >= 0 {
			s.roles[i] = int8(r)
		}
	}
	return true
}

// readPlainCSV reads the plain rows at the head of path (usually all of
// them) into b and returns the line of the first row it left, 0 when
// none. A header that is not plain, or a file that cannot be opened, is
// left whole (line 1) to csvfile.ReadResults.
func readPlainCSV(path string, b *txBuilder, cut cutoffs, emit emitFunc) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 1, nil
	}
	defer f.Close()
	r := &lineReader{f: f, buf: make([]byte, csvLineMax)}
	var s rowSplitter
	line, ok := r.next()
	if !ok || bytes.IndexByte(line, '"') >= 0 || !s.header(line) {
		return 1, nil
	}
	withPos := slices.Contains(s.roles, fPartition) && slices.Contains(s.roles, fOffset)
	// The highest offset seen per partition, for cut (partitions below
	// len(next); others go to cut at once).
	next := make([]int64, 64)
	defer func() {
		for p, o := range next {
			if o > 0 {
				cut.add(txpipe.Position{Partition: int32(p), Offset: o - 1})
			}
		}
	}()
	for n := 2; ; n++ {
		line, ok := r.next()
		if !ok {
			if r.err != nil || !r.eof || r.start != r.end {
				return n, nil // ReadResults reads (and words) the rest
			}
			return 0, nil
		}
		if len(line) == 0 {
			continue // skipped, as encoding/csv does
		}
		if !s.split(line) {
			return n, nil
		}
		pos, ok := s.position(withPos)
		if !ok || !b.appendFields(&s.fields, int64(n)) {
			return n, nil
		}
		if pos.Offset >= 0 && int(pos.Partition) < len(next) {
			next[pos.Partition] = max(next[pos.Partition], pos.Offset+1)
		} else {
			cut.add(pos)
		}
		if b.full() {
			if err := emit(b.newRecord()); err != nil {
				return 0, err
			}
		}
	}
}

// position parses the row's kafka_partition and kafka_offset as
// ReadResults does; false when it would fail.
func (s *rowSplitter) position(withPos bool) (txpipe.Position, bool) {
	p, o := s.fields[fPartition], s.fields[fOffset]
	if !withPos || len(p) == 0 && len(o) == 0 {
		return txpipe.Unpositioned, true
	}
	pv, ok1 := parseInt(p)
	ov, ok2 := parseInt(o)
	if !ok1 || !ok2 || pv < 0 || pv > 1<<31-1 || ov < 0 {
		return txpipe.Position{}, false
	}
	return txpipe.Position{Partition: int32(pv), Offset: ov}, true
}

// appendFields checks and appends a row split by rowSplitter, as
// csvfile.ReadResults and appendResult would: false, with nothing
// appended, when ReadResults would not take the row as it is.
func (b *txBuilder) appendFields(f *[numFields][]byte, seq int64) bool {
	id, ok := parseID(f[fID])
	if !ok {
		return false
	}
	card, ok := parseID(f[fCard])
	if !ok {
		return false
	}
	amount, err := parseMoney(f[fAmount])
	if err != nil {
		return false
	}
	ts, ok := parseTimestamp(f[fTimestamp])
	if !ok {
		return false
	}
	if !textFits(f[fMerchant], txpipe.MaxMerchant) || !textFits(f[fLocation], txpipe.MaxLocation) ||
		!textFits(f[fType], txpipe.MaxType) || !textFits(f[fRelated], txpipe.MaxRelatedID) {
		return false
	}
	status := statusBytes(f[fStatus])
	if status == nil {
		return false
	}
	pending, err := parseMoney(f[fPending])
	if err != nil {
		return false
	}
	b.id.append(id)
	b.card.append(card)
	b.merchant.append(f[fMerchant])
	b.ts.append(int64(ts))
	b.amount.append(int64(amount))
	b.location.append(f[fLocation])
	b.typ.append(f[fType])
	if len(f[fRelated]) == 0 {
		b.related.appendNull()
	} else {
		b.related.append(f[fRelated])
	}
	b.status.append(status)
	b.pending.append(int64(pending))
	b.decl.append(f[fDecline])
	b.seq.append(seq)
	b.rows++
	return true
}

// parseID parses a positive id as txpipe.ParseID does.
func parseID(b []byte) (int64, bool) {
	if len(b) == 0 || b[0] == '+' || b[0] == '-' {
		return 0, false
	}
	v, ok := parseInt(b)
	return v, ok && v > 0
}

// textFits says whether a text field is valid UTF-8 of at most max
// characters, as txpipe.ParseTransaction requires.
func textFits(b []byte, max int) bool {
	if len(b) <= max { // no more characters than bytes
		return utf8.Valid(b)
	}
	return utf8.Valid(b) && utf8.RuneCount(b) <= max
}
