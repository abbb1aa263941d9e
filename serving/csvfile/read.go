// Package csvfile reads the dataset CSV files and writes the result CSV
// files: the file side of the serving layer.
package csvfile

import (
	"bufio"
	"bytes"
	"encoding/csv"
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
)

// Columns of the dataset files, in order.
var (
	CustomerColumns = []string{"customer_id", "name", "phone_number", "address", "email", "credit_score", "annual_income"}
	CardTypeColumns = []string{"card_type_id", "name", "credit_score_min", "credit_score_max", "credit_limit_min", "credit_limit_max", "annual_fee", "rewards_rate"}
	CardColumns     = []string{"card_id", "customer_id", "card_type_id", "card_number", "expiration_date", "credit_limit", "current_balance", "issue_date"}
)

// Error is a problem in a CSV file, located by file, line and column.
type Error struct {
	File   string
	Line   int
	Column string
	Err    error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
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
	r    *csv.Reader
	idx  map[string]int
	rec  []string
	line int
}

func openTable(path string, columns []string) (*table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open dataset file: %w", err)
	}
	t := &table{path: path, f: f, r: csv.NewReader(f)}
	t.r.FieldsPerRecord = -1
	t.r.ReuseRecord = true
	header, err := t.r.Read()
	if err != nil {
		f.Close()
		if errors.Is(err, io.EOF) {
			err = errors.New("empty file, expected a header")
		}
		return nil, &Error{File: path, Line: 1, Err: err}
	}
	t.idx = make(map[string]int, len(header))
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		t.idx[h] = i
	}
	for _, c := range columns {
		if _, ok := t.idx[c]; !ok {
			f.Close()
			return nil, &Error{File: path, Line: 1, Column: c, Err: errors.New("missing column")}
		}
	}
	return t, nil
}

// next reads the next record; it returns false at the end of the file.
func (t *table) next() (bool, error) {
	rec, err := t.r.Read()
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	if err != nil {
		// FieldPos panics after a record that failed: the error's line.
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return false, &Error{File: t.path, Line: pe.StartLine, Err: pe.Err}
		}
		return false, &Error{File: t.path, Err: err}
	}
	t.line, _ = t.r.FieldPos(0)
	t.rec = rec
	return true, nil
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
		return 0, t.errf(col, "%q is not a positive integer id", s)
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
		return 0, t.errf(col, "%q is not an integer", s)
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
		if len(t.rec) != len(t.idx) {
			return nil, t.errf("", "the row has %d fields, the header %d", len(t.rec), len(t.idx))
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
		c.AnnualIncome, err = t.money("annual_income")
		return c, err
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
		if _, err := strconv.ParseFloat(c.RewardsRate, 64); err != nil || strings.ContainsAny(c.RewardsRate, "eEnNiI") {
			return c, t.errf("rewards_rate", "%q is not a plain decimal", c.RewardsRate)
		}
		return c, nil
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
		c.IssueDate, err = t.str("issue_date")
		return c, err
	}, func(c txpipe.Card) int64 { return c.ID })
}

// TransactionReader streams the rows of a transactions file as they are
// written. It does not judge them: see txpipe.ParseTransaction and Screen.
type TransactionReader struct {
	t    *table
	cols [8]int // index of each of txpipe.TransactionColumns in the file
}

// OpenTransactions opens a transactions file; the header must name the
// columns of txpipe.TransactionColumns.
func OpenTransactions(path string) (*TransactionReader, error) {
	t, err := openTable(path, txpipe.TransactionColumns)
	if err != nil {
		return nil, err
	}
	r := &TransactionReader{t: t}
	for i, c := range txpipe.TransactionColumns {
		r.cols[i] = t.idx[c]
	}
	return r, nil
}

// Next returns the next row and its line number. A row whose field count
// differs from the header comes back with ok and fieldCount set to false;
// raw then holds what fields it had, by position. At the end of the file it
// returns io.EOF.
func (r *TransactionReader) Next() (raw txpipe.RawTransaction, line int, fieldsOK bool, err error) {
	ok, err := r.t.next()
	if err != nil {
		return raw, r.t.line, false, err
	}
	if !ok {
		return raw, 0, false, io.EOF
	}
	t := r.t
	get := func(c int) string {
		if i := r.cols[c]; i < len(t.rec) {
			return t.rec[i]
		}
		return ""
	}
	raw = txpipe.RawTransaction{
		TransactionID: get(0), CardID: get(1), Merchant: get(2), Timestamp: get(3),
		Amount: get(4), Location: get(5), Type: get(6), RelatedID: get(7),
	}
	return raw, t.line, len(t.rec) == len(t.idx), nil
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
// when the row is too short) and whether the row has the header's number
// of fields. It is a fast first pass (the producer's check that a file is
// in event order); it reads quoting as encoding/csv does.
func ScanColumn(path, column string, fn func(value []byte, fieldsOK bool) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open dataset file: %w", err)
	}
	defer f.Close()
	sc := &columnScanner{r: bufio.NewReaderSize(f, 1<<20), col: -1}
	header, err := sc.header()
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	for i, h := range header {
		if strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")) == column {
			sc.col = i
		}
	}
	if sc.col < 0 {
		return &Error{File: path, Line: 1, Column: column, Err: errors.New("missing column")}
	}
	for {
		v, n, ok, err := sc.record()
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		if !ok {
			return nil
		}
		if n <= sc.col {
			v = nil
		}
		if err := fn(v, n == len(header)); err != nil {
			return err
		}
	}
}

// columnScanner splits CSV records, keeping only one field.
type columnScanner struct {
	r     *bufio.Reader
	col   int
	value []byte // the kept field of the current record
	line  []byte
	all   []string // every field, while reading the header
	keep  bool     // keep every field (the header)
	buf   []byte   // a quoted field, unquoted (line's memory is reused)
}

func (s *columnScanner) header() ([]string, error) {
	s.keep = true
	_, _, ok, err := s.record()
	s.keep = false
	if err == nil && !ok {
		err = errors.New("empty file, expected a header")
	}
	return s.all, err
}

// readLine returns the next line without its line end, and false at the
// end of the file.
func (s *columnScanner) readLine() ([]byte, bool, error) {
	s.line = s.line[:0]
	for {
		chunk, err := s.r.ReadSlice('\n')
		s.line = append(s.line, chunk...)
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF:
			if len(s.line) == 0 {
				return nil, false, nil
			}
			return trimCR(s.line), true, nil
		case err != nil:
			return nil, false, err
		}
		return trimCR(s.line[:len(s.line)-1]), true, nil
	}
}

func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}

// record reads the next non-blank record: the kept field, the number of
// fields, and false at the end of the file.
func (s *columnScanner) record() ([]byte, int, bool, error) {
	var line []byte
	for {
		l, ok, err := s.readLine()
		if err != nil || !ok {
			return nil, 0, false, err
		}
		if len(l) > 0 {
			line = l
			break
		}
	}
	s.value, s.all = s.value[:0], s.all[:0]
	n := 0
	field := []byte(nil)
	for {
		i := 0
		if len(line) > 0 && line[0] == '"' {
			// A quoted field: up to the closing quote, across lines.
			field = s.buf[:0]
			line = line[1:]
			for {
				q := bytes.IndexByte(line, '"')
				if q < 0 {
					field = append(field, line...)
					field = append(field, '\n')
					next, ok, err := s.readLine()
					if err != nil {
						return nil, 0, false, err
					}
					if !ok {
						return nil, 0, false, errors.New("unterminated quoted field")
					}
					line = next
					continue
				}
				field = append(field, line[:q]...)
				if q+1 < len(line) && line[q+1] == '"' {
					field = append(field, '"')
					line = line[q+2:]
					continue
				}
				line = line[q+1:]
				break
			}
			// After the closing quote: the rest up to the comma joins it.
			c := bytes.IndexByte(line, ',')
			if c < 0 {
				c = len(line)
			}
			field = append(field, line[:c]...)
			s.buf = field
			i = c
		} else {
			c := bytes.IndexByte(line, ',')
			if c < 0 {
				c = len(line)
			}
			field, i = line[:c], c
		}
		if n == s.col {
			s.value = append(s.value, field...)
		}
		if s.keep {
			s.all = append(s.all, string(field))
		}
		n++
		if i >= len(line) {
			return s.value, n, true, nil
		}
		line = line[i+1:]
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
