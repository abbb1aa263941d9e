package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/internal/mysqltest"
	"github.com/txpipe/txpipe/internal/reftest"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/stream"
	"github.com/txpipe/txpipe/stream/embedded"
)

// The bad-input suite: every kind of bad input a user can hand txpipe, run
// through the real binary on the embedded broker, without MySQL and with
// it. For each kind it asserts the exit code, that the message names the
// place (file:line:column, or the address), that no command runs longer
// than its bound, and, where transactions flow, that every input row ends
// in exactly one of the stream results or the rejected rows and that the
// other rows' results equal a clean run's (the reference's).
//
// A kind is a row of badInputs. To add one (a raw record on the input
// topic, a foreign producer, a broker that goes away), give it a prepare
// step (files, settings, records written with a kgo client to c.brokers)
// and the commands to run; its checks come with it.

// badInput is one kind of bad input.
type badInput struct {
	name  string
	area  string // master, transactions, operational
	modes []string
	// prepare changes the clean dataset in c.data, the settings in c.env,
	// or the broker.
	prepare func(t *testing.T, c *badCase)
	// after runs a step right after the command of that name (say, writes
	// raw records to the input topic once produce has created it).
	after map[string]func(t *testing.T, c *badCase)
	// run lists the commands, in order. All but the last must exit 0; the
	// last exits with exit and says every string of says (after
	// c.expand) in its output.
	run  [][]string
	exit int
	says []string
	// bound is the most any command may take (default 90 s: far above
	// what they take; it proves that each ends).
	bound time.Duration
	// nothingOut: the failed command left nothing behind (no master
	// record on a topic, no row in MySQL).
	nothingOut bool
	// rows: the transactions flowed; rejects are the rows (by line of
	// transactions.csv) that must be rejected and why. Every other row is
	// judged, and the stream results equal the reference's, unless
	// noStream says no row may be judged.
	rows     bool
	rejects  map[int]txpipe.RejectReason
	noStream bool
	// pending: not fixed yet (names the issue); the kind is skipped.
	pending string
}

// Modes a kind runs in.
const (
	modeCSV   = "csv"
	modeMySQL = "mysql"
)

var bothModes = []string{modeCSV, modeMySQL}

// badCase is one run of a kind: its files, settings and broker.
type badCase struct {
	data, results string
	env           map[string]string
	brokers       []string
	topic         string
	db            *mysql.Config // nil without MySQL
	dbAddr        string        // the address the commands use (DB_HOST:DB_PORT)
	// fromTopic are rows that did not come from the file: records written
	// straight to the input topic, by source (topic/partition/offset),
	// with the reason each must be rejected for.
	fromTopic map[string]txpipe.RejectReason
}

// expand replaces {data}, {db} (address/database) and {addr} in s.
func (c *badCase) expand(s string) string {
	db := ""
	if c.db != nil {
		db = c.dbAddr + "/" + c.env["DB_NAME"]
	}
	return strings.NewReplacer("{data}", c.data, "{db}", db, "{addr}", c.dbAddr).Replace(s)
}

// Lines of the reference transactions.csv that the kinds change.
const (
	refRows    = 400 // data rows of the reference transactions.csv
	midLine    = 201 // a line in the middle
	addedID    = 9001
	crlf       = "\r\n"
	goodTxLine = "26,Added Shop,2025-04-02 12:00:00,1.00,\"1 Main St, Queens, NY 10859\",purchase,"
)

func badInputs() []badInput {
	insertTx := func(line int, text string) func(*testing.T, *badCase) {
		return func(t *testing.T, c *badCase) {
			insertLine(t, filepath.Join(c.data, csvfile.TransactionsFile), line, text)
		}
	}
	appendTx := func(text string) func(*testing.T, *badCase) {
		return insertTx(refRows+2, text)
	}
	editFile := func(file, old, new string) func(*testing.T, *badCase) {
		return func(t *testing.T, c *badCase) { replaceIn(t, filepath.Join(c.data, file), old, new) }
	}
	setEnv := func(kv ...string) func(*testing.T, *badCase) {
		return func(t *testing.T, c *badCase) {
			for i := 0; i < len(kv); i += 2 {
				c.env[kv[i]] = kv[i+1]
			}
		}
	}
	txFlow := [][]string{{"load", "initial"}, {"produce", "--no-progress"}, {"consume", "--until-idle", "3s", "--memory-limit", "0"}}
	loadInitial := [][]string{{"load", "initial"}}
	rejects := func(line int, r txpipe.RejectReason) map[int]txpipe.RejectReason {
		return map[int]txpipe.RejectReason{line: r}
	}
	id := strconv.Itoa(addedID)
	dbCommands := [][]string{{"load", "initial"}, {"migrate"}, {"batch", "--no-publish"}, {"produce", "--from-db", "--no-progress"}, {"consume", "--until-idle", "3s", "--memory-limit", "0"}}
	var kinds []badInput
	// Every database command, one kind each, for a database problem.
	forDBCommands := func(name string, cmds [][]string, prepare func(*testing.T, *badCase), says ...string) {
		for _, cmd := range cmds {
			kinds = append(kinds, badInput{
				name: name + ": " + strings.Join(cmd[:min(len(cmd), 2)], " "), area: "operational", modes: []string{modeMySQL},
				prepare: prepare, run: [][]string{cmd}, exit: 1, says: says, bound: 45 * time.Second,
			})
		}
	}

	kinds = append(kinds,
		// Master files: a bad row stops load initial with file:line:column
		// before anything is published or stored.
		badInput{name: "customer name not UTF-8", area: "master", prepare: editFile(csvfile.CustomersFile, "Jessica Stephenson", "Jessica St\xe9phenson"),
			run: loadInitial, exit: 1, says: []string{"customers.csv:3: column name: not valid UTF-8"}, nothingOut: true},
		badInput{name: "300-character card number", area: "master", prepare: editFile(csvfile.CardsFile, "5527-2892-1451-7221", strings.Repeat("5", 300)),
			run: loadInitial, exit: 1, says: []string{"cards.csv:3: column card_number: longer than its column: 300 characters, at most 32"}, nothingOut: true},
		badInput{name: "NUL in a card number", area: "master", prepare: editFile(csvfile.CardsFile, "5527-2892-1451-7221", "5527-2892\x00-1451"),
			run: loadInitial, exit: 1, says: []string{"cards.csv:3: column card_number: control character U+0000 at byte 9"}, nothingOut: true},
		badInput{name: "escape in an expiration date", area: "master", prepare: editFile(csvfile.CardsFile, "12/26", "1\x1b/26"),
			run: loadInitial, exit: 1, says: []string{"cards.csv:3: column expiration_date: control character U+001B"}, nothingOut: true},
		badInput{name: "10 MB customer address", area: "master", prepare: editFile(csvfile.CustomersFile, "794 Sarah Spur", strings.Repeat("a", 10<<20)),
			run: loadInitial, exit: 1, says: []string{"customers.csv:3: column address: longer than its column"}, nothingOut: true},
		badInput{name: "10 MB card number", area: "master", prepare: editFile(csvfile.CardsFile, "5527-2892-1451-7221", strings.Repeat("5", 10<<20)),
			run: loadInitial, exit: 1, says: []string{"cards.csv:3: column card_number: longer than its column"}, nothingOut: true},
		badInput{name: "bare quote in a customer row", area: "master", prepare: editFile(csvfile.CustomersFile, "Jessica Stephenson", `Jessica "Jess Stephenson`),
			run: loadInitial, exit: 1, says: []string{"customers.csv:3:11: malformed CSV: a quote inside a field"}, nothingOut: true},
		badInput{name: "unterminated quote in the last card row", area: "master", prepare: func(t *testing.T, c *badCase) {
			appendTo(t, filepath.Join(c.data, csvfile.CardsFile), `99,1,1,"5208-0000,06/27,100.0,0,2022-11-18`+crlf)
		}, run: loadInitial, exit: 1, says: []string{"cards.csv:56:8: malformed CSV: the quoted field that starts here is never closed"}, nothingOut: true},
		badInput{name: "hex rewards rate", area: "master", prepare: editFile(csvfile.CardTypesFile, "0.005", "0x1p-8"),
			run: loadInitial, exit: 1, says: []string{"credit_card_types.csv:2: column rewards_rate:", "not a plain decimal"}, nothingOut: true},
		badInput{name: "credit score beyond INT", area: "master", prepare: editFile(csvfile.CustomersFile, ",808,", ",8080000000,"),
			run: loadInitial, exit: 1, says: []string{"customers.csv:3: column credit_score:"}, nothingOut: true},
		badInput{name: "duplicate card id", area: "master", prepare: editFile(csvfile.CardsFile, "2,1,2,5527", "1,1,2,5527"),
			run: loadInitial, exit: 1, says: []string{"cards.csv:3: column card_id: duplicate id 1 (first on line 2)"}, nothingOut: true},
		badInput{name: "card of an unknown customer", area: "master", prepare: editFile(csvfile.CardsFile, "2,1,2,5527", "2,999,2,5527"),
			run: loadInitial, exit: 1, says: []string{"cards.csv:3: column customer_id: customer 999 does not exist"}, nothingOut: true},
		badInput{name: "missing cards.csv", area: "master", prepare: func(t *testing.T, c *badCase) { os.Remove(filepath.Join(c.data, csvfile.CardsFile)) },
			run: loadInitial, exit: 1, says: []string{"{data}/cards.csv: no such file"}, nothingOut: true},
		badInput{name: "empty customers.csv", area: "master", prepare: func(t *testing.T, c *badCase) { writeFile(t, filepath.Join(c.data, csvfile.CustomersFile), "") },
			run: loadInitial, exit: 1, says: []string{"customers.csv:1: empty file, expected a header"}, nothingOut: true},
		badInput{name: "missing dataset directory", area: "master", prepare: setEnv("TXPIPE_DATA", "/nonexistent/dataset"),
			run: loadInitial, exit: 1, says: []string{"/nonexistent/dataset/customers.csv: no such file"}, nothingOut: true},
		// Decided: a cards.csv with only a header loads with a loud
		// warning, and every transaction is then rejected as unknown_card.
		badInput{name: "cards.csv with only a header", area: "master", prepare: func(t *testing.T, c *badCase) {
			writeFile(t, filepath.Join(c.data, csvfile.CardsFile), strings.Join(csvfile.CardColumns, ",")+crlf)
		}, run: txFlow, says: []string{"consume:"}, rows: true, noStream: true},

		// Transaction rows: a bad row costs that row; it is rejected with
		// its reason and every other row is judged as in a clean run.
		badInput{name: "bare quote in a merchant", area: "transactions", prepare: insertTx(midLine, id+`,26,Joe"s Diner,2025-04-02 12:00:00,1.00,"1 Main St, Queens, NY 10859",purchase,`+crlf),
			run: txFlow, rows: true, rejects: rejects(midLine, txpipe.RejectBadCSV)},
		badInput{name: "unterminated quote in the last row", area: "transactions", prepare: appendTx(id + `,26,"Joe's Diner,2025-04-04 23:59:00,1.00,x NY 10859,purchase,` + crlf),
			run: txFlow, rows: true, rejects: rejects(refRows+2, txpipe.RejectBadCSV)},
		badInput{name: "unterminated quote in the last row, no line end", area: "transactions", prepare: appendTx(id + `,26,"Joe's Diner,2025-04-04 23:59:00,1.00,x NY 10859,purchase,`),
			run: txFlow, rows: true, rejects: rejects(refRows+2, txpipe.RejectBadCSV)},
		badInput{name: "unterminated quote midway", area: "transactions", prepare: insertTx(midLine, id+`,26,"Joe's Diner,2025-04-02 12:00:00,1.00,x NY 10859,purchase,`+crlf),
			run: txFlow, rows: true, rejects: rejects(midLine, txpipe.RejectBadCSV)},
		badInput{name: "text after a closing quote", area: "transactions", prepare: insertTx(midLine, id+`,26,"Joe"s Diner,2025-04-02 12:00:00,1.00,x NY 10859,purchase,`+crlf),
			run: txFlow, rows: true, rejects: rejects(midLine, txpipe.RejectBadCSV)},
		badInput{name: "too few fields", area: "transactions", prepare: insertTx(midLine, id+",26,Short Row"+crlf),
			run: txFlow, rows: true, rejects: rejects(midLine, txpipe.RejectFieldCount)},
		badInput{name: "merchant not UTF-8", area: "transactions", prepare: insertTx(midLine, id+",26,Caf\xe9,2025-04-02 12:00:00,1.00,x NY 10859,purchase,"+crlf),
			run: txFlow, rows: true, rejects: rejects(midLine, txpipe.RejectText)},
		badInput{name: "300-character merchant", area: "transactions", prepare: insertTx(midLine, id+",26,"+strings.Repeat("m", 300)+",2025-04-02 12:00:00,1.00,x NY 10859,purchase,"+crlf),
			run: txFlow, rows: true, rejects: rejects(midLine, txpipe.RejectText)},
		badInput{name: "10 MB merchant", area: "transactions", prepare: insertTx(midLine, id+",26,"+strings.Repeat("m", 10<<20)+",2025-04-02 12:00:00,1.00,x NY 10859,purchase,"+crlf),
			run: txFlow, rows: true, rejects: rejects(midLine, txpipe.RejectText),
			pending: "issue 10 item 3: the producer must refuse a row over the broker's record limit (txpipe.CheckSize) before sending"},
		badInput{name: "10 MB merchant, loaded into MySQL", area: "transactions", modes: []string{modeMySQL},
			prepare: insertTx(midLine, id+",26,"+strings.Repeat("m", 10<<20)+",2025-04-02 12:00:00,1.00,x NY 10859,purchase,"+crlf),
			run:     loadInitial, says: []string{"400 transactions loaded, 1 rejected"}},
		badInput{name: "amount with an exponent", area: "transactions", prepare: insertTx(midLine, id+","+strings.Replace(goodTxLine, ",1.00,", ",1e3,", 1)+crlf),
			run: txFlow, rows: true, rejects: rejects(midLine, txpipe.RejectAmount)},
		badInput{name: "ISO timestamp", area: "transactions", prepare: insertTx(midLine, id+","+strings.Replace(goodTxLine, "2025-04-02 12:00:00", "2025-04-02T12:00:00Z", 1)+crlf),
			run: txFlow, rows: true, rejects: rejects(midLine, txpipe.RejectTimestamp)},
		badInput{name: "unknown card", area: "transactions", prepare: insertTx(midLine, id+","+strings.Replace(goodTxLine, "26,", "9999,", 1)+crlf),
			run: txFlow, rows: true, rejects: rejects(midLine, txpipe.RejectUnknownCard)},
		badInput{name: "negative card id", area: "transactions", prepare: insertTx(midLine, id+","+strings.Replace(goodTxLine, "26,", "-26,", 1)+crlf),
			run: txFlow, rows: true, rejects: rejects(midLine, txpipe.RejectCardID)},
		badInput{name: "blank lines and a BOM", area: "transactions", prepare: func(t *testing.T, c *badCase) {
			path := filepath.Join(c.data, csvfile.TransactionsFile)
			insertLine(t, path, midLine, crlf+crlf)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, path, "\ufeff"+string(b))
		}, run: txFlow, rows: true},
		badInput{name: "missing transactions.csv", area: "transactions", prepare: func(t *testing.T, c *badCase) { os.Remove(filepath.Join(c.data, csvfile.TransactionsFile)) },
			modes: []string{modeCSV}, run: [][]string{{"load", "initial"}, {"produce", "--no-progress"}}, exit: 1, says: []string{"{data}/transactions.csv: no such file"}},
		badInput{name: "transactions.csv with only a header", area: "transactions", prepare: func(t *testing.T, c *badCase) {
			writeFile(t, filepath.Join(c.data, csvfile.TransactionsFile), strings.Join(txpipe.TransactionColumns, ",")+crlf)
		}, run: [][]string{{"load", "initial"}, {"produce", "--no-progress"}}, says: []string{"produced 0 records"}},

		// Raw records on the input topic, written by another client.
		badInput{name: "a record that is not JSON", area: "topic", modes: []string{modeCSV},
			after: map[string]func(*testing.T, *badCase){"produce": writeRaw(&kgo.Record{Key: []byte("26"), Value: []byte(`{"transaction_id": "9001", "card_id": 26,`)}, txpipe.RejectBadJSON)},
			run:   txFlow, rows: true},

		// Operational mistakes.
		badInput{name: "topic with a slash", area: "operational", prepare: setEnv("KAFKA_TOPIC", "tx/in"), run: [][]string{{"produce"}}, exit: 1,
			says: []string{`KAFKA_TOPIC: "tx/in" has '/' at byte 2`}},
		badInput{name: "topic with a space", area: "operational", prepare: setEnv("KAFKA_TOPIC", "tx in"), run: [][]string{{"consume", "--until-idle", "1s"}}, exit: 1,
			says: []string{"KAFKA_TOPIC:"}},
		badInput{name: "topic '..'", area: "operational", prepare: setEnv("KAFKA_TOPIC", ".."), run: loadInitial, exit: 1,
			says: []string{`KAFKA_TOPIC: ".." is not a topic name Kafka takes`}},
		badInput{name: "topic of 250 characters", area: "operational", prepare: setEnv("KAFKA_TOPIC", strings.Repeat("t", 250)), run: loadInitial, exit: 1,
			says: []string{"KAFKA_TOPIC: 250 characters, at most 237"}},
		badInput{name: "DB_CONNECT_TIMEOUT not a duration", area: "operational", prepare: setEnv("DB_CONNECT_TIMEOUT", "soon"), run: [][]string{{"migrate"}}, exit: 1,
			says: []string{`DB_CONNECT_TIMEOUT "soon": not a duration`}},
		badInput{name: "DB_PORT not a port", area: "operational", prepare: setEnv("DB_HOST", "127.0.0.1", "DB_PORT", "33o6"), run: [][]string{{"migrate"}}, exit: 1,
			says: []string{`DB_PORT "33o6": not a port number`}},
		badInput{name: "missing --env-file", area: "operational", run: [][]string{{"load", "initial", "--env-file", "/nonexistent/.env"}}, exit: 1,
			says: []string{"read --env-file /nonexistent/.env"}},
	)
	wrongPassword := func(t *testing.T, c *badCase) {
		user, _ := mysqltest.NewUser(t)
		c.env["DB_USER"], c.env["DB_PASSWORD"] = user, "wrong"
	}
	noPrivileges := func(t *testing.T, c *badCase) {
		user, pw := mysqltest.NewUser(t)
		c.env["DB_USER"], c.env["DB_PASSWORD"] = user, pw
	}
	forDBCommands("wrong password", dbCommands, wrongPassword, "{db}: access denied: check DB_USER and DB_PASSWORD: Error 1045")
	forDBCommands("no privileges", dbCommands, noPrivileges, "{db}: access denied to the database", "Error 1044")
	forDBCommands("invalid DB_NAME", dbCommands, setEnv("DB_NAME", "tx/db"), `{db}: invalid database name "tx/db"`)
	noCommands := dbCommands[:4] // consume judges while the database is down, by design
	forDBCommands("nothing listens on the database port", noCommands, func(t *testing.T, c *badCase) {
		c.dbAddr = closedPort(t)
		setDBAddr(c)
		c.env["DB_CONNECT_TIMEOUT"] = "2s"
	}, "the database did not answer within 2s (DB_CONNECT_TIMEOUT, --db-connect-timeout): mysql {db}: gave up after")
	forDBCommands("a database that never answers", noCommands, func(t *testing.T, c *badCase) {
		c.dbAddr = silentListener(t)
		setDBAddr(c)
		c.env["DB_CONNECT_TIMEOUT"] = "2s"
	}, "the database did not answer within 2s", "mysql {db}: gave up after")
	return kinds
}

// TestBadInputSuite runs every kind of bad input in each of its modes.
func TestBadInputSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary many times")
	}
	bin := suiteBinary(t)
	ref := reftest.Data(t)
	want := filepath.Join(reftest.Results(t), csvfile.StreamFile)
	seen := map[string]bool{}
	n := 0
	for _, k := range badInputs() {
		if seen[k.name] {
			t.Fatalf("two kinds named %q", k.name)
		}
		seen[k.name] = true
		modes := k.modes
		if modes == nil {
			modes = bothModes
		}
		for _, mode := range modes {
			n++
			t.Run(mode+"/"+k.area+"/"+k.name, func(t *testing.T) {
				if k.pending != "" {
					t.Skip("pending: " + k.pending)
				}
				runBadInput(t, bin, ref, want, mode, k)
			})
		}
	}
	if len(seen) < 40 {
		t.Errorf("%d kinds, the suite wants at least 40", len(seen))
	}
	t.Logf("%d kinds, %d runs", len(seen), n)
}

func runBadInput(t *testing.T, bin, ref, wantStream, mode string, k badInput) {
	b, err := embedded.Start(0, "")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c := &badCase{data: t.TempDir(), results: t.TempDir(), brokers: b.Addrs(), topic: "bad-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		fromTopic: map[string]txpipe.RejectReason{}}
	if err := os.CopyFS(c.data, os.DirFS(ref)); err != nil {
		t.Fatal(err)
	}
	c.env = map[string]string{
		"KAFKA_BOOTSTRAP_SERVERS": strings.Join(c.brokers, ","), "KAFKA_TOPIC": c.topic, "KAFKA_GROUP_ID": c.topic,
		"TXPIPE_DATA": c.data, "TXPIPE_RESULTS": c.results,
	}
	if mode == modeMySQL {
		c.db = mysqltest.NewDatabase(t)
		c.dbAddr = c.db.Addr
		setDBAddr(c)
		c.env["DB_USER"], c.env["DB_PASSWORD"], c.env["DB_NAME"] = c.db.User, c.db.Passwd, c.db.DBName
	}
	if k.prepare != nil {
		k.prepare(t, c)
	}
	bound := k.bound
	if bound == 0 {
		bound = 90 * time.Second
	}
	for i, args := range k.run {
		if args[0] == "consume" {
			args = append(slices.Clone(args), "--instance", c.topic+"-"+strconv.Itoa(i))
		}
		code, out, took := runBinary(t, bin, c.env, bound, args...)
		last := i == len(k.run)-1
		if !last || k.exit == 0 {
			if code != 0 {
				t.Fatalf("txpipe %s: exit %d after %s, want 0:\n%s", strings.Join(args, " "), code, took, out)
			}
		}
		if step := k.after[args[0]]; step != nil {
			step(t, c)
		}
		if !last {
			continue
		}
		if code != k.exit {
			t.Fatalf("txpipe %s: exit %d after %s, want %d:\n%s", strings.Join(args, " "), code, took, k.exit, out)
		}
		for _, s := range k.says {
			if s = c.expand(s); !strings.Contains(out, s) {
				t.Errorf("txpipe %s: the output does not say %q:\n%s", strings.Join(args, " "), s, clip(out))
			}
		}
		if k.exit != 0 && strings.Count(strings.TrimSpace(lastLine(out)), "\n") == 0 && len(lastLine(out)) > 4000 {
			t.Errorf("txpipe %s: an error message of %d bytes", strings.Join(args, " "), len(lastLine(out)))
		}
	}
	if k.nothingOut {
		if n := topicRecords(t, c.brokers, stream.TopicsFor(c.topic).Cards) + topicRecords(t, c.brokers, stream.TopicsFor(c.topic).Customers); n != 0 {
			t.Errorf("%d master records published by a load that failed", n)
		}
		if c.db != nil {
			for _, table := range []string{"customers", "cards", "transactions"} {
				if n := tableRows(t, c.db, table); n != 0 {
					t.Errorf("%s has %d rows after a load that failed", table, n)
				}
			}
		}
	}
	if k.rows {
		checkRows(t, c, k, wantStream)
	}
}

// checkRows: every row of the transactions file (as the reader splits
// it) is in exactly one of the stream results and the rejected rows;
// the kind's rejects are rejected with their reason; and the stream
// results equal the reference's (the clean run's), or are empty.
func checkRows(t *testing.T, c *badCase, k badInput, wantStream string) {
	t.Helper()
	r, err := csvfile.OpenTransactions(filepath.Join(c.data, csvfile.TransactionsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var input []csvfile.TransactionRow
	for {
		row, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		input = append(input, row)
	}
	judged := map[string]int{} // transaction id → times
	if err := csvfile.ReadColumns(filepath.Join(c.results, csvfile.StreamFile), []string{"transaction_id"}, func(v []string) { judged[v[0]]++ }); err != nil {
		t.Fatal(err)
	}
	rejected := map[string][]string{} // source → reasons
	details := map[string]string{}    // source → detail
	if err := csvfile.ReadColumns(filepath.Join(c.results, csvfile.RejectedFile), []string{"source", "reason", "detail"}, func(v []string) {
		rejected[v[0]] = append(rejected[v[0]], v[1])
		details[v[0]] = v[2]
	}); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, n := range judged {
		total += n
	}
	for _, rs := range rejected {
		total += len(rs)
	}
	if total != len(input)+len(c.fromTopic) {
		t.Errorf("%d input rows (%d from the file, %d from the topic), %d results and rejected rows", len(input)+len(c.fromTopic), len(input), len(c.fromTopic), total)
	}
	for src, want := range c.fromTopic {
		if rs := rejected[src]; len(rs) != 1 || rs[0] != string(want) {
			t.Errorf("record %s rejected as %v, want %s", src, rs, want)
		}
	}
	for _, row := range input {
		src := csvfile.TransactionsFile + ":" + strconv.Itoa(row.Line)
		j, rj := judged[row.Raw.TransactionID], len(rejected[src])
		if row.Reject != "" {
			j = 0 // its fields may be anything
		}
		if j+rj != 1 {
			t.Errorf("line %d (transaction %q): judged %d times, rejected %d times", row.Line, row.Raw.TransactionID, j, rj)
		}
		if want, ok := k.rejects[row.Line]; ok && (rj != 1 || rejected[src][0] != string(want)) {
			t.Errorf("line %d: rejected as %v, want %s", row.Line, rejected[src], want)
		}
		if row.Reject == txpipe.RejectBadCSV && !strings.HasPrefix(details[src], src+":") {
			t.Errorf("line %d: the rejected row's detail %q does not name file:line:column", row.Line, details[src])
		}
	}
	for line := range k.rejects {
		if !slices.ContainsFunc(input, func(r csvfile.TransactionRow) bool { return r.Line == line }) {
			t.Errorf("line %d is not a row of the file", line)
		}
	}
	if k.noStream {
		if len(judged) != 0 {
			t.Errorf("%d transactions judged, want none", len(judged))
		}
		for src, rs := range rejected {
			if len(rs) != 1 || rs[0] != string(txpipe.RejectUnknownCard) {
				t.Errorf("%s rejected as %v, want unknown_card", src, rs)
			}
		}
	} else {
		reftest.CompareFile(t, filepath.Join(c.results, csvfile.StreamFile), wantStream)
	}
	if c.db != nil {
		var n int
		if err := openSQL(t, c.db.FormatDSN()).QueryRow("SELECT COUNT(*) FROM stream_transactions").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != len(judged) {
			t.Errorf("MySQL holds %d stream rows, the CSV %d", n, len(judged))
		}
	}
}

var (
	suiteBinOnce sync.Once
	suiteBinDir  string
	suiteBinErr  error
)

// suiteBinary builds txpipe once for the suite (removed by TestMain).
func suiteBinary(t *testing.T) string {
	t.Helper()
	suiteBinOnce.Do(func() {
		if suiteBinDir, suiteBinErr = os.MkdirTemp("", "txpipe-suite-"); suiteBinErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(suiteBinDir, "txpipe"), ".").CombinedOutput()
		if err != nil {
			suiteBinErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if suiteBinErr != nil {
		t.Fatal(suiteBinErr)
	}
	return filepath.Join(suiteBinDir, "txpipe")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if suiteBinDir != "" {
		os.RemoveAll(suiteBinDir)
	}
	os.Exit(code)
}

// suiteSettings are the variables the suite sets; inherited values of
// them are dropped, so that the machine's environment cannot change a
// run.
var suiteSettings = []string{"KAFKA_BOOTSTRAP_SERVERS", "KAFKA_TOPIC", "KAFKA_GROUP_ID", "CONSUMER_TIMEOUT_MS", "DB_HOST", "DB_PORT",
	"DB_USER", "DB_PASSWORD", "DB_NAME", "DB_CONNECT_TIMEOUT", "TXPIPE_RESULTS", "TXPIPE_DATA", "GOMEMLIMIT"}

// runBinary runs txpipe with env in an empty directory (no .env) and
// returns its exit code and output (stdout and stderr). A run longer than
// bound is killed and fails the test.
func runBinary(t *testing.T, bin string, env map[string]string, bound time.Duration, args ...string) (int, string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = t.TempDir()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !slices.Contains(suiteSettings, k) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("txpipe %s ran longer than its bound %s:\n%s", strings.Join(args, " "), bound, clip(out.String()))
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("txpipe %s: %v", strings.Join(args, " "), err)
	}
	return code, out.String(), took
}

func clip(s string) string {
	if len(s) > 8000 {
		return s[:4000] + "\n…\n" + s[len(s)-4000:]
	}
	return s
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}

func setDBAddr(c *badCase) {
	host, port, _ := strings.Cut(c.dbAddr, ":")
	c.env["DB_HOST"], c.env["DB_PORT"] = host, port
	if c.env["DB_NAME"] == "" {
		c.env["DB_NAME"] = "txpipe_never_created"
	}
}

// writeRaw returns a step that writes rec to the input topic as a foreign
// client would (no txpipe headers) and expects it rejected for reason.
func writeRaw(rec *kgo.Record, reason txpipe.RejectReason) func(*testing.T, *badCase) {
	return func(t *testing.T, c *badCase) {
		t.Helper()
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.brokers...), kgo.DefaultProduceTopic(c.topic))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := cl.ProduceSync(ctx, rec).First()
		if err != nil {
			t.Fatal(err)
		}
		c.fromTopic[fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)] = reason
	}
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// silentListener returns the address of a listener that accepts
// connections and never says a word, until the test ends.
func silentListener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	return l.Addr().String()
}

// topicRecords counts the records of a topic (0 when it does not exist).
func topicRecords(t *testing.T, brokers []string, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			n += o.Offset
		}
	})
	return n
}

// tableRows counts a table's rows; a table that does not exist has none.
func tableRows(t *testing.T, db *mysql.Config, table string) int {
	t.Helper()
	var n int
	err := openSQL(t, db.FormatDSN()).QueryRow("SELECT COUNT(*) FROM `" + table + "`").Scan(&n)
	var me *mysql.MySQLError
	if errors.As(err, &me) && me.Number == 1146 { // no such table
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// insertLine puts text in a file so that it starts on line (1-based).
func insertLine(t *testing.T, path string, line int, text string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	if line-1 > len(lines) {
		t.Fatalf("%s has %d lines, cannot insert at %d", path, len(lines), line)
	}
	lines = slices.Insert(lines, line-1, text)
	writeFile(t, path, strings.Join(lines, ""))
}

func appendTo(t *testing.T, path, text string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(b)+text)
}

func replaceIn(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%s does not hold %q", path, old)
	}
	writeFile(t, path, strings.Replace(string(b), old, new, 1))
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
