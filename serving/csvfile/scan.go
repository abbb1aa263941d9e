package csvfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// Limits of the CSV reader. A row beyond them is a bad row, never a
// reason to hold a whole file in memory.
const (
	// MaxRowBytes bounds a row, all its lines together.
	MaxRowBytes = 16 << 20
	// MaxRowLines bounds how many lines a quoted field may run over.
	MaxRowLines = 32
	// excerptBytes bounds the text of a bad line that its detail quotes.
	excerptBytes = 120
)

// badRow says where and how a row breaks the CSV rules.
type badRow struct {
	Line, Col int    // where: the line and the 1-based byte in it
	Msg       string // what
	Start     int    // the line the row starts on: the line that is rejected
	Text      []byte // the start line's first bytes (at most excerptBytes + 1)
}

func (b *badRow) Error() string { return fmt.Sprintf("%d:%d: %s", b.Line, b.Col, b.Msg) }

// scanner splits a CSV file into rows as encoding/csv does (RFC 4180
// quoting, no lazy quotes; blank lines are skipped; a line may end in
// \r\n; a quoted field may run over several lines), except that a row that
// breaks the quoting rules does not end the file. It costs the line the row
// starts on, and nothing else: that line comes back as a bad row and
// reading starts again at the line after it, even when the broken row had
// run onto later lines. A row is broken when it has
//
//   - a quote inside a field that does not start with one (`Joe"s Diner`);
//   - anything but a comma, a quote or the line's end right after the
//     closing quote of a quoted field (`"Joe"s`);
//   - a quoted field that is still open at the end of the file, or after
//     running over MaxRowLines lines;
//   - more than MaxRowBytes bytes;
//   - several lines (a quoted field with line breaks in it) and a field
//     count other than the header's (when the header's count is known):
//     a stray quote closed by a quote in a later row, not a real field.
//
// A bad row's position is where it breaks, or, for a row that ran onto
// later lines, the quote on its first line that opened the field running
// over them (the message then says where it broke).
//
// Each line is thus in exactly one row (good, with the wrong field count,
// or bad), or blank. Re-reading after a row that ran onto later lines goes
// back with Seek; at most MaxRowLines lines are read again per bad row.
type scanner struct {
	src  io.ReadSeeker
	r    *bufio.Reader
	off  int64 // offset in src of the next byte r returns
	line int   // number of the last line read

	wantFields int // the header's field count (0: not checked)

	// The current row.
	start   int     // the line it starts on
	buf     []byte  // its fields, unquoted, back to back
	ends    []int   // where each field ends in buf
	bad     *badRow // non-nil when the row is broken
	spanCol int     // where the row's first field with a line break opens
	head    []byte  // the start line's first bytes, for a bad row's excerpt

	long []byte // a line longer than bufio's buffer is assembled here
}

func newScanner(src io.ReadSeeker) *scanner {
	return &scanner{src: src, r: bufio.NewReaderSize(src, 1<<20)}
}

// readLine reads the next line. It returns the line without its line end
// (\n or \r\n; a \r just before the end of the file is dropped too, as
// encoding/csv does), whether the line ended in \n, and false at the end
// of the file. A line longer than room bytes comes back cut to room+1
// bytes: the rest is read and dropped.
func (s *scanner) readLine(room int) (content []byte, nl, ok bool, err error) {
	room = max(room, 0)
	from := s.off
	chunk, err := s.r.ReadSlice('\n')
	s.off += int64(len(chunk))
	content = chunk
	if errors.Is(err, bufio.ErrBufferFull) {
		s.long = append(s.long[:0], chunk[:min(len(chunk), room+1)]...)
		for errors.Is(err, bufio.ErrBufferFull) {
			chunk, err = s.r.ReadSlice('\n')
			s.off += int64(len(chunk))
			if keep := min(len(chunk), room+1-len(s.long)); keep > 0 {
				s.long = append(s.long, chunk[:keep]...)
			}
		}
		content = s.long
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, false, false, err
	}
	if s.off == from {
		return nil, false, false, nil
	}
	s.line++
	nl = len(chunk) > 0 && chunk[len(chunk)-1] == '\n'
	if n := len(content); nl && n > 0 && content[n-1] == '\n' {
		content = content[:n-1]
	}
	if n := len(content); n > 0 && content[n-1] == '\r' {
		content = content[:n-1]
	}
	return content, nl, true, nil
}

// next reads the next row. It returns false at the end of the file; an
// error is one of reading. After it, the row's fields are field(0..n-1),
// or bad says why the row is broken.
func (s *scanner) next() (bool, error) {
	s.buf, s.ends, s.bad, s.spanCol = s.buf[:0], s.ends[:0], nil, 0
	var (
		line []byte
		nl   bool
	)
	for { // skip blank lines
		var ok bool
		var err error
		if line, nl, ok, err = s.readLine(MaxRowBytes); err != nil || !ok {
			return false, err
		}
		if len(line) > 0 {
			break
		}
	}
	s.start = s.line
	s.head = append(s.head[:0], line[:min(len(line), excerptBytes+1)]...)
	resume := s.off // where the line after the start line begins
	if len(line) > MaxRowBytes {
		s.fail(s.line, MaxRowBytes+1, fmt.Sprintf("the row is longer than %d bytes", MaxRowBytes))
		return true, nil
	}
	col := 1 // of line[0] in its line
	for {
		if len(line) == 0 || line[0] != '"' {
			// A field without quotes: up to the next comma or the line end.
			i := bytes.IndexByte(line, ',')
			field := line
			if i >= 0 {
				field = line[:i]
			}
			if j := bytes.IndexByte(field, '"'); j >= 0 {
				return s.failBack(resume, s.line, col+j, `a quote inside a field that does not start with one (bare ")`)
			}
			s.buf = append(s.buf, field...)
			s.ends = append(s.ends, len(s.buf))
			if i < 0 {
				break
			}
			line, col = line[i+1:], col+i+1
			continue
		}
		// A quoted field: up to the closing quote, over lines if need be.
		openLine, openCol := s.line, col
		line, col = line[1:], col+1
		for {
			i := bytes.IndexByte(line, '"')
			if i < 0 {
				s.buf = append(s.buf, line...)
				if !nl {
					return s.failBack(resume, openLine, openCol, "the quoted field that starts here is never closed: the file ends first")
				}
				if s.line-s.start+1 >= MaxRowLines {
					return s.failBack(resume, openLine, openCol, fmt.Sprintf("the quoted field that starts here is still open after %d lines", MaxRowLines))
				}
				s.buf = append(s.buf, '\n')
				if s.line == s.start {
					s.spanCol = openCol // the first field with a line break starts on the row's first line
				}
				var ok bool
				var err error
				line, nl, ok, err = s.readLine(MaxRowBytes - len(s.buf))
				if err != nil {
					return false, err
				}
				if !ok {
					return s.failBack(resume, openLine, openCol, "the quoted field that starts here is never closed: the file ends first")
				}
				if len(s.buf)+len(line) > MaxRowBytes {
					return s.failBack(resume, s.line, 1, fmt.Sprintf("the row is longer than %d bytes", MaxRowBytes))
				}
				col = 1
				continue
			}
			s.buf = append(s.buf, line[:i]...)
			line, col = line[i+1:], col+i+1
			if len(line) > 0 && line[0] == '"' { // "" is a quote
				s.buf = append(s.buf, '"')
				line, col = line[1:], col+1
				continue
			}
			break
		}
		s.ends = append(s.ends, len(s.buf))
		if len(line) == 0 {
			break
		}
		if line[0] != ',' {
			return s.failBack(resume, s.line, col-1, "text after the closing quote of a quoted field")
		}
		line, col = line[1:], col+1
	}
	if s.line > s.start && s.wantFields > 0 && len(s.ends) != s.wantFields {
		return s.failBack(resume, s.start, s.spanCol, fmt.Sprintf(
			"the quoted field that starts here runs over lines %d-%d and the row then has %d fields, not %d: a stray quote, not a field with line breaks",
			s.start, s.line, len(s.ends), s.wantFields))
	}
	return true, nil
}

// fail marks the current row as broken at line:col.
func (s *scanner) fail(line, col int, msg string) {
	s.bad = &badRow{Line: line, Col: col, Msg: msg, Start: s.start, Text: s.head}
	s.buf, s.ends = s.buf[:0], s.ends[:0]
}

// failBack marks the current row as broken and, when it ran onto later
// lines, goes back to read them again from resume, the offset of the line
// after the row's first. When the broken row is a single line, the rest
// of that line is skipped.
func (s *scanner) failBack(resume int64, line, col int, msg string) (bool, error) {
	if s.line == s.start {
		s.fail(line, col, msg)
		return true, nil
	}
	// The row ran onto later lines through a quoted field: name the quote
	// that opened it, on the line that is rejected.
	if line != s.start || col != s.spanCol {
		msg = fmt.Sprintf("the quoted field that starts here runs on to line %d and breaks there (column %d: %s)", line, col, msg)
	}
	s.fail(s.start, s.spanCol, msg)
	if _, err := s.src.Seek(resume, io.SeekStart); err != nil {
		return false, fmt.Errorf("go back to line %d: %w", s.start+1, err)
	}
	s.r.Reset(s.src)
	s.off, s.line = resume, s.start
	return true, nil
}

// fields returns the number of fields of the current (good) row.
func (s *scanner) fields() int { return len(s.ends) }

// field returns field i of the current row (valid until the next call).
func (s *scanner) field(i int) []byte {
	from := 0
	if i > 0 {
		from = s.ends[i-1]
	}
	return s.buf[from:s.ends[i]]
}

// strings appends the fields of the current row to dst as strings, with
// one allocation for the row.
func (s *scanner) strings(dst []string) []string {
	all := string(s.buf)
	from := 0
	for _, end := range s.ends {
		dst = append(dst, all[from:end])
		from = end
	}
	return dst
}

// quoteLine quotes the start of a line for a message: at most n bytes (cut
// at a character boundary, "…" after the quote when cut), invalid UTF-8
// and control characters escaped, so that it is always valid UTF-8 and at
// most 4n+5 characters long.
func quoteLine(b []byte, n int) string {
	if len(b) <= n {
		return strconv.Quote(string(b))
	}
	cut := n
	for cut > 0 && cut > n-utf8.UTFMax && !utf8.RuneStart(b[cut]) {
		cut--
	}
	return strconv.Quote(string(b[:cut])) + "…"
}
