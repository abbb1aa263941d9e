// Package csvfile reads the dataset CSV files and writes the result CSV
// files: the file side of the serving layer.
package csvfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/txpipe/txpipe"
)

// File names of a dataset directory.
const (
	CustomersFile    = "customers.csv"
	CardTypesFile    = "credit_card_types.csv"
	CardsFile        = "cards.csv"
	TransactionsFile = "transactions.csv"
	StreamFile       = "stream_transactions.csv"
	BatchFile        = "batch_transactions.csv"
	CardsUpdatedFile = "cards_updated.csv"
	CustomersUpdFile = "customers_updated.csv"
	RejectedFile     = "rejected_transactions.csv"
	CutoffsFile      = "batch_cutoffs.csv"
	LoadRejectedFile = "load_rejected.csv"
	AlertsFile       = "alerts.csv"
	StagingFile      = "event_staging.csv"
)

// Columns of the dataset files, in order.
var (
	CustomerColumns = []string{"customer_id", "name", "phone_number", "address", "email", "credit_score", "annual_income"}
	CardTypeColumns = []string{"card_type_id", "name", "credit_score_min", "credit_score_max", "credit_limit_min", "credit_limit_max", "annual_fee", "rewards_rate"}
	CardColumns     = []string{"card_id", "customer_id", "card_type_id", "card_number", "expiration_date", "credit_limit", "current_balance", "issue_date"}
)

// Error is a problem in a CSV file, located by file, line and column: the
// column's name, and for a row that breaks the CSV rules the byte in the
// line ("transactions.csv:200:14: ...").
type Error struct {
	File   string
	Line   int
	Col    int // 1-based byte in the line (0: not known)
	Column string
	Err    error
}

// ErrMalformed is wrapped by the error of a row that breaks the CSV
// rules (quoting, length).
var ErrMalformed = errors.New("malformed CSV")

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Col > 0 {
			fmt.Fprintf(&b, ":%d", e.Col)
		}
	}
	if e.Column != "" {
		fmt.Fprintf(&b, ": column %s", e.Column)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// table reads a CSV file with a header, giving access to fields by column
// name and reporting errors with their file, line and column.
type table struct {
	path string
	f    *os.File
	sc   *scanner
	idx  map[string]int
	n    int // fields of the header
	rec  []string
	line int
}

func openTable(path string, columns []string) (*table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open dataset file: %w", err)
	}
	t := &table{path: path, f: f, sc: newScanner(f)}
	ok, err := t.next()
	if err == nil && !ok {
		err = &Error{File: path, Line: 1, Err: errors.New("empty file, expected a header")}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	t.n = len(t.rec)
	t.sc.wantFields = t.n
	t.idx = make(map[string]int, len(t.rec))
	for i, h := range t.rec {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		t.idx[h] = i
	}
	for _, c := range columns {
		if _, ok := t.idx[c]; !ok {
			f.Close()
			return nil, &Error{File: path, Line: t.line, Column: c, Err: errors.New("missing column")}
		}
	}
	return t, nil
}

// next reads the next record; it returns false at the end of the file. A
// row that breaks the CSV rules is an error.
func (t *table) next() (bool, error) {
	ok, err := t.sc.next()
	if err != nil {
		return false, &Error{File: t.path, Line: t.sc.line + 1, Err: err}
	}
	if !ok {
		return false, nil
	}
	t.line = t.sc.start
	if b := t.sc.bad; b != nil {
		return false, badError(t.path, b)
	}
	t.rec = t.sc.strings(t.rec[:0])
	return true, nil
}

// badError is the error of a row that breaks the CSV rules.
func badError(path string, b *badRow) *Error {
	return &Error{File: path, Line: b.Line, Col: b.Col, Err: fmt.Errorf("%w: %s; line %d reads %s", ErrMalformed, b.Msg, b.Start, quoteLine(b.Text, excerptBytes))}
}

func (t *table) errf(col string, format string, args ...any) error {
	return &Error{File: t.path, Line: t.line, Column: col, Err: fmt.Errorf(format, args...)}
}

func (t *table) str(col string) (string, error) {
	i := t.idx[col]
	if i >= len(t.rec) {
		return "", t.errf(col, "missing field: the row has %d fields", len(t.rec))
	}
	return t.rec[i], nil
}

func (t *table) id(col string) (int64, error) {
	s, err := t.str(col)
	if err != nil {
		return 0, err
	}
	n, ok := txpipe.ParseID(s)
	if !ok {
		return 0, t.errf(col, "%s is not a positive integer id", quote(s))
	}
	return n, nil
}

func (t *table) int(col string) (int64, error) {
	s, err := t.str(col)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, t.errf(col, "%s is not an integer", quote(s))
	}
	return n, nil
}

func (t *table) money(col string) (txpipe.Money, error) {
	s, err := t.str(col)
	if err != nil {
		return 0, err
	}
	m, err := txpipe.ParseMoney(s)
	if err != nil {
		return 0, t.errf(col, "bad money: %w", err)
	}
	return m, nil
}

// check turns a row's *txpipe.FieldError into an error naming the file,
// line and column.
func (t *table) check(err error) error {
	var fe *txpipe.FieldError
	if errors.As(err, &fe) {
		return t.errf(fe.Column, "%w", fe.Err)
	}
	return err
}

// quote quotes a value for a message, cut to a readable length.
func quote(s string) string { return strconv.Quote(txpipe.Excerpt(s, 40)) }

func (t *table) close() { t.f.Close() }

// ReadMaster reads and checks the master data of a dataset directory:
// customers.csv, credit_card_types.csv and cards.csv. Any problem stops it
// with an *Error naming the file, line and column.
func ReadMaster(dir string) (*txpipe.Master, error) {
	var m txpipe.Master
	var err error
	if m.Customers, err = ReadCustomers(filepath.Join(dir, CustomersFile)); err != nil {
		return nil, err
	}
	if m.CardTypes, err = ReadCardTypes(filepath.Join(dir, CardTypesFile)); err != nil {
		return nil, err
	}
	if m.Cards, err = ReadCards(filepath.Join(dir, CardsFile), m.Customers, m.CardTypes); err != nil {
		return nil, err
	}
	return &m, nil
}

// readRows reads every row of a file with parse, checks that ids are
// unique, and returns the rows sorted by id.
func readRows[T any](path string, columns []string, parse func(*table) (T, error), id func(T) int64) ([]T, error) {
	t, err := openTable(path, columns)
	if err != nil {
		return nil, err
	}
	defer t.close()
	var rows []T
	seen := map[int64]int{}
	for {
		ok, err := t.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		if len(t.rec) != t.n {
			return nil, t.errf("", "the row has %d fields, the header %d", len(t.rec), t.n)
		}
		v, err := parse(t)
		if err != nil {
			return nil, err
		}
		if prev, dup := seen[id(v)]; dup {
			return nil, t.errf(columns[0], "duplicate id %d (first on line %d)", id(v), prev)
		}
		seen[id(v)] = t.line
		rows = append(rows, v)
	}
	slices.SortFunc(rows, func(a, b T) int { return int(sign(id(a) - id(b))) })
	return rows, nil
}

func sign(x int64) int64 {
	switch {
	case x < 0:
		return -1
	case x > 0:
		return 1
	}
	return 0
}

// ReadCustomers reads customers.csv.
func ReadCustomers(path string) ([]txpipe.Customer, error) {
	return readRows(path, CustomerColumns, func(t *table) (c txpipe.Customer, err error) {
		if c.ID, err = t.id("customer_id"); err != nil {
			return c, err
		}
		if c.Name, err = t.str("name"); err != nil {
			return c, err
		}
		if c.Phone, err = t.str("phone_number"); err != nil {
			return c, err
		}
		if c.Address, err = t.str("address"); err != nil {
			return c, err
		}
		if c.Email, err = t.str("email"); err != nil {
			return c, err
		}
		if c.CreditScore, err = t.int("credit_score"); err != nil {
			return c, err
		}
		if c.AnnualIncome, err = t.money("annual_income"); err != nil {
			return c, err
		}
		return c, t.check(c.Check())
	}, func(c txpipe.Customer) int64 { return c.ID })
}

// ReadCardTypes reads credit_card_types.csv.
func ReadCardTypes(path string) ([]txpipe.CardType, error) {
	return readRows(path, CardTypeColumns, func(t *table) (c txpipe.CardType, err error) {
		if c.ID, err = t.id("card_type_id"); err != nil {
			return c, err
		}
		if c.Name, err = t.str("name"); err != nil {
			return c, err
		}
		if c.ScoreMin, err = t.int("credit_score_min"); err != nil {
			return c, err
		}
		if c.ScoreMax, err = t.int("credit_score_max"); err != nil {
			return c, err
		}
		if c.LimitMin, err = t.money("credit_limit_min"); err != nil {
			return c, err
		}
		if c.LimitMax, err = t.money("credit_limit_max"); err != nil {
			return c, err
		}
		if c.AnnualFee, err = t.money("annual_fee"); err != nil {
			return c, err
		}
		if c.RewardsRate, err = t.str("rewards_rate"); err != nil {
			return c, err
		}
		return c, t.check(c.Check())
	}, func(c txpipe.CardType) int64 { return c.ID })
}

// ReadCards reads cards.csv and checks each card against its customer and
// card type.
func ReadCards(path string, customers []txpipe.Customer, types []txpipe.CardType) ([]txpipe.Card, error) {
	hasCustomer := make(map[int64]bool, len(customers))
	for _, c := range customers {
		hasCustomer[c.ID] = true
	}
	hasType := make(map[int64]bool, len(types))
	for _, ct := range types {
		hasType[ct.ID] = true
	}
	return readRows(path, CardColumns, func(t *table) (c txpipe.Card, err error) {
		if c.ID, err = t.id("card_id"); err != nil {
			return c, err
		}
		if c.CustomerID, err = t.id("customer_id"); err != nil {
			return c, err
		}
		if !hasCustomer[c.CustomerID] {
			return c, t.errf("customer_id", "customer %d does not exist in %s", c.CustomerID, CustomersFile)
		}
		if c.CardTypeID, err = t.id("card_type_id"); err != nil {
			return c, err
		}
		if !hasType[c.CardTypeID] {
			return c, t.errf("card_type_id", "card type %d does not exist in %s", c.CardTypeID, CardTypesFile)
		}
		if c.Number, err = t.str("card_number"); err != nil {
			return c, err
		}
		if c.Expiration, err = t.str("expiration_date"); err != nil {
			return c, err
		}
		if c.CreditLimit, err = t.money("credit_limit"); err != nil {
			return c, err
		}
		if c.CreditLimit <= 0 {
			return c, t.errf("credit_limit", "credit limit %s must be above zero", c.CreditLimit)
		}
		if c.CurrentBalance, err = t.money("current_balance"); err != nil {
			return c, err
		}
		if c.IssueDate, err = t.str("issue_date"); err != nil {
			return c, err
		}
		return c, t.check(c.Check())
	}, func(c txpipe.Card) int64 { return c.ID })
}

// TransactionReader streams the rows of a transactions file as they are
// written. It does not judge them (see txpipe.ParseTransaction), but a row
// that cannot be a transaction at all comes back marked: one whose field
// count differs from the header's (field_count), and one that breaks the
// CSV rules (bad_csv: see scanner for which rows those are and where
// reading starts again after one). Either costs that row only.
type TransactionReader struct {
	t    *table
	file string // the file's base name, as rows name their source
	cols [8]int // index of each of txpipe.TransactionColumns in the file
}

// TransactionRow is a row of a transactions file.
type TransactionRow struct {
	Raw  txpipe.RawTransaction
	Line int // the line the row starts on
	// Reject is empty for a row to judge, RejectFieldCount or RejectBadCSV
	// for one that cannot be; Detail then says why. A bad_csv row's Raw
	// holds at most its leading transaction and card ids (when they are
	// plain numbers), and its Detail names file:line:column and quotes
	// the line's beginning.
	Reject txpipe.RejectReason
	Detail string
}

// OpenTransactions opens a transactions file; the header must name the
// columns of txpipe.TransactionColumns.
func OpenTransactions(path string) (*TransactionReader, error) {
	t, err := openTable(path, txpipe.TransactionColumns)
	if err != nil {
		return nil, err
	}
	r := &TransactionReader{t: t, file: filepath.Base(path)}
	for i, c := range txpipe.TransactionColumns {
		r.cols[i] = t.idx[c]
	}
	return r, nil
}

// Next returns the next row. At the end of the file it returns io.EOF;
// any other error is one of reading the file.
func (r *TransactionReader) Next() (TransactionRow, error) {
	t := r.t
	ok, err := t.sc.next()
	if err != nil {
		return TransactionRow{}, &Error{File: t.path, Line: t.sc.line + 1, Err: err}
	}
	if !ok {
		return TransactionRow{}, io.EOF
	}
	t.line = t.sc.start
	if b := t.sc.bad; b != nil {
		row := TransactionRow{Line: b.Start, Reject: txpipe.RejectBadCSV}
		row.Raw.TransactionID, row.Raw.CardID = leadingIDs(b.Text)
		row.Detail = fmt.Sprintf("%s:%d:%d: %s; line %d reads %s", r.file, b.Line, b.Col, b.Msg, b.Start, quoteLine(b.Text, excerptBytes))
		return row, nil
	}
	t.rec = t.sc.strings(t.rec[:0])
	get := func(c int) string {
		if i := r.cols[c]; i < len(t.rec) {
			return t.rec[i]
		}
		return ""
	}
	row := TransactionRow{Line: t.line, Raw: txpipe.RawTransaction{
		TransactionID: get(0), CardID: get(1), Merchant: get(2), Timestamp: get(3),
		Amount: get(4), Location: get(5), Type: get(6), RelatedID: get(7),
	}}
	if len(t.rec) != t.n {
		row.Reject = txpipe.RejectFieldCount
		row.Detail = fmt.Sprintf("the row has %d fields, the header %d", len(t.rec), t.n)
	}
	return row, nil
}

// leadingIDs returns the first two fields of a broken line when both are
// plain numbers (a transaction id and a card id in the usual column
// order), so that a bad_csv row can still be found by them.
func leadingIDs(line []byte) (string, string) {
	f := bytes.SplitN(line, []byte(","), 3)
	if len(f) < 3 || !digits(f[0]) || !digits(f[1]) {
		return "", ""
	}
	return string(f[0]), string(f[1])
}

func digits(b []byte) bool {
	if len(b) == 0 || len(b) > 19 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Path is the file being read.
func (r *TransactionReader) Path() string { return r.t.path }

// Close closes the file.
func (r *TransactionReader) Close() error { return r.t.f.Close() }

// ReadResults streams the rows of a stream_transactions or
// batch_transactions file to fn, with their line numbers.
func ReadResults(path string, fn func(r txpipe.Result, line int) error) error {
	t, err := openTable(path, ResultColumns[:10])
	if err != nil {
		return err
	}
	defer t.close()
	c := ResultColumns
	for {
		ok, err := t.next()
		if err != nil || !ok {
			return err
		}
		var raw txpipe.RawTransaction
		fields := []*string{&raw.TransactionID, &raw.CardID, &raw.Merchant, &raw.Timestamp, &raw.Amount, &raw.Location, &raw.Type, &raw.RelatedID}
		for i, p := range fields {
			if *p, err = t.str(c[i]); err != nil {
				return err
			}
		}
		tx, reason, detail := txpipe.ParseTransaction(raw)
		if reason != "" {
			return t.errf("", "%s: %s", reason, detail)
		}
		r := txpipe.Result{Transaction: tx}
		st, err := t.str("status")
		if err != nil {
			return err
		}
		switch r.Status = txpipe.Status(st); r.Status {
		case txpipe.StatusPending, txpipe.StatusDeclined, txpipe.StatusApproved:
		default:
			return t.errf("status", "unknown status %q", st)
		}
		if r.PendingBalance, err = t.money("pending_balance"); err != nil {
			return err
		}
		if i, ok := t.idx["decline_reason"]; ok && i < len(t.rec) {
			r.DeclineReason = txpipe.DeclineReason(t.rec[i])
		}
		if r.Pos, err = t.position(); err != nil {
			return err
		}
		r.Seq = int64(t.line)
		if err := fn(r, t.line); err != nil {
			return err
		}
	}
}

// ReadColumns streams the values of the named columns of a CSV file with a
// header; an empty name yields "".
func ReadColumns(path string, cols []string, fn func(vals []string)) error {
	var need []string
	for _, c := range cols {
		if c != "" {
			need = append(need, c)
		}
	}
	t, err := openTable(path, need)
	if err != nil {
		return err
	}
	defer t.close()
	vals := make([]string, len(cols))
	for {
		ok, err := t.next()
		if err != nil || !ok {
			return err
		}
		for i, c := range cols {
			vals[i] = ""
			if c != "" {
				if vals[i], err = t.str(c); err != nil {
					return err
				}
			}
		}
		fn(vals)
	}
}

// ScanColumn streams one column of a CSV file with a header, without
// building records: fn gets the field's bytes (valid until fn returns; nil
// when the row is too short or breaks the CSV rules) and whether the row
// has the header's number of fields (false for a broken row). It is a fast
// first pass (the producer's check that a file is in event order); it
// splits rows as TransactionReader does.
func ScanColumn(path, column string, fn func(value []byte, fieldsOK bool) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open dataset file: %w", err)
	}
	defer f.Close()
	sc := newScanner(f)
	ok, err := sc.next()
	switch {
	case err != nil:
		return &Error{File: path, Line: sc.line + 1, Err: err}
	case !ok:
		return &Error{File: path, Line: 1, Err: errors.New("empty file, expected a header")}
	case sc.bad != nil:
		return badError(path, sc.bad)
	}
	col, n := -1, sc.fields()
	for i := range n {
		if strings.TrimSpace(strings.TrimPrefix(string(sc.field(i)), "\ufeff")) == column {
			col = i
		}
	}
	if col < 0 {
		return &Error{File: path, Line: sc.start, Column: column, Err: errors.New("missing column")}
	}
	sc.wantFields = n
	for {
		ok, err := sc.next()
		if err != nil {
			return &Error{File: path, Line: sc.line + 1, Err: err}
		}
		if !ok {
			return nil
		}
		var v []byte
		if sc.bad == nil && col < sc.fields() {
			v = sc.field(col)
		}
		if err := fn(v, sc.bad == nil && sc.fields() == n); err != nil {
			return err
		}
	}
}

// position reads the optional kafka_partition and kafka_offset columns of
// a stream view: Unpositioned when the file has none or they are empty.
func (t *table) position() (txpipe.Position, error) {
	pi, ok1 := t.idx["kafka_partition"]
	oi, ok2 := t.idx["kafka_offset"]
	if !ok1 || !ok2 || pi >= len(t.rec) || oi >= len(t.rec) || (t.rec[pi] == "" && t.rec[oi] == "") {
		return txpipe.Unpositioned, nil
	}
	p, err := strconv.ParseInt(t.rec[pi], 10, 32)
	if err != nil || p < 0 {
		return txpipe.Position{}, t.errf("kafka_partition", "%q is not a partition", t.rec[pi])
	}
	o, err := strconv.ParseInt(t.rec[oi], 10, 64)
	if err != nil || o < 0 {
		return txpipe.Position{}, t.errf("kafka_offset", "%q is not an offset", t.rec[oi])
	}
	return txpipe.Position{Partition: int32(p), Offset: o}, nil
}
