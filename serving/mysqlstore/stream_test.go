package mysqlstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/internal/mysqltest"
)

var streamModes = []struct {
	name string
	mode streamMode
}{
	{"prepared", streamPrepared},
	{"interpolate", streamInterpolate},
	{"loaddata", streamLoadData},
}

// makeResults builds n judged transactions with ids from first on.
func makeResults(n int, first int64) []txpipe.Result {
	base := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
	out := make([]txpipe.Result, n)
	for i := range out {
		id := first + int64(i)
		r := txpipe.Result{
			Transaction: txpipe.Transaction{
				ID: id, CardID: 1 + id%54, Merchant: fmt.Sprintf("Merchant %d", id%97), Timestamp: base.Add(time.Duration(id/3) * time.Second),
				Amount: txpipe.Money(id*37%100000 - 20000), Location: fmt.Sprintf("%d Some Street, City, NY %05d", id%1000, 10000+id%9000),
				Type: "purchase", Seq: id,
			},
			Status: txpipe.StatusPending, PendingBalance: txpipe.Money(id * 11),
			Pos: txpipe.Position{Partition: int32(id % 3), Offset: id},
		}
		if id%5 == 0 {
			r.Status, r.DeclineReason = txpipe.StatusDeclined, txpipe.DeclineLocation
		}
		if id%7 == 0 {
			r.Type, r.RelatedID = "refund", fmt.Sprint(id-1)
		}
		if id%11 == 0 {
			r.Merchant = trickyStrings[int(id)%len(trickyStrings)]
		}
		out[i] = r
	}
	return out
}

func TestWriteStreamReplay(t *testing.T) {
	results := makeResults(2345, 1) // two full batches and a part
	rejected := []txpipe.Rejected{
		{Raw: txpipe.RawTransaction{TransactionID: "x", CardID: "1", Merchant: "M\tq"}, Reason: txpipe.RejectTransactionID, Detail: "bad id", Source: "transactions/0/17", Pos: txpipe.Position{Topic: "transactions.dlq", Partition: 0, Offset: 3}},
		{Raw: txpipe.RawTransaction{}, Reason: txpipe.RejectBadJSON, Detail: "unexpected end of JSON input", Source: "transactions/1/5", Pos: txpipe.Position{Topic: "transactions.dlq", Partition: 1, Offset: 0}},
	}
	offsets := []txpipe.Offset{{Topic: "validated", Partition: 0, Next: 1200}, {Topic: "validated", Partition: 1, Next: 1146}, {Topic: "other", Partition: 0, Next: 7}}
	for _, m := range streamModes {
		t.Run(m.name, func(t *testing.T) {
			db := openTest(t)
			ctx := context.Background()
			if err := db.writeRows(ctx, m.mode, "sink-a", results, rejected, offsets); err != nil {
				t.Fatal(err)
			}
			if m.mode == streamLoadData {
				requireLoadData(t, db, "loaddata")
			}
			first := dump(t, db, "stream_transactions", "transaction_id")
			got, err := db.StreamRows(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := append([]txpipe.Result(nil), results...)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("StreamRows differs from what was written (%d rows, want %d)", len(got), len(want))
			}
			// The replay of the same batch changes nothing.
			if err := db.writeRows(ctx, m.mode, "sink-a", results, rejected, offsets); err != nil {
				t.Fatal(err)
			}
			if again := dump(t, db, "stream_transactions", "transaction_id"); !reflect.DeepEqual(first, again) {
				t.Error("a replay changed stream_transactions")
			}
			if n := count(t, db, "rejected_transactions"); n != 2 {
				t.Errorf("rejected_transactions: %d rows", n)
			}
			rej := dump(t, db, "rejected_transactions", "source")
			if r := rej[0]; r[0] != "transactions/0/17" || r[2] != "bad_transaction_id" || r[4] != "M\tq" || r[11] != "17" {
				t.Errorf("rejected row %q", r)
			}
			offs, err := db.Offsets(ctx, "sink-a", "validated")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(nexts(offs), map[int32]int64{0: 1200, 1: 1146}) {
				t.Errorf("offsets %v", offs)
			}
			if err := db.writeRows(ctx, m.mode, "sink-a", nil, nil, []txpipe.Offset{{Topic: "validated", Partition: 0, Next: 1300}}); err != nil {
				t.Fatal(err)
			}
			offs, _ = db.Offsets(ctx, "sink-a", "validated")
			if !reflect.DeepEqual(nexts(offs), map[int32]int64{0: 1300, 1: 1146}) {
				t.Errorf("offsets %v", offs)
			}
			if offs, _ := db.Offsets(ctx, "sink-b", "validated"); len(offs) != 0 {
				t.Errorf("another consumer's offsets: %v", offs)
			}
		})
	}
}

// TestWriteStreamKeepsFirstOfEachID: stream_transactions holds one row per
// transaction id and never overwrites one: of the rows with an id, the
// first in event order stays and the others become rejected rows, whether
// they meet in one batch or across batches, in either order.
func TestWriteStreamKeepsFirstOfEachID(t *testing.T) {
	for _, m := range streamModes {
		t.Run(m.name, func(t *testing.T) {
			db := openTest(t)
			ctx := context.Background()
			results := makeResults(50, 1)
			for i := range results {
				results[i].Pos.Topic = "v"
			}
			copyOf := func(r txpipe.Result, after time.Duration, off int64) txpipe.Result {
				r.Timestamp, r.Pos.Offset, r.PendingBalance = r.Timestamp.Add(after), off, r.PendingBalance+100
				return r
			}
			// Batch 1: ids 1-50, and a later copy of id 3 in the same batch.
			b1 := append(append([]txpipe.Result(nil), results...), copyOf(results[2], time.Hour, 900))
			if err := db.writeRows(ctx, m.mode, "s", b1, nil, nil); err != nil {
				t.Fatal(err)
			}
			// Batch 2: a later copy of id 5 (rejected), an earlier copy of id 7
			// (replaces the stored row, which is rejected), and the very
			// same record as id 9 (a replay: nothing happens).
			b2 := []txpipe.Result{copyOf(results[4], time.Minute, 901), copyOf(results[6], -time.Minute, 902), results[8]}
			if err := db.writeRows(ctx, m.mode, "s", b2, nil, nil); err != nil {
				t.Fatal(err)
			}
			got, err := db.StreamRows(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := append([]txpipe.Result(nil), results...)
			want[6] = b2[1]
			for i := range want {
				want[i].Pos.Topic = ""
			}
			slices.SortStableFunc(want, func(a, b txpipe.Result) int { return a.Timestamp.Compare(b.Timestamp) })
			if !reflect.DeepEqual(got, want) {
				t.Errorf("stream_transactions holds %d rows, not the first of each id", len(got))
			}
			rej := dump(t, db, "rejected_transactions", "kafka_offset")
			var ids, offs []string
			for _, r := range rej {
				ids, offs = append(ids, r[1]), append(offs, r[14])
				if r[2] != string(txpipe.RejectDuplicate) || r[12] != "v" || r[0] != "v/"+r[13]+"/"+r[14] {
					t.Errorf("rejected row %q", r)
				}
			}
			if !slices.Equal(ids, []string{"7", "3", "5"}) || !slices.Equal(offs, []string{"7", "900", "901"}) {
				t.Errorf("rejected ids %v at offsets %v, want the later copies of 3 and 5 and the stored row of 7", ids, offs)
			}
		})
	}
}

// A write cancelled after its first statement leaves nothing: no rows, no
// offsets.
func TestWriteStreamCanceledRollsBack(t *testing.T) {
	for _, m := range streamModes {
		t.Run(m.name, func(t *testing.T) {
			db := openTest(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			db.testHookRows = func(int) { cancel() }
			results := makeResults(5000, 1)
			err := db.writeRows(ctx, m.mode, "sink", results, nil, []txpipe.Offset{{Topic: "validated", Partition: 0, Next: 5000}})
			db.testHookRows = nil
			if err == nil {
				t.Fatal("cancelled WriteStream succeeded")
			}
			if IsTransient(err) {
				t.Errorf("a cancelled write is reported transient: %v", err)
			}
			if n := count(t, db, "stream_transactions"); n != 0 {
				t.Errorf("%d rows written by a cancelled write", n)
			}
			if n := count(t, db, "sink_offsets"); n != 0 {
				t.Errorf("%d offsets written by a cancelled write", n)
			}
		})
	}
}

func TestWriteStreamOnlyOffsets(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	if err := db.WriteStream(ctx, "c", nil, nil, []txpipe.Offset{{Topic: "t", Partition: 3, Next: 42, TopicID: "id-1"}}); err != nil {
		t.Fatal(err)
	}
	if offs, err := db.Offsets(ctx, "c", "t"); err != nil || offs[3] != (txpipe.Offset{Topic: "t", Partition: 3, Next: 42, TopicID: "id-1"}) {
		t.Fatalf("offsets %v, %v", offs, err)
	}
	if err := db.WriteStream(ctx, "c", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestIsTransient(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("boom"), false},
		{context.Canceled, false},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), false},
		{driver.ErrBadConn, true},
		{mysql.ErrInvalidConn, true},
		{io.ErrUnexpectedEOF, true},
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{fmt.Errorf("write: %w", syscall.ECONNRESET), true},
		{&mysql.MySQLError{Number: 1205, Message: "Lock wait timeout exceeded"}, true},
		{fmt.Errorf("commit: %w", &mysql.MySQLError{Number: 1213, Message: "Deadlock found"}), true},
		{&mysql.MySQLError{Number: 2006}, true},
		{&mysql.MySQLError{Number: 2013}, true},
		{&mysql.MySQLError{Number: 1406, Message: "Data too long"}, false},
		{&mysql.MySQLError{Number: 1062, Message: "Duplicate entry"}, false},
	} {
		if got := IsTransient(c.err); got != c.want {
			t.Errorf("IsTransient(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestLoadDataRefused(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&mysql.MySQLError{Number: 1148, Message: "The used command is not allowed with this MariaDB version"}, true},
		{&mysql.MySQLError{Number: 3948, Message: "Loading local data is disabled; this must be enabled on both the client and server sides"}, true},
		{&mysql.MySQLError{Number: 1, Message: "LOAD DATA LOCAL INFILE is not allowed"}, true},
		{&mysql.MySQLError{Number: 1146, Message: "Table 'x.y' doesn't exist"}, false},
		{errors.New("reader 'x' is not registered"), false},
	} {
		if got := loadDataRefused(c.err); got != c.want {
			t.Errorf("loadDataRefused(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestAppendEscaped(t *testing.T) {
	for in, want := range map[string]string{
		"":             "",
		"plain":        "plain",
		"a\tb\nc\\d\r": `a\tb\nc\\d\r`,
		"\x00":         `\0`,
		`\N`:           `\\N`,
		`"q",'s'`:      `"q",'s'`,
	} {
		if got := string(AppendLoadText(nil, in)); got != want {
			t.Errorf("AppendLoadText(%q) = %q, want %q", in, got, want)
		}
	}
	if got := string(appendText(nil, nil)); got != `\N` {
		t.Errorf("NULL = %q", got)
	}
}

// When the server refuses LOAD DATA LOCAL, the loads and the stream writes
// fall back to INSERT, and the log says so once.
func TestLoadDataRefusedFallsBack(t *testing.T) {
	rec := &recorder{}
	cfg := mysqltest.NewDatabase(t)
	db, err := Open(context.Background(), cfg, slog.New(rec))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.testRefuse = true
	ctx := context.Background()
	m := tinyMaster(1500)
	if err := db.LoadMaster(ctx, m); err != nil {
		t.Fatal(err)
	}
	if !db.noLoadData.Load() {
		t.Error("the refusal was not remembered")
	}
	results := makeResults(1500, 1)
	if err := db.WriteStream(ctx, "c", results, nil, []txpipe.Offset{{Topic: "v", Partition: 0, Next: 1500}}); err != nil {
		t.Fatal(err)
	}
	if got, err := db.StreamRows(ctx); err != nil || !reflect.DeepEqual(got, results) {
		t.Errorf("StreamRows after the fallback: %d rows, %v", len(got), err)
	}
	if n := count(t, db, "customers"); n != 1500 {
		t.Errorf("%d customers", n)
	}
	var warned int
	rec.mu.Lock()
	for _, msg := range rec.msgs {
		if strings.Contains(msg, "refuses LOAD DATA LOCAL") && strings.Contains(msg, "local_infile") {
			warned++
		}
	}
	rec.mu.Unlock()
	if warned != 1 {
		t.Errorf("warned %d times about local_infile, want once", warned)
	}
}

// WriteStream opened without LOAD DATA uses multi-row INSERT.
func TestWriteStreamInsertOnly(t *testing.T) {
	db := openTest(t, WithLoadData(false), WithBatchRows(300))
	ctx := context.Background()
	results := makeResults(1000, 1)
	for range 2 {
		if err := db.WriteStream(ctx, "c", results, nil, []txpipe.Offset{{Topic: "v", Partition: 0, Next: 1000}}); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := db.StreamRows(ctx); err != nil || !reflect.DeepEqual(got, results) {
		t.Errorf("StreamRows: %d rows, %v", len(got), err)
	}
}

func nexts(offs map[int32]txpipe.Offset) map[int32]int64 {
	out := map[int32]int64{}
	for p, o := range offs {
		out[p] = o.Next
	}
	return out
}
