package csvfile

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/txpipe/txpipe"
)

// Columns of the result files, in order: the reference's columns first,
// extra columns after them.
var (
	ResultColumns = append(append([]string{}, txpipe.TransactionColumns...), "status", "pending_balance", "decline_reason")
	// StreamColumns are those of stream_transactions.csv: a result and the
	// partition and offset of its record on the validated topic.
	StreamColumns   = append(append([]string{}, ResultColumns...), "kafka_partition", "kafka_offset")
	RejectedColumns = []string{"transaction_id", "reason", "source", "card_id", "merchant_name", "timestamp", "amount", "location", "transaction_type", "related_transaction_id", "detail",
		"kafka_topic", "kafka_partition", "kafka_offset"}
	// AlertColumns are those of alerts.csv (and the alerts table).
	AlertColumns = []string{"alert_type", "card_id", "window_from", "window_to", "late", "payments", "total", "first_seen", "last_seen",
		"event_date_origin", "alert_json", "kafka_topic", "kafka_partition", "kafka_offset"}
	// StagingColumns are those of event_staging.csv (and the table).
	StagingColumns = []string{"event_type", "card_id", "event_date_origin", "event_dw_regdate", "event_json_data", "kafka_topic", "kafka_partition", "kafka_offset"}
)

// Time layouts of the alert and staging views: milliseconds, and the
// writer's time to the microsecond.
const (
	AlertTimeLayout      = "2006-01-02 15:04:05.000"
	RegisteredTimeLayout = "2006-01-02 15:04:05.000000"
)

// AppendAlert appends the fields of an alerts row (AlertColumns).
func AppendAlert(rec []string, a txpipe.Alert) []string {
	late := "0"
	if a.Late {
		late = "1"
	}
	rec = append(rec, a.Type, strconv.FormatInt(a.CardID, 10), a.From.UTC().Format(AlertTimeLayout), a.To.UTC().Format(AlertTimeLayout), late,
		strconv.FormatInt(a.Count, 10), a.Total.String(), a.First.UTC().Format(AlertTimeLayout), a.Last.UTC().Format(AlertTimeLayout),
		a.Origin.UTC().Format(AlertTimeLayout), a.JSON, a.Pos.Topic)
	return appendPos(rec, a.Pos)
}

// AppendEvent appends the fields of an event_staging row (StagingColumns).
func AppendEvent(rec []string, e txpipe.Event) []string {
	rec = append(rec, e.Type, strconv.FormatInt(e.CardID, 10), e.Origin.UTC().Format(AlertTimeLayout), e.Registered.UTC().Format(RegisteredTimeLayout), e.JSON, e.Pos.Topic)
	return appendPos(rec, e.Pos)
}

// Writer writes a CSV file atomically: rows go to a temporary file beside
// the target, which Commit renames into place. A reader never sees half a
// file; Abort (or a crash) leaves the previous file untouched.
type Writer struct {
	path string
	f    *os.File
	buf  *bufio.Writer
	csv  *csv.Writer
	rec  []string
}

// Create starts a new file at path with a header row.
func Create(path string, header []string) (*Writer, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create directory for %s: %w", path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	w := &Writer{path: path, f: f, buf: bufio.NewWriterSize(f, 256<<10)}
	w.csv = csv.NewWriter(w.buf)
	if err := w.Write(header); err != nil {
		w.Abort()
		return nil, err
	}
	return w, nil
}

// Write writes one row.
func (w *Writer) Write(rec []string) error {
	if err := w.csv.Write(rec); err != nil {
		return fmt.Errorf("write %s: %w", w.path, err)
	}
	return nil
}

// WriteResult writes a stream or batch result row.
func (w *Writer) WriteResult(r txpipe.Result) error {
	w.rec = AppendResult(w.rec[:0], r)
	return w.Write(w.rec)
}

// WriteCard writes a cards row.
func (w *Writer) WriteCard(c txpipe.Card) error {
	w.rec = AppendCard(w.rec[:0], c)
	return w.Write(w.rec)
}

// WriteCustomer writes a customers row.
func (w *Writer) WriteCustomer(c txpipe.Customer) error {
	w.rec = AppendCustomer(w.rec[:0], c)
	return w.Write(w.rec)
}

// WriteRejected writes a rejected_transactions row.
func (w *Writer) WriteRejected(r txpipe.Rejected) error {
	w.rec = AppendRejected(w.rec[:0], r)
	return w.Write(w.rec)
}

// WriteEncoded writes rows already encoded as Write encodes them (see
// AppendField), each ending in a newline.
func (w *Writer) WriteEncoded(p []byte) error {
	w.csv.Flush() // what Write left in the CSV writer's buffer goes first
	err := w.csv.Error()
	if err == nil {
		_, err = w.buf.Write(p)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", w.path, err)
	}
	return nil
}

// Sync flushes what was written and syncs the temporary file, so that a
// Commit after it has little left to wait for. More rows may follow.
func (w *Writer) Sync() error {
	w.csv.Flush()
	err := w.csv.Error()
	if err == nil {
		err = w.buf.Flush()
	}
	if err == nil {
		err = w.f.Sync()
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", w.path, err)
	}
	return nil
}

// AppendField appends one field of a CSV row as Write writes it: quoted
// when it holds a comma, a quote, a line end or starts with a space
// (quotes doubled), as is otherwise.
func AppendField(dst []byte, field string) []byte {
	if !needsQuotes(field) {
		return append(dst, field...)
	}
	dst = append(dst, '"')
	for {
		i := strings.IndexByte(field, '"')
		if i < 0 {
			break
		}
		dst = append(dst, field[:i+1]...)
		dst = append(dst, '"')
		field = field[i+1:]
	}
	dst = append(dst, field...)
	return append(dst, '"')
}

// needsQuotes is encoding/csv's rule (with a comma, without CRLF).
func needsQuotes(field string) bool {
	if len(field) == 0 {
		return false
	}
	if field == `\.` {
		return true
	}
	for i := 0; i < len(field); i++ {
		if quoted[field[i]] {
			return true
		}
	}
	if c := field[0]; c < utf8.RuneSelf {
		return c == ' ' || '\t' <= c && c <= '\r' // unicode.IsSpace
	}
	r, _ := utf8.DecodeRuneInString(field)
	return unicode.IsSpace(r)
}

// quoted are the bytes that make a field quoted.
var quoted = [256]bool{'\n': true, '\r': true, '"': true, ',': true}

// Commit flushes, syncs and renames the file into place.
func (w *Writer) Commit() error {
	w.csv.Flush()
	err := w.csv.Error()
	if err == nil {
		err = w.buf.Flush()
	}
	if err == nil {
		err = w.f.Chmod(0o644)
	}
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(w.f.Name(), w.path)
	}
	if err != nil {
		os.Remove(w.f.Name())
		return fmt.Errorf("write %s: %w", w.path, err)
	}
	return nil
}

// Abort drops the temporary file; the previous file stays.
func (w *Writer) Abort() {
	w.f.Close()
	os.Remove(w.f.Name())
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// AppendResult appends the fields of a result row (ResultColumns).
func AppendResult(rec []string, r txpipe.Result) []string {
	raw := r.Transaction.Raw()
	return append(rec, raw.TransactionID, raw.CardID, raw.Merchant, raw.Timestamp, raw.Amount,
		raw.Location, raw.Type, raw.RelatedID, string(r.Status), r.PendingBalance.String(), string(r.DeclineReason))
}

// AppendCard appends the fields of a cards row (CardColumns).
func AppendCard(rec []string, c txpipe.Card) []string {
	return append(rec, itoa(c.ID), itoa(c.CustomerID), itoa(c.CardTypeID), c.Number, c.Expiration,
		c.CreditLimit.String(), c.CurrentBalance.String(), c.IssueDate)
}

// AppendCustomer appends the fields of a customers row (CustomerColumns).
func AppendCustomer(rec []string, c txpipe.Customer) []string {
	return append(rec, itoa(c.ID), c.Name, c.Phone, c.Address, c.Email, itoa(c.CreditScore), c.AnnualIncome.String())
}

// AppendCardType appends the fields of a credit_card_types row.
func AppendCardType(rec []string, c txpipe.CardType) []string {
	return append(rec, itoa(c.ID), c.Name, itoa(c.ScoreMin), itoa(c.ScoreMax), c.LimitMin.String(),
		c.LimitMax.String(), c.AnnualFee.String(), c.RewardsRate)
}

// AppendRejected appends the fields of a rejected row (RejectedColumns).
func AppendRejected(rec []string, r txpipe.Rejected) []string {
	x := r.Raw
	rec = append(rec, x.TransactionID, string(r.Reason), r.Source, x.CardID, x.Merchant, x.Timestamp,
		x.Amount, x.Location, x.Type, x.RelatedID, r.Detail, r.Pos.Topic)
	return appendPos(rec, r.Pos)
}

// AppendStreamResult appends the fields of a stream_transactions row
// (StreamColumns).
func AppendStreamResult(rec []string, r txpipe.Result) []string {
	return appendPos(AppendResult(rec, r), r.Pos)
}

// appendPos appends a position's partition and offset, empty when unknown.
func appendPos(rec []string, p txpipe.Position) []string {
	if p.Offset < 0 {
		return append(rec, "", "")
	}
	return append(rec, strconv.FormatInt(int64(p.Partition), 10), strconv.FormatInt(p.Offset, 10))
}
