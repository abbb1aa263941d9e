package mysqlstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/internal/reftest"
	"github.com/txpipe/txpipe/serving/csvfile"
)

// loadModes are the two bulk paths.
var loadModes = []struct {
	name string
	opt  Option
}{
	{"loaddata", WithLoadData(true)},
	{"insert", WithLoadData(false)},
}

func masterTables(tb testing.TB, db *DB) map[string][][]string {
	return map[string][][]string{
		"customers":         dump(tb, db, "customers", "customer_id"),
		"credit_card_types": dump(tb, db, "credit_card_types", "card_type_id"),
		"cards":             dump(tb, db, "cards", "card_id"),
	}
}

// requireLoadData fails when the server refused LOAD DATA, so that the
// "loaddata" runs really test that path.
func requireLoadData(tb testing.TB, db *DB, mode string) {
	tb.Helper()
	if mode == "loaddata" && db.noLoadData.Load() {
		tb.Skip("the server does not allow LOAD DATA LOCAL INFILE")
	}
}

func TestLoadMasterReference(t *testing.T) {
	m, err := csvfile.ReadMaster(reftest.Data(t))
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string][][]string
	for _, mode := range loadModes {
		t.Run(mode.name, func(t *testing.T) {
			db := openTest(t, mode.opt)
			if err := db.LoadMaster(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			requireLoadData(t, db, mode.name)
			for table, want := range map[string]int{"customers": len(m.Customers), "credit_card_types": len(m.CardTypes), "cards": len(m.Cards)} {
				if n := count(t, db, table); n != int64(want) {
					t.Errorf("%s: %d rows, want %d", table, n, want)
				}
			}
			tables := masterTables(t, db)
			// cards.csv line 2: 1,1,1,5208-9841-2836-2158,06/27,2500.0,120.67,2022-11-18
			if c := tables["cards"][0]; strings.Join(c, ",") != "1,1,1,5208-9841-2836-2158,06/27,2500.00,120.67,2022-11-18" {
				t.Errorf("card 1 = %v", c)
			}
			got = append(got, tables)
		})
	}
	if len(got) == 2 && !reflect.DeepEqual(got[0], got[1]) {
		t.Error("LOAD DATA and INSERT loaded different tables")
	}
}

func TestLoadMasterTrickyTextBothPaths(t *testing.T) {
	m := tinyMaster(2500) // more than two INSERT batches
	var got []map[string][][]string
	for _, mode := range loadModes {
		t.Run(mode.name, func(t *testing.T) {
			db := openTest(t, mode.opt)
			if err := db.LoadMaster(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			requireLoadData(t, db, mode.name)
			rows, err := db.SQL.Query("SELECT customer_id, name, address, annual_income FROM customers ORDER BY customer_id")
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			i := 0
			for rows.Next() {
				var id int64
				var name, address, income string
				if err := rows.Scan(&id, &name, &address, &income); err != nil {
					t.Fatal(err)
				}
				c := m.Customers[i]
				if id != c.ID || name != c.Name || address != c.Address || income != c.AnnualIncome.String() {
					t.Errorf("customer %d = %q %q %s, want %q %q %s", id, name, address, income, c.Name, c.Address, c.AnnualIncome)
				}
				i++
			}
			if i != len(m.Customers) {
				t.Errorf("%d customers, want %d", i, len(m.Customers))
			}
			got = append(got, masterTables(t, db))
		})
	}
	if len(got) == 2 && !reflect.DeepEqual(got[0], got[1]) {
		t.Error("LOAD DATA and INSERT loaded different tables")
	}
}

func TestLoadMasterReplaces(t *testing.T) {
	for _, mode := range loadModes {
		t.Run(mode.name, func(t *testing.T) {
			db := openTest(t, mode.opt)
			ctx := context.Background()
			if err := db.LoadMaster(ctx, tinyMaster(50)); err != nil {
				t.Fatal(err)
			}
			small := tinyMaster(3)
			small.Customers[0].Name = "Replaced"
			if err := db.LoadMaster(ctx, small); err != nil {
				t.Fatal(err)
			}
			for _, table := range []string{"customers", "cards"} {
				if n := count(t, db, table); n != 3 {
					t.Errorf("%s: %d rows after the second load, want 3", table, n)
				}
			}
			if n := count(t, db, "credit_card_types"); n != 2 {
				t.Errorf("credit_card_types: %d rows, want 2", n)
			}
			if name := dump(t, db, "customers", "customer_id")[0][1]; name != "Replaced" {
				t.Errorf("customer 1 is %q", name)
			}
			if err := db.LoadMaster(ctx, &txpipe.Master{}); err != nil {
				t.Fatal(err)
			}
			for _, table := range []string{"customers", "credit_card_types", "cards"} {
				if n := count(t, db, table); n != 0 {
					t.Errorf("%s: %d rows after loading empty master data", table, n)
				}
			}
		})
	}
}

// A load cancelled half way leaves the previous master data, whole.
func TestLoadMasterCanceledRollsBack(t *testing.T) {
	for _, mode := range loadModes {
		t.Run(mode.name, func(t *testing.T) {
			db := openTest(t, mode.opt)
			if err := db.LoadMaster(context.Background(), tinyMaster(10)); err != nil {
				t.Fatal(err)
			}
			before := masterTables(t, db)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			db.testHookRows = func(n int) { cancel() }
			err := db.LoadMaster(ctx, tinyMaster(20000))
			db.testHookRows = nil
			if err == nil {
				t.Fatal("cancelled LoadMaster succeeded")
			}
			if !errors.Is(err, context.Canceled) {
				t.Logf("error (not context.Canceled, but the driver's view of it): %v", err)
			}
			if after := masterTables(t, db); !reflect.DeepEqual(before, after) {
				t.Errorf("a cancelled load changed the tables: %d customers, %d cards", len(after["customers"]), len(after["cards"]))
			}
		})
	}
}

func TestLoadMasterValueTooLong(t *testing.T) {
	for _, mode := range loadModes {
		t.Run(mode.name, func(t *testing.T) {
			db := openTest(t, mode.opt)
			m := tinyMaster(3)
			m.Customers[1].Name = strings.Repeat("x", 300)
			err := db.LoadMaster(context.Background(), m)
			if err == nil {
				t.Fatal("a 300-character name was loaded into VARCHAR(255)")
			}
			t.Log(err)
			if n := count(t, db, "customers"); n != 0 {
				t.Errorf("%d customers after a failed load", n)
			}
		})
	}
}

const txHeader = "transaction_id,card_id,merchant_name,timestamp,amount,location,transaction_type,related_transaction_id\n"

func writeFile(tb testing.TB, name, content string) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}

func TestLoadTransactionsRejects(t *testing.T) {
	content := txHeader +
		"1,1,Shop A,2025-04-01 01:21:09,131.76,\"4395 Brenda Lake, Queens, NY 10859\",purchase,\n" + // line 2 ok
		"2,1,Shop B,2025-04-01 01:21:09,12.5,Somewhere 10001,refund,1\n" + // 3 ok
		"3,1,Shop C,2025-04-01\n" + // 4 field_count
		"x4,1,Shop D,2025-04-01 02:00:00,1.00,Here 10001,purchase,\n" + // 5 bad id
		"5,-1,Shop E,2025-04-01 02:00:00,1.00,Here 10001,purchase,\n" + // 6 bad card id
		"6,1,Shop F,2025-04-01 02:00:00,1.005,Here 10001,purchase,\n" + // 7 bad amount
		"7,1,Shop G,2025-04-01T02:00:00,1.00,Here 10001,purchase,\n" + // 8 bad timestamp
		"8,999,Shop H,2025-04-01 02:00:00,1.00,Here 10001,purchase,\n" + // 9 unknown card
		"1,2,Shop I,2025-04-01 02:00:00,1.00,Here 10001,purchase,\n" + // 10 duplicate of line 2
		"9,2,\"Multi\nline, \"\"quoted\"\" \\ shop\",2025-03-31 23:59:59,-0.5,\"Tab\there 20002\",purchase,\n" + // 11-12 ok
		"10,2,Bad \"quote,2025-04-01 02:00:00,1.00,Here 10001,purchase,\n" + // 13 malformed CSV (bad_csv)
		"11,999,Shop J,2025-04-01 02:00:00,1.00,Here 10001,purchase,\n" + // 14 unknown card
		"11,2,Shop K,2025-04-01 02:00:00,1.00,Here 10001,purchase,\n" // 15 ok: the rejected line 14 does not count
	path := writeFile(t, "transactions.csv", content)
	wantRejects := []struct {
		line   int
		reason txpipe.RejectReason
	}{
		{4, txpipe.RejectFieldCount}, {5, txpipe.RejectTransactionID}, {6, txpipe.RejectCardID}, {7, txpipe.RejectAmount},
		{8, txpipe.RejectTimestamp}, {9, txpipe.RejectUnknownCard}, {10, txpipe.RejectDuplicate}, {13, txpipe.RejectBadCSV},
		{14, txpipe.RejectUnknownCard},
	}
	var tables [][][]string
	for _, mode := range loadModes {
		t.Run(mode.name, func(t *testing.T) {
			db := openTest(t, mode.opt)
			ctx := context.Background()
			if err := db.LoadMaster(ctx, tinyMaster(3)); err != nil {
				t.Fatal(err)
			}
			loaded, rejected, err := db.LoadTransactions(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			requireLoadData(t, db, mode.name)
			if loaded != 4 {
				t.Errorf("loaded %d, want 4", loaded)
			}
			if len(rejected) != len(wantRejects) {
				t.Fatalf("%d rejected, want %d: %+v", len(rejected), len(wantRejects), rejected)
			}
			for i, w := range wantRejects {
				r := rejected[i]
				if src := "transactions.csv:" + strconv.Itoa(w.line); r.Source != src || r.Reason != w.reason {
					t.Errorf("reject %d = %s %s (%s), want %s %s", i, r.Source, r.Reason, r.Detail, src, w.reason)
				}
			}
			if r := rejected[6]; r.Raw.Merchant != "Shop I" || !strings.Contains(r.Detail, "line 2") {
				t.Errorf("duplicate reject %+v", r)
			}
			got := dump(t, db, "load_rejected", "seq")
			if len(got) != len(wantRejects) {
				t.Fatalf("load_rejected has %d rows", len(got))
			}
			if n := count(t, db, "rejected_transactions"); n != 0 {
				t.Errorf("rejected_transactions has %d rows: it holds the stream's dead letters only", n)
			}
			// source, transaction_id, reason, card_id, merchant_name, ..., seq
			if r := got[5]; r[0] != "transactions.csv:9" || r[1] != "8" || r[2] != "unknown_card" || r[3] != "999" || r[4] != "Shop H" || r[11] != "9" {
				t.Errorf("rejected row for line 9 = %q", r)
			}
			rows := dump(t, db, "transactions", "transaction_id")
			want := [][]string{
				{"1", "1", "Shop A", "2025-04-01 01:21:09", "131.76", "4395 Brenda Lake, Queens, NY 10859", "purchase", "<NULL>", "2"},
				{"2", "1", "Shop B", "2025-04-01 01:21:09", "12.50", "Somewhere 10001", "refund", "1", "3"},
				{"9", "2", "Multi\nline, \"quoted\" \\ shop", "2025-03-31 23:59:59", "-0.50", "Tab\there 20002", "purchase", "<NULL>", "11"},
				{"11", "2", "Shop K", "2025-04-01 02:00:00", "1.00", "Here 10001", "purchase", "<NULL>", "15"},
			}
			if !reflect.DeepEqual(rows, want) {
				t.Errorf("transactions =\n%q\nwant\n%q", rows, want)
			}
			tables = append(tables, rows)

			// A second load of a file of the same name replaces both tables.
			path2 := writeFile(t, "transactions.csv", txHeader+"20,3,Shop,2025-04-02 00:00:00,5.00,Here 10001,purchase,\n21,1\n")
			loaded, rejected, err = db.LoadTransactions(ctx, path2)
			if err != nil || loaded != 1 || len(rejected) != 1 {
				t.Fatalf("second load: %d loaded, %d rejected, %v", loaded, len(rejected), err)
			}
			if n := count(t, db, "transactions"); n != 1 {
				t.Errorf("transactions has %d rows after the second load", n)
			}
			if got := dump(t, db, "load_rejected", "seq"); len(got) != 1 || got[0][0] != "transactions.csv:3" {
				t.Errorf("load_rejected after the second load: %q", got)
			}
		})
	}
}

func TestLoadTransactionsFieldTooLong(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	if err := db.LoadMaster(ctx, tinyMaster(3)); err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, "tx.csv", txHeader+
		"1,1,Shop,2025-04-01 01:21:09,1.00,Here 10001,purchase,\n"+
		"2,1,Shop,2025-04-01 01:21:09,1.00,Here 10001,"+strings.Repeat("t", txpipe.MaxType+1)+",\n")
	loaded, rejected, err := db.LoadTransactions(ctx, path)
	if err != nil || loaded != 1 || len(rejected) != 1 || rejected[0].Reason != txpipe.RejectText || rejected[0].Source != "tx.csv:3" {
		t.Fatalf("LoadTransactions = %d, %+v, %v; want 1 loaded and line 3 rejected as bad_text", loaded, rejected, err)
	}
	if n := count(t, db, "transactions"); n != 1 {
		t.Errorf("%d transactions loaded", n)
	}
}

func TestScanTransactionsOrder(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	if err := db.LoadMaster(ctx, tinyMaster(3)); err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, "transactions.csv", txHeader+
		"10,1,A,2025-04-01 10:00:00,1,Here 10001,purchase,\n"+ // line 2
		"11,2,B,2025-04-01 09:00:00,2.5,Here 10001,purchase,\n"+ // 3
		"12,3,C,2025-04-01 10:00:00,-3.25,Here 10001,refund,10\n"+ // 4: same time as line 2, after it
		"13,1,D,2025-04-01 09:59:59,0.10,Here 10001,purchase,\n") // 5
	if _, _, err := db.LoadTransactions(ctx, path); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"11|2|B|2025-04-01 09:00:00|2.50|Here 10001|purchase|#3",
		"13|1|D|2025-04-01 09:59:59|0.10|Here 10001|purchase|#5",
		"10|1|A|2025-04-01 10:00:00|1.00|Here 10001|purchase|#2",
		"12|3|C|2025-04-01 10:00:00|-3.25|Here 10001|refund|10#4",
	}
	defer func(n int) { scanChunk = n }(scanChunk)
	for _, chunk := range []int{5000, 1, 2, 3} { // pages that split ties of timestamp
		scanChunk = chunk
		var got, positions []string
		err := db.ScanTransactions(ctx, "", func(raw txpipe.RawTransaction, seq int64, pos string) error {
			got = append(got, strings.Join(raw.Fields(), "|")+"#"+strconv.FormatInt(seq, 10))
			positions = append(positions, pos)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("chunk %d: scan =\n%s\nwant\n%s", chunk, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		// Continuing after each position gives the rest, exactly.
		for i, pos := range positions {
			var rest []string
			if err := db.ScanTransactions(ctx, pos, func(raw txpipe.RawTransaction, seq int64, _ string) error {
				rest = append(rest, strings.Join(raw.Fields(), "|")+"#"+strconv.FormatInt(seq, 10))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(rest, want[i+1:]) && !(len(rest) == 0 && i == len(want)-1) {
				t.Errorf("chunk %d: after %s: %q, want %q", chunk, pos, rest, want[i+1:])
			}
		}
	}
	stop := errors.New("stop")
	n := 0
	if err := db.ScanTransactions(ctx, "", func(txpipe.RawTransaction, int64, string) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("an error from fn: scan returned %v after %d rows", err, n)
	}
}

func TestLoadResultsReference(t *testing.T) {
	path := filepath.Join(reftest.Results(t), csvfile.StreamFile)
	for _, mode := range loadModes {
		t.Run(mode.name, func(t *testing.T) {
			db := openTest(t, mode.opt)
			ctx := context.Background()
			n, err := db.LoadResults(ctx, "stream_transactions", path)
			if err != nil {
				t.Fatal(err)
			}
			requireLoadData(t, db, mode.name)
			if n != 400 {
				t.Errorf("loaded %d rows, want 400", n)
			}
			rows, err := db.StreamRows(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// line 3: 2,43,...,-232.74,...,refund,,pending,-95.11000000000001
			r := rows[1]
			if r.ID != 2 || r.PendingBalance != money("-95.11") || r.Amount != money("-232.74") || r.Status != txpipe.StatusPending || r.Seq != 3 || r.RelatedID != "" {
				t.Errorf("row 2 = %+v", r)
			}
			// Loading again replaces.
			if n, err := db.LoadResults(ctx, "stream_transactions", path); err != nil || n != 400 {
				t.Fatalf("second load: %d, %v", n, err)
			}
			if c := count(t, db, "stream_transactions"); c != 400 {
				t.Errorf("%d rows after the second load", c)
			}
		})
	}
}

func TestLoadResultsColumns(t *testing.T) {
	header := strings.Join(csvfile.ResultColumns, ",") + ",extra\n"
	content := header +
		"1,1,\"Shop, \"\"A\"\"\",2025-04-01 01:21:09,131.76,\"Line\nbreak 10859\",purchase,,declined,120.67,location_mismatch,x\n" +
		"2,1,Shop\\B,2025-04-01 01:21:10,-1,Here 10001,refund,1,pending,119.67,,y\n"
	path := writeFile(t, "stream_transactions.csv", content)
	var dumps [][][]string
	for _, mode := range loadModes {
		t.Run(mode.name, func(t *testing.T) {
			db := openTest(t, mode.opt)
			ctx := context.Background()
			n, err := db.LoadResults(ctx, "stream_transactions", path)
			if err != nil {
				t.Fatal(err)
			}
			if n != 2 {
				t.Errorf("loaded %d", n)
			}
			got := dump(t, db, "stream_transactions", "seq")
			want := [][]string{
				{"1", "1", `Shop, "A"`, "2025-04-01 01:21:09", "131.76", "Line\nbreak 10859", "purchase", "<NULL>", "declined", "120.67", "location_mismatch", "2", "-1", "-1"},
				{"2", "1", `Shop\B`, "2025-04-01 01:21:10", "-1.00", "Here 10001", "refund", "1", "pending", "119.67", "", "4", "-1", "-1"},
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("stream_transactions =\n%q\nwant\n%q", got, want)
			}
			dumps = append(dumps, got)

			bad := writeFile(t, "bad.csv", "transaction_id,card_id\n1,2\n")
			if _, err := db.LoadResults(ctx, "stream_transactions", bad); err == nil || !strings.Contains(err.Error(), "missing column") {
				t.Errorf("a file without the needed columns: %v", err)
			}
			if c := count(t, db, "stream_transactions"); c != 2 {
				t.Errorf("a failed load left %d rows", c)
			}
			if _, err := db.LoadResults(ctx, "no_such_table", path); err == nil {
				t.Error("loading into a missing table succeeded")
			}
			if _, err := db.LoadResults(ctx, "x`; DROP TABLE cards", path); err == nil {
				t.Error("a bad table name was accepted")
			}
			short := writeFile(t, "short.csv", header+"1,1,Shop\n")
			if _, err := db.LoadResults(ctx, "stream_transactions", short); err == nil || !strings.Contains(err.Error(), "short.csv:2") {
				t.Errorf("a short row: %v", err)
			}
		})
	}
	if len(dumps) == 2 && !reflect.DeepEqual(dumps[0], dumps[1]) {
		t.Error("the two load paths differ")
	}
}

// Every reference result file loads into its table (the batch tables come
// with migration 00002; the test skips a table that does not exist yet).
func TestLoadResultsAllReferenceFiles(t *testing.T) {
	dir := reftest.Results(t)
	db := openTest(t)
	ctx := context.Background()
	for _, f := range []struct {
		file, table string
		rows        int64
	}{
		{csvfile.StreamFile, "stream_transactions", 400},
		{csvfile.BatchFile, "batch_transactions", 400},
		{csvfile.CardsUpdatedFile, "cards_updated", 54},
		{csvfile.CustomersUpdFile, "customers_updated", 30},
	} {
		t.Run(f.table, func(t *testing.T) {
			if _, err := tableColumns(ctx, db.SQL, f.table); err != nil {
				t.Skipf("no table %s yet: %v", f.table, err)
			}
			n, err := db.LoadResults(ctx, f.table, filepath.Join(dir, f.file))
			if err != nil {
				t.Fatal(err)
			}
			if int64(n) != f.rows || count(t, db, f.table) != f.rows {
				t.Errorf("loaded %d rows, table has %d, want %d", n, count(t, db, f.table), f.rows)
			}
		})
	}
	// cards_updated.csv line 3: 2,1,2,...,5000.0,439.12999999999994,...
	if _, err := tableColumns(ctx, db.SQL, "cards_updated"); err != nil {
		return
	}
	if rows := dump(t, db, "cards_updated", "card_id"); len(rows) > 1 && rows[1][6] != "439.13" {
		t.Errorf("card 2 current_balance %s, want 439.13", rows[1][6])
	}
}
