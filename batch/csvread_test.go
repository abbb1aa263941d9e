package batch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/serving/csvfile"
)

// readAllResults is what csvfile.ReadResults reads, through appendResult:
// the reference readStreamCSV must agree with.
func readAllResults(path string, b *txBuilder, cut cutoffs, emit emitFunc) error {
	err := csvfile.ReadResults(path, func(r txpipe.Result, line int) error {
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
	if rec := b.newRecord(); rec != nil {
		return emit(rec)
	}
	return nil
}

// readRows runs read over path and returns every row as text, the
// cut-offs and the error's text.
func readRows(tb testing.TB, path string, batchRows int, read func(string, *txBuilder, cutoffs, emitFunc) error) ([]string, string, string) {
	tb.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(tb, 0)
	b := newTxBuilder(mem, batchRows)
	cut := cutoffs{}
	var rows []string
	err := read(path, b, cut, func(rec arrow.Record) error {
		defer rec.Release()
		c := columns(rec)
		for i := range c.n {
			related := "NULL"
			if c.related.IsValid(i) {
				related = fmt.Sprintf("%q", c.related.Value(i))
			}
			rows = append(rows, fmt.Sprintf("%d|%d|%q|%d|%d|%q|%q|%s|%q|%d|%q|%d", c.id[i], c.card[i], c.merchant.Value(i), c.ts[i],
				c.amount[i], c.location.Value(i), c.typ.Value(i), related, c.status.Value(i), c.pending[i], c.decl.Value(i), c.seq[i]))
		}
		return nil
	})
	b.release()
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	return rows, cut.String(), msg
}

// assertSameRead checks that readStreamCSV reads path as ReadResults does.
func assertSameRead(tb testing.TB, path string, batchRows ...int) {
	tb.Helper()
	if len(batchRows) == 0 {
		batchRows = []int{1, 3, 1000}
	}
	for _, n := range batchRows {
		got, gotCut, gotErr := readRows(tb, path, n, readStreamCSV)
		want, wantCut, wantErr := readRows(tb, path, n, readAllResults)
		if gotErr != wantErr {
			tb.Fatalf("batch rows %d: error %q, ReadResults %q", n, gotErr, wantErr)
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			tb.Fatalf("batch rows %d: rows\n%s\nReadResults\n%s", n, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if gotCut != wantCut {
			tb.Fatalf("batch rows %d: cut-offs %q, ReadResults %q", n, gotCut, wantCut)
		}
	}
}

const streamHeader = "transaction_id,card_id,merchant_name,timestamp,amount,location,transaction_type,related_transaction_id,status,pending_balance,decline_reason,kafka_partition,kafka_offset\n"

var plainRows = []string{
	`1,31392,Stone-Wagner,2025-04-01 00:00:00,33.01,"5494 Warren Walk, Lake Jeffreyshire, OH 45917",p2p_transfer,,declined,159.73,location_mismatch,0,0` + "\n",
	`2,236,Fernandez Inc,2025-04-01 00:00:00,340.00,"9834 Amy Prairie, Buffalo, NY 10121",atm_withdrawal,,pending,827.01,,8,0` + "\n",
	`3,236,"Acme ""Stores""",2025-04-01 00:00:07,-12.50,"1 Main St, Springfield, NY 10001",refund,2,pending,814.51,,8,1` + "\n",
	`4,17,"Smith, Jones and Co",2025-04-02 13:14:15,0.00,"Café Ñandú, Queens, NY 11004",purchase,,approved,0.00,,70,3` + "\n",
}

func writeStream(tb testing.TB, dir, name, content string) string {
	tb.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

func TestReadStreamCSVAgreesWithReadResults(t *testing.T) {
	dir := t.TempDir()
	plain := strings.Join(plainRows, "")
	cases := map[string]string{
		"plain":           streamHeader + plain,
		"no final eol":    streamHeader + strings.TrimSuffix(plain, "\n"),
		"crlf":            strings.ReplaceAll(streamHeader+plain, "\n", "\r\n"),
		"blank lines":     streamHeader + "\n" + plainRows[0] + "\n\n" + plainRows[1] + "\r\n" + plainRows[2],
		"header only":     streamHeader,
		"empty":           "",
		"bom":             "\ufeff" + streamHeader + plain,
		"spaced header":   strings.ReplaceAll(streamHeader, ",", " , ") + plain,
		"quoted header":   `"transaction_id",` + streamHeader[len("transaction_id,"):] + plain,
		"missing column":  strings.Replace(streamHeader, "amount", "amt", 1) + plain,
		"no positions":    strings.Replace(streamHeader, ",kafka_partition,kafka_offset", "", 1) + "5,236,X,2025-04-01 00:00:00,1.00,Y,t,,pending,1.00,\n",
		"no decline":      strings.Replace(streamHeader, ",decline_reason,kafka_partition,kafka_offset", "", 1) + "5,236,X,2025-04-01 00:00:00,1.00,Y,t,,pending,1.00\n",
		"empty positions": streamHeader + "5,236,X,2025-04-01 00:00:00,1.00,Y,t,,pending,1.00,,,\n" + plainRows[1],
		"duplicate column": strings.Replace(streamHeader, "transaction_type", "amount", 1) +
			"5,236,X,2025-04-01 00:00:00,7.00,Y,1.25,,pending,1.00,,1,2\n",
		"multi-line field": streamHeader + plainRows[0] + "6,236,\"two\nlines\",2025-04-01 00:00:00,1.00,Y,t,,pending,1.00,,1,5\n" + plainRows[1],
		"bare quote":       streamHeader + plainRows[0] + "6,236,a\"b,2025-04-01 00:00:00,1.00,Y,t,,pending,1.00,,1,5\n" + plainRows[1],
		"after quote":      streamHeader + plainRows[0] + "6,236,\"a\"b,2025-04-01 00:00:00,1.00,Y,t,,pending,1.00,,1,5\n" + plainRows[1],
		"extra field":      streamHeader + plainRows[0] + "6,236,a,2025-04-01 00:00:00,1.00,Y,t,,pending,1.00,,1,5,extra\n" + plainRows[1],
		"short row":        streamHeader + plainRows[0] + "6,236,a,2025-04-01 00:00:00,1.00,Y,t,,pending\n" + plainRows[1],
		"plus amount":      streamHeader + plainRows[0] + "6,236,a,2025-04-01 00:00:00,+1,Y,t,,pending,1.5,,1,5\n" + plainRows[1],
		"bad amount":       streamHeader + plainRows[0] + "6,236,a,2025-04-01 00:00:00,1.001,Y,t,,pending,1.00,,1,5\n" + plainRows[1],
		"bad pending":      streamHeader + plainRows[0] + "6,236,a,2025-04-01 00:00:00,1.00,Y,t,,pending,x,,1,5\n" + plainRows[1],
		"bad timestamp":    streamHeader + plainRows[0] + "6,236,a,2025-02-30 00:00:00,1.00,Y,t,,pending,1.00,,1,5\n" + plainRows[1],
		"bad id":           streamHeader + plainRows[0] + "+6,236,a,2025-04-01 00:00:00,1.00,Y,t,,pending,1.00,,1,5\n" + plainRows[1],
		"zero card":        streamHeader + plainRows[0] + "6,0,a,2025-04-01 00:00:00,1.00,Y,t,,pending,1.00,,1,5\n" + plainRows[1],
		"long id":          streamHeader + plainRows[0] + "0000000000000000000006,236,a,2025-04-01 00:00:00,1.00,Y,t,,pending,1.00,,1,5\n" + plainRows[1],
		"bad status":       streamHeader + plainRows[0] + "6,236,a,2025-04-01 00:00:00,1.00,Y,t,,maybe,1.00,,1,5\n" + plainRows[1],
		"bad utf8":         streamHeader + plainRows[0] + "6,236,a\xff,2025-04-01 00:00:00,1.00,Y,t,,pending,1.00,,1,5\n" + plainRows[1],
		"long merchant":    streamHeader + plainRows[0] + "6,236," + strings.Repeat("é", 256) + ",2025-04-01 00:00:00,1.00,Y,t,,pending,1.00,,1,5\n" + plainRows[1],
		"fitting merchant": streamHeader + plainRows[0] + "6,236," + strings.Repeat("é", 255) + ",2025-04-01 00:00:00,1.00,Y,t,,pending,1.00,,1,5\n" + plainRows[1],
		"plus partition":   streamHeader + plainRows[0] + "6,236,a,2025-04-01 00:00:00,1.00,Y,t,,pending,1.00,,+1,5\n" + plainRows[1],
		"half position":    streamHeader + plainRows[0] + "6,236,a,2025-04-01 00:00:00,1.00,Y,t,,pending,1.00,,,5\n" + plainRows[1],
		"negative offset":  streamHeader + plainRows[0] + "6,236,a,2025-04-01 00:00:00,1.00,Y,t,,pending,1.00,,1,-5\n" + plainRows[1],
		"big partition":    streamHeader + plainRows[0] + "6,236,a,2025-04-01 00:00:00,1.00,Y,t,,pending,1.00,,3000000000,5\n" + plainRows[1],
		"high partition":   streamHeader + plainRows[0] + "6,236,a,2025-04-01 00:00:00,1.00,Y,t,,pending,1.00,,700,5\n" + plainRows[1],
		"quoted numbers":   streamHeader + `"7","236","a","2025-04-01 00:00:00","1.00","Y","t","","pending","1.00","","1","9"` + "\n" + plainRows[1],
		"space field":      streamHeader + "7,236, a ,2025-04-01 00:00:00,1.00,Y,t, ,pending,1.00, ,1,9\n",
		"long line":        streamHeader + plainRows[0] + "8,236," + strings.Repeat("m", 2*csvLineMax) + ",2025-04-01 00:00:00,1.00,Y,t,,pending,1.00,,1,5\n" + plainRows[1],
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			assertSameRead(t, writeStream(t, dir, strings.ReplaceAll(name, " ", "_")+".csv", content))
		})
	}
	t.Run("missing file", func(t *testing.T) {
		assertSameRead(t, filepath.Join(dir, "none.csv"))
	})
}

// Many rows in many records, with a row that is not plain (or a blank
// line) here and there: before, at and after record boundaries.
func TestReadStreamCSVManyRows(t *testing.T) {
	dir := t.TempDir()
	odd := []string{
		"6,236,\"two\nlines\",2025-04-01 00:00:00,1.00,Y,t,,pending,1.00,,1,5\n",
		"6,236,a,2025-04-01 00:00:00,+1,Y,t,,pending,1.5,,1,5\r\n",
		"\n",
		"6,236,a,2025-02-30 00:00:00,1.00,Y,t,,pending,1.00,,1,5\n",
	}
	for _, at := range []int{-1, 0, 6, 7, 8, 63, 64, 299} {
		for k, o := range odd {
			var b strings.Builder
			b.WriteString(streamHeader)
			for i := range 300 {
				if i == at {
					b.WriteString(o)
				}
				r := plainRows[i%len(plainRows)]
				fmt.Fprintf(&b, "%d%s", 100+i, r[strings.IndexByte(r, ','):])
			}
			path := writeStream(t, dir, fmt.Sprintf("many-%d-%d.csv", at, k), b.String())
			assertSameRead(t, path, 1, 7, 64, 1000)
		}
	}
}

func FuzzReadStreamCSV(f *testing.F) {
	for _, r := range plainRows {
		f.Add(r)
	}
	f.Add("6,236,\"two\nlines\",2025-04-01 00:00:00,1.00,Y,t,,pending,1.00,,1,5\n")
	f.Add("6,236,a,2025-04-01 00:00:00,+1,Y,t,,pending,1.5,,1,5\r\n\n")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, row string) {
		path := writeStream(t, dir, "fuzz.csv", streamHeader+plainRows[0]+row+plainRows[1])
		assertSameRead(t, path)
	})
}
