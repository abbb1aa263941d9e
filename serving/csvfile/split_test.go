package csvfile

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// roundTrip writes rows with encoding/csv.Writer (as Segments.Write does)
// and reads them back with a fileSource, kind by kind.
func roundTrip(t *testing.T, rows [][]string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "seg.csv")
	var b strings.Builder
	w := csv.NewWriter(&b)
	if err := w.WriteAll(rows); err != nil {
		t.Fatal(err)
	}
	var rb rowBuf // what Segments.Write encodes with: the same bytes
	for _, r := range rows {
		rb.Write(r)
	}
	if string(rb.b) != b.String() {
		t.Fatalf("rowBuf wrote %q, encoding/csv %q", rb.b, b.String())
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	src := &fileSource{f: f, length: int64(b.Len()), name: path}
	for _, kind := range []byte{'r', 'e', 'x'} {
		if err := src.rewind(); err != nil {
			t.Fatal(err)
		}
		var want [][]string
		for _, r := range rows {
			if r[0][0] == kind {
				want = append(want, r)
			}
		}
		for i := 0; ; i++ {
			got, err := src.next(kind)
			if err != nil {
				t.Fatalf("kind %c row %d: %v\n%q", kind, i, err, b.String())
			}
			if got == nil {
				if i != len(want) {
					t.Fatalf("kind %c: %d rows, want %d", kind, i, len(want))
				}
				break
			}
			if i >= len(want) || !slices.Equal(got, want[i]) {
				t.Fatalf("kind %c row %d: %q, want %q", kind, i, got, want)
			}
			var enc strings.Builder
			cw := csv.NewWriter(&enc)
			cw.Write(want[i][2:])
			cw.Flush()
			if raw := src.raw(); string(raw) != enc.String() {
				t.Fatalf("kind %c row %d: raw %q, want %q", kind, i, raw, enc.String())
			}
		}
	}
}

func TestSegmentRecords(t *testing.T) {
	long := strings.Repeat(`{"a":"b, c"}`, 40000) // longer than the reader's buffer
	roundTrip(t, [][]string{
		{"r", "1", "plain", "", "x"},
		{"e", "2", `{"json":"with \"quotes\", commas"}`, "line\nbreak", "cr\r\nlf", ""},
		{"x", "3", " leading space", `"`, `""`, ",", ""},
		{"e", "4", long, "a"},
		{"r", "5", "", "", ""},
		{"e", "6", "last\n", "\n", "end"},
	})
}

// FuzzSegmentRecords: whatever the fields, a row reads back as written.
func FuzzSegmentRecords(f *testing.F) {
	f.Add("plain|with,comma|\"quoted\"|line\nbreak||")
	f.Add("\r\n|\"|,,|  ")
	f.Fuzz(func(t *testing.T, s string) {
		fields := strings.Split(s, "|")
		rows := [][]string{
			append(append([]string{"e", "1"}, fields...), "end"), // a segment row has 4 fields at least
			{"r", "2", "between", "rows"},
			append(append([]string{"x", "3"}, fields...), "end"),
		}
		roundTrip(t, rows)
	})
}
