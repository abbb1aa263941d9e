package stream_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/dataset"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/stream"
)

// TestCSVRows reads a file in event order through CSVRows (which parses
// ahead in a goroutine of its own) and checks every row against a plain
// sequential read: same rows, same order, same seq and source; a read
// error and an early stop both reach the caller.
func TestCSVRows(t *testing.T) {
	data := t.TempDir()
	if _, err := dataset.Generate(context.Background(), data, dataset.Options{Customers: 30, Cards: 50, Transactions: 2000, Seed: 4, BadRows: 12}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(data, csvfile.TransactionsFile)
	var want []stream.Row
	r, err := csvfile.OpenTransactions(path)
	if err != nil {
		t.Fatal(err)
	}
	for {
		row, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, stream.Row{Raw: row.Raw, Seq: int64(row.Line), Source: fmt.Sprintf("%s:%d", csvfile.TransactionsFile, row.Line),
			FieldsOK: row.Reject == "", Reject: row.Reject, Detail: row.Detail})
	}
	r.Close()

	src, err := stream.CSVRows(path)
	if err != nil {
		t.Fatal(err)
	}
	var got []stream.Row
	if err := src.Rows("", func(row stream.Row) error { got = append(got, row); return nil }); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		want[i].Position = strconv.Itoa(i + 1)
	}
	if src.Total != int64(len(want)) {
		t.Errorf("total %d, want %d", src.Total, len(want))
	}
	// Continuing after a position gives the rest.
	var rest []stream.Row
	if err := src.Rows("1234", func(row stream.Row) error { rest = append(rest, row); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(rest) != len(want)-1234 || rest[0] != want[1234] {
		t.Fatalf("after 1234: %d rows, first %+v, want %+v", len(rest), rest[0], want[1234])
	}
	if len(got) != len(want) || len(got) < 2000 {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("row %d: %+v, want %+v", i, got[i], want[i])
		}
	}

	// An early stop returns the caller's error.
	stopAt := errors.New("enough")
	n := 0
	err = src.Rows("", func(stream.Row) error {
		if n++; n == 700 {
			return stopAt
		}
		return nil
	})
	if !errors.Is(err, stopAt) || n != 700 {
		t.Fatalf("early stop: %v after %d rows", err, n)
	}

	// A row with an unterminated quote midway costs that row only: it
	// comes as bad_csv, and every row after it follows.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	lines[1500] = `1500,"unterminated` + "\n"
	broken := filepath.Join(t.TempDir(), csvfile.TransactionsFile)
	if err := os.WriteFile(broken, []byte(strings.Join(lines, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	if src, err = stream.CSVRows(broken); err != nil {
		t.Fatalf("the order check should not fail on this file: %v", err)
	}
	var bad []stream.Row
	n = 0
	if err := src.Rows("", func(r stream.Row) error {
		n++
		if r.Reject == txpipe.RejectBadCSV {
			bad = append(bad, r)
		}
		return nil
	}); err != nil {
		t.Fatalf("broken file: %v", err)
	}
	if n != len(want) || len(bad) != 1 || bad[0].Seq != 1501 || bad[0].FieldsOK || !strings.Contains(bad[0].Detail, "line 1501 reads") {
		t.Fatalf("broken file: %d rows (want %d), bad %+v", n, len(want), bad)
	}
}
