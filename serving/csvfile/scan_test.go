package csvfile

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/txpipe/txpipe"
)

var txHeader = strings.Join(txpipe.TransactionColumns, ",") + "\n"

// txLine is a good transactions.csv row with id n.
func txLine(n int) string {
	return fmt.Sprintf("%d,26,Shop %d,2025-04-01 01:%02d:00,1.00,\"1 Main St, Albany, NY 12207\",purchase,\n", n, n, n%60)
}

type gotRow struct {
	line   int
	reject txpipe.RejectReason
	id     string
	detail string
}

func readTransactions(t *testing.T, body string) []gotRow {
	t.Helper()
	path := filepath.Join(t.TempDir(), TransactionsFile)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := OpenTransactions(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []gotRow
	for {
		row, err := r.Next()
		if errors.Is(err, io.EOF) {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, gotRow{row.Line, row.Reject, row.Raw.TransactionID, row.Detail})
	}
}

// TestTransactionReaderBadCSV: a row that breaks the CSV rules costs
// exactly its first line, which comes back as bad_csv naming
// file:line:column and quoting the line; reading starts again at the next
// line, wherever the broken row would have ended.
func TestTransactionReaderBadCSV(t *testing.T) {
	good := func(from, to int) string {
		var b strings.Builder
		for i := from; i <= to; i++ {
			b.WriteString(txLine(i))
		}
		return b.String()
	}
	type want struct {
		line   int
		reject txpipe.RejectReason
		where  string // in the detail of a rejected row
	}
	ok := func(lines ...int) []want {
		var w []want
		for _, l := range lines {
			w = append(w, want{line: l})
		}
		return w
	}
	cat := func(ws ...[]want) []want { return slices.Concat(ws...) }
	bad := func(line int, where string) []want {
		return []want{{line, txpipe.RejectBadCSV, where}}
	}
	for _, tc := range []struct {
		name string
		body string
		want []want
	}{
		{"bare quote", good(1, 2) + "3,26,Joe\"s Diner,2025-04-01 01:03:00,1.00,x NY 12207,purchase,\n" + good(4, 5),
			cat(ok(2, 3), bad(4, "transactions.csv:4:9: a quote inside a field"), ok(5, 6))},
		{"unterminated quote in the last row", good(1, 2) + "3,26,\"Joe's Diner,2025-04-01 01:03:00,1.00,x NY 12207,purchase,\n",
			cat(ok(2, 3), bad(4, "transactions.csv:4:6: the quoted field that starts here is never closed"))},
		{"unterminated quote in the last row, no newline", good(1, 2) + "3,26,\"Joe's Diner,2025-04-01 01:03:00,1.00,x NY 12207,purchase,",
			cat(ok(2, 3), bad(4, "transactions.csv:4:6: the quoted field that starts here is never closed"))},
		{"unterminated quote midway, no quote after it", good(1, 1) + "2,26,\"Joe,2025-04-01 01:02:00,1.00,x 12207,purchase,\n" + strings.ReplaceAll(good(3, 5), `"1 Main St, Albany, NY 12207"`, "Albany NY 12207"),
			cat(ok(2), bad(3, "transactions.csv:3:6: the quoted field that starts here is never closed"), ok(4, 5, 6))},
		{"unterminated quote midway, closed by the next row's quote", good(1, 1) + "2,26,\"Joe,2025-04-01 01:02:00,1.00,x 12207,purchase,\n" + good(3, 5),
			cat(ok(2), bad(3, "transactions.csv:3:6: the quoted field that starts here runs on to line 4 and breaks there (column 38: text after the closing quote"), ok(4, 5, 6))},
		{"stray quote closed by a later stray quote", good(1, 1) + "2,26,\"Joe,2025-04-01 01:02:00,1.00,x 12207,purchase,\n" + "3,26,Bob\",2025-04-01 01:03:00,1.00,x 12207\n" + good(4, 4),
			cat(ok(2), bad(3, "transactions.csv:3:6: the quoted field that starts here runs over lines 3-4"), bad(4, "transactions.csv:4:9: a quote inside"), ok(5))},
		{"text after the closing quote", good(1, 1) + "2,26,\"Joe\"s,2025-04-01 01:02:00,1.00,x 12207,purchase,\n" + good(3, 3),
			cat(ok(2), bad(3, "transactions.csv:3:10: text after the closing quote"), ok(4))},
		// The one ambiguity CSV leaves: a stray quote closed by a stray
		// quote on a later line, with the header's field count in all, is
		// a field with a line break, as any CSV reader reads it.
		{"stray quotes that make a row of the header's field count", good(1, 1) + "2,26,\"Joe,2025-04-01 01:02:00,1.00,x 12207,purchase,\n" + "3,26,Bob\",2025-04-01 01:03:00,1.00,x 12207,purchase,\n" + good(4, 4),
			ok(2, 3, 5)},
		{"a field with a line break is one row", good(1, 1) + "2,26,\"Joe's\nDiner\",2025-04-01 01:02:00,1.00,x 12207,purchase,\n" + good(3, 3),
			ok(2, 3, 5)},
		{"field count differs, one line", good(1, 1) + "2,26,Joe\n" + good(3, 3),
			cat(ok(2), []want{{3, txpipe.RejectFieldCount, "the row has 3 fields, the header 8"}}, ok(4))},
		{"blank lines and CRLF", "\r\n" + strings.ReplaceAll(good(1, 2), "\n", "\r\n") + "\r\n\n" + good(3, 3),
			ok(3, 4, 7)},
		{"a quoted field open for too many lines", good(1, 1) + "2,26,\"Joe" + strings.Repeat("\nx", MaxRowLines+3) + "\",2025,1,x,y,\n" + good(3, 3),
			slices.Concat(ok(2), bad(3, fmt.Sprintf("still open after %d lines", MaxRowLines)), func() []want {
				var w []want // every "x" line is a row of one field; the last one has a bare quote
				for l := 4; l <= 3+MaxRowLines+2; l++ {
					w = append(w, want{l, txpipe.RejectFieldCount, "the row has 1 fields"})
				}
				return w
			}(), bad(3+MaxRowLines+3, "a quote inside"), ok(3+MaxRowLines+4))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := readTransactions(t, txHeader+tc.body)
			if len(got) != len(tc.want) {
				t.Fatalf("%d rows, want %d:\n%+v", len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				g := got[i]
				if g.line != w.line || g.reject != w.reject || !strings.Contains(g.detail, w.where) {
					t.Errorf("row %d: line %d %q %q; want line %d %q with %q", i, g.line, g.reject, g.detail, w.line, w.reject, w.where)
				}
				if g.reject == txpipe.RejectBadCSV {
					if !strings.Contains(g.detail, fmt.Sprintf("line %d reads \"", g.line)) {
						t.Errorf("row %d: detail %q does not quote line %d", i, g.detail, g.line)
					}
					if n := len([]rune(g.detail)); n > 1024 {
						t.Errorf("row %d: detail of %d characters does not fit the rejected table", i, n)
					}
				}
			}
		})
	}
}

// TestBadCSVRowKeepsItsIDs: a broken row's leading ids, when plain
// numbers, stay with it; its detail is bounded however long the line.
func TestBadCSVRowKeepsItsIDs(t *testing.T) {
	long := strings.Repeat("é", 5000)
	got := readTransactions(t, txHeader+"77,26,Joe\"s "+long+",2025-04-01 01:02:00,1.00,x 12207,purchase,\n")
	if len(got) != 1 || got[0].reject != txpipe.RejectBadCSV || got[0].id != "77" {
		t.Fatalf("rows %+v", got)
	}
	if n := len(got[0].detail); n > 600 || !strings.HasSuffix(got[0].detail, "…") {
		t.Fatalf("detail of %d bytes: %q", n, got[0].detail)
	}
}

// TestTransactionReaderLongRow: a row longer than MaxRowBytes is bad_csv
// and is not held in memory; the next row is read.
func TestTransactionReaderLongRow(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a file of 17 MB")
	}
	body := txHeader + txLine(1) + "2,26," + strings.Repeat("m", MaxRowBytes) + ",2025-04-01 01:02:00,1.00,x 12207,purchase,\n" + txLine(3)
	got := readTransactions(t, body)
	if len(got) != 3 || got[0].reject != "" || got[1].reject != txpipe.RejectBadCSV || got[2].reject != "" || got[2].line != 4 {
		t.Fatalf("rows %+v", got)
	}
	if !strings.Contains(got[1].detail, "longer than") {
		t.Fatalf("detail %q", got[1].detail)
	}
}

// TestMasterBadCSV: in a master file a broken row stops the load with
// file:line:column.
func TestMasterBadCSV(t *testing.T) {
	cust := strings.Replace(goodCustomers, "2,Bob,", "2,Bo\"b,", 1)
	_, err := ReadMaster(writeDataset(t, cust, goodTypes, goodCards))
	var ce *Error
	if !errors.As(err, &ce) || !errors.Is(err, ErrMalformed) || ce.Line != 3 || ce.Col != 5 {
		t.Fatalf("ReadMaster = %v", err)
	}
	if !strings.Contains(err.Error(), "customers.csv:3:5: malformed CSV") {
		t.Fatalf("message %q", err)
	}
}

// scanRows reads body with the scanner as a transactions file is read
// (the header's field count known) and returns every row: its first line,
// its fields (nil for a broken row).
func scanRows(t *testing.T, body []byte) (header []string, rows []scanned) {
	sc := newScanner(bytes.NewReader(body))
	for first := true; ; first = false {
		ok, err := sc.next()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if !ok {
			return header, rows
		}
		r := scanned{line: sc.start}
		if sc.bad == nil {
			r.fields = sc.strings([]string{})
		} else if sc.bad.Start != sc.start || sc.bad.Line < sc.start {
			t.Fatalf("bad row %+v for a row starting on line %d", sc.bad, sc.start)
		}
		if first {
			if r.fields == nil {
				return nil, nil
			}
			header = r.fields
			sc.wantFields = len(header)
			continue
		}
		rows = append(rows, r)
	}
}

type scanned struct {
	line   int
	fields []string
}

// FuzzTransactionRows checks the scanner on any input: it never fails or
// panics; every line that is not blank is in exactly one row, in order
// (a good row covers its start line and one more per line break in its
// fields; a broken row its start line only); and a file that
// encoding/csv reads gives encoding/csv's rows, unless a row with a line
// break in a field has the wrong field count (the scanner takes that for
// a stray quote) or a quoted field runs over more than MaxRowLines lines.
func FuzzTransactionRows(f *testing.F) {
	f.Add([]byte("a,b,c\n1,2,3\n"))
	f.Add([]byte("a,b\n1,\"x\ny\"\n2,Joe\"s\n3,\"open\n4,5\n"))
	f.Add([]byte("a,b\r\n\r\n1,\"a\"\"b\"\r\n\"x\"y,2\n\"\n"))
	f.Add([]byte("a\n\"\n\"\n\"\"\"\n"))
	f.Add([]byte(txHeader + "1,26,\"Joe,2025,1,x,y,\n2,26,Bob\",2025,1,x,y,\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		header, rows := scanRows(t, body)
		if header == nil {
			return
		}
		// The lines that are not blank, numbered from 1.
		lines := strings.Split(string(body), "\n")
		if lines[len(lines)-1] == "" {
			lines = lines[:len(lines)-1]
		}
		blank := func(l int) bool { return strings.TrimSuffix(lines[l-1], "\r") == "" }
		covered := make([]bool, len(lines)+1)
		firstRowLine := 1
		for blank(firstRowLine) {
			firstRowLine++
		}
		headerLines := 1 + strings.Count(strings.Join(header, ","), "\n")
		for l := firstRowLine; l < firstRowLine+headerLines; l++ {
			covered[l] = true
		}
		last := firstRowLine + headerLines - 1
		for _, r := range rows {
			if r.line <= last {
				t.Fatalf("row at line %d after line %d", r.line, last)
			}
			n := 1
			if r.fields != nil {
				n += strings.Count(strings.Join(r.fields, ","), "\n")
			}
			for l := r.line; l < r.line+n; l++ {
				if l > len(lines) || covered[l] {
					t.Fatalf("line %d in two rows (or past the end)", l)
				}
				covered[l] = true
			}
			last = r.line + n - 1
		}
		for l := 1; l <= len(lines); l++ {
			if !covered[l] && !blank(l) {
				t.Fatalf("line %d (%q) is in no row", l, lines[l-1])
			}
		}

		// Agreement with encoding/csv.
		cr := csv.NewReader(bytes.NewReader(body))
		cr.FieldsPerRecord = -1
		recs, err := cr.ReadAll()
		if err != nil || len(recs) == 0 {
			return
		}
		for _, rec := range recs {
			breaks := strings.Count(strings.Join(rec, ","), "\n")
			if breaks >= MaxRowLines-1 || breaks > 0 && len(rec) != len(recs[0]) {
				return // beyond the scanner's limit, or taken for a stray quote
			}
		}
		if !slices.Equal(header, recs[0]) || len(rows) != len(recs)-1 {
			t.Fatalf("header %q and %d rows; encoding/csv %q and %d", header, len(rows), recs[0], len(recs)-1)
		}
		for i, r := range rows {
			if !slices.Equal(r.fields, recs[i+1]) {
				t.Fatalf("row %d: %q; encoding/csv %q", i, r.fields, recs[i+1])
			}
		}
	})
}
