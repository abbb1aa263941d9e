package batch

import (
	"math"
	"strconv"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/txpipe/txpipe"
)

// Column positions of txSchema, the schema of stream and batch transaction
// records (and of batch_transactions.parquet).
const (
	colID = iota
	colCard
	colMerchant
	colTimestamp
	colAmount
	colLocation
	colType
	colRelated
	colStatus
	colPending
	colDecline
	colSeq
	numTxCols
)

var tsType = &arrow.TimestampType{Unit: arrow.Microsecond}

// txSchema holds money as int64 cents (the _cents columns) and the
// timestamp as timestamp[us] of the wall-clock time (no time zone).
var txSchema = arrow.NewSchema([]arrow.Field{
	{Name: "transaction_id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "card_id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "merchant_name", Type: arrow.BinaryTypes.String},
	{Name: "timestamp", Type: tsType},
	{Name: "amount_cents", Type: arrow.PrimitiveTypes.Int64},
	{Name: "location", Type: arrow.BinaryTypes.String},
	{Name: "transaction_type", Type: arrow.BinaryTypes.String},
	{Name: "related_transaction_id", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "status", Type: arrow.BinaryTypes.String},
	{Name: "pending_balance_cents", Type: arrow.PrimitiveTypes.Int64},
	{Name: "decline_reason", Type: arrow.BinaryTypes.String},
	{Name: "seq", Type: arrow.PrimitiveTypes.Int64},
}, nil)

var cardSchema = arrow.NewSchema([]arrow.Field{
	{Name: "card_id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "customer_id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "card_type_id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "card_number", Type: arrow.BinaryTypes.String},
	{Name: "expiration_date", Type: arrow.BinaryTypes.String},
	{Name: "credit_limit_cents", Type: arrow.PrimitiveTypes.Int64},
	{Name: "current_balance_cents", Type: arrow.PrimitiveTypes.Int64},
	{Name: "issue_date", Type: arrow.BinaryTypes.String},
}, nil)

var customerSchema = arrow.NewSchema([]arrow.Field{
	{Name: "customer_id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "name", Type: arrow.BinaryTypes.String},
	{Name: "phone_number", Type: arrow.BinaryTypes.String},
	{Name: "address", Type: arrow.BinaryTypes.String},
	{Name: "email", Type: arrow.BinaryTypes.String},
	{Name: "credit_score", Type: arrow.PrimitiveTypes.Int64},
	{Name: "annual_income_cents", Type: arrow.PrimitiveTypes.Int64},
}, nil)

// txCols gives typed access to the columns of a txSchema record.
type txCols struct {
	n                                              int
	id, card, amount, pending, seq                 []int64
	ts                                             []arrow.Timestamp
	merchant, location, typ, related, status, decl *array.String
}

func columns(rec arrow.Record) txCols {
	i64 := func(i int) []int64 { return rec.Column(i).(*array.Int64).Int64Values() }
	str := func(i int) *array.String { return rec.Column(i).(*array.String) }
	return txCols{
		n:  int(rec.NumRows()),
		id: i64(colID), card: i64(colCard), amount: i64(colAmount), pending: i64(colPending), seq: i64(colSeq),
		ts:       rec.Column(colTimestamp).(*array.Timestamp).TimestampValues(),
		merchant: str(colMerchant), location: str(colLocation), typ: str(colType),
		related: str(colRelated), status: str(colStatus), decl: str(colDecline),
	}
}

// txBuilder accumulates transaction rows into records of txSchema.
type txBuilder struct {
	mem                                            memory.Allocator
	id, card, amount, pending, seq, ts             i64Col
	merchant, location, typ, related, status, decl strCol
	rows, capacity                                 int
}

func newTxBuilder(mem memory.Allocator, capacity int) *txBuilder {
	b := &txBuilder{mem: mem, capacity: capacity}
	for _, c := range b.ints() {
		c.init(mem, capacity)
	}
	for _, c := range b.strings() {
		c.init(mem, capacity, c == &b.related)
	}
	return b
}

func (b *txBuilder) ints() []*i64Col {
	return []*i64Col{&b.id, &b.card, &b.amount, &b.pending, &b.seq, &b.ts}
}

func (b *txBuilder) strings() []*strCol {
	return []*strCol{&b.merchant, &b.location, &b.typ, &b.related, &b.status, &b.decl}
}

func (b *txBuilder) full() bool { return b.rows >= b.capacity }

// appendResult appends a parsed row (CSV mode).
func (b *txBuilder) appendResult(r *txpipe.Result) {
	b.id.append(r.ID)
	b.card.append(r.CardID)
	b.merchant.appendString(r.Merchant)
	b.ts.append(r.Timestamp.UnixMicro())
	b.amount.append(int64(r.Amount))
	b.location.appendString(r.Location)
	b.typ.appendString(r.Type)
	if r.RelatedID == "" {
		b.related.appendNull()
	} else {
		b.related.appendString(r.RelatedID)
	}
	b.status.appendString(string(r.Status))
	b.pending.append(int64(r.PendingBalance))
	b.decl.appendString(string(r.DeclineReason))
	b.seq.append(r.Seq)
	b.rows++
}

// newRecord returns the rows appended so far as a record (nil when there
// are none) and starts the next.
func (b *txBuilder) newRecord() arrow.Record {
	if b.rows == 0 {
		return nil
	}
	mem := b.mem
	cols := []arrow.Array{
		colID:        b.id.array(mem, arrow.PrimitiveTypes.Int64),
		colCard:      b.card.array(mem, arrow.PrimitiveTypes.Int64),
		colMerchant:  b.merchant.array(mem),
		colTimestamp: b.ts.array(mem, tsType),
		colAmount:    b.amount.array(mem, arrow.PrimitiveTypes.Int64),
		colLocation:  b.location.array(mem),
		colType:      b.typ.array(mem),
		colRelated:   b.related.array(mem),
		colStatus:    b.status.array(mem),
		colPending:   b.pending.array(mem, arrow.PrimitiveTypes.Int64),
		colDecline:   b.decl.array(mem),
		colSeq:       b.seq.array(mem, arrow.PrimitiveTypes.Int64),
	}
	rec := array.NewRecord(txSchema, cols, int64(b.rows))
	for _, c := range cols {
		c.Release()
	}
	b.rows = 0
	return rec
}

func (b *txBuilder) release() {
	for _, c := range b.ints() {
		c.release()
	}
	for _, c := range b.strings() {
		c.release()
	}
}

// tsFormat appends timestamps as YYYY-MM-DD HH:MM:SS, as
// time.Time.AppendFormat with txpipe.TimestampLayout does (fractions of a
// second dropped), remembering the date of the last: rows in event order
// mostly share it.
type tsFormat struct {
	day  int64
	date [11]byte // YYYY-MM-DD and a space
	ok   bool
}

func (f *tsFormat) append(dst []byte, ts arrow.Timestamp) []byte {
	secs := floorDiv(int64(ts), 1000000)
	days := floorDiv(secs, 86400)
	if !f.ok || days != f.day {
		y, mo, d := civilFromDays(days)
		if y < 0 || y > 9999 { // never produced by parseTimestamp
			f.ok = false
			return time.UnixMicro(int64(ts)).UTC().AppendFormat(dst, txpipe.TimestampLayout)
		}
		b := append(f.date[:0], byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-')
		b = append2(b, mo, '-')
		append2(b, d, ' ')
		f.day, f.ok = days, true
	}
	dst = append(dst, f.date[:]...)
	sod := int(secs - days*86400)
	h, mi, sec := sod/3600, sod/60%60, sod%60
	dst = append2(dst, h, ':')
	dst = append2(dst, mi, ':')
	return append(dst, byte('0'+sec/10), byte('0'+sec%10))
}

func append2(dst []byte, v int, sep byte) []byte {
	return append(dst, byte('0'+v/10), byte('0'+v%10), sep)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// daysFromCivil returns the days from 1970-01-01 to a date of the
// proleptic Gregorian calendar, and civilFromDays the date of a day
// (Howard Hinnant's algorithms, as package time counts).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := floorDiv(int64(y), 400)
	yoe := int64(y) - era*400
	doy := int64((153*((m+9)%12)+2)/5 + d - 1)
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

func civilFromDays(days int64) (y, m, d int) {
	z := days + 719468
	era := floorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = int(doy - (153*mp+2)/5 + 1)
	m = int(mp + 3)
	if m > 12 {
		m -= 12
	}
	y = int(yoe + era*400)
	if m <= 2 {
		y++
	}
	return y, m, d
}

// daysIn is the number of days of month m (1-12) of year y.
func daysIn(y, m int) int {
	if m == 2 {
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	}
	return 30 + (m+m/8)%2
}

// parseTimestamp parses YYYY-MM-DD HH:MM:SS exactly as
// txpipe.ParseTimestamp does, without allocating.
func parseTimestamp(b []byte) (arrow.Timestamp, bool) {
	if len(b) != len(txpipe.TimestampLayout) || b[4] != '-' || b[7] != '-' || b[10] != ' ' || b[13] != ':' || b[16] != ':' {
		return 0, false
	}
	num := func(i, n int) int {
		v := 0
		for _, c := range b[i : i+n] {
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	y, mo, d, h, mi, s := num(0, 4), num(5, 2), num(8, 2), num(11, 2), num(14, 2), num(17, 2)
	if y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || s < 0 || s > 59 || d > daysIn(y, mo) {
		return 0, false
	}
	secs := daysFromCivil(y, mo, d)*86400 + int64(h*3600+mi*60+s)
	return arrow.Timestamp(secs * 1000000), true
}

// parseMoney parses a decimal as txpipe.ParseMoney does; the shape MySQL
// prints DECIMAL(p,2) in takes a fast path without allocating.
func parseMoney(b []byte) (txpipe.Money, error) {
	i, neg := 0, false
	if len(b) > 0 && b[0] == '-' {
		i, neg = 1, true
	}
	var v int64
	digits := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		v = v*10 + int64(b[i]-'0')
		digits++
	}
	if digits > 0 && digits <= 10 && i+3 == len(b) && b[i] == '.' && isDigit(b[i+1]) && isDigit(b[i+2]) {
		v = v*100 + int64(b[i+1]-'0')*10 + int64(b[i+2]-'0')
		if v < int64(txpipe.MaxMoney) {
			if neg {
				v = -v
			}
			return txpipe.Money(v), nil
		}
	}
	return txpipe.ParseMoney(string(b))
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// parseInt parses a decimal integer; unsigned values of up to 18 digits
// take a fast path without allocating.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		v, err := strconv.ParseInt(string(b), 10, 64)
		return v, err == nil
	}
	var v int64
	for _, c := range b {
		if !isDigit(c) {
			v, err := strconv.ParseInt(string(b), 10, 64)
			return v, err == nil
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

// cardIndex maps card ids to their index in the master data: through a
// table indexed by id when the ids are dense enough (as they are when a
// database numbers them), else through a map.
type cardIndex struct {
	dense []int32 // id → index+1, 0 for no card
	m     map[int64]int
}

func newCardIndex(cards []txpipe.Card) *cardIndex {
	var maxID int64
	for _, c := range cards {
		maxID = max(maxID, c.ID)
	}
	x := &cardIndex{}
	if maxID <= 4*int64(len(cards))+4096 && len(cards) < math.MaxInt32 {
		x.dense = make([]int32, maxID+1)
		for i, c := range cards {
			x.dense[c.ID] = int32(i) + 1
		}
		return x
	}
	x.m = make(map[int64]int, len(cards))
	for i, c := range cards {
		x.m[c.ID] = i
	}
	return x
}

// get returns the index of the card with id id.
func (x *cardIndex) get(id int64) (int, bool) {
	if x.dense != nil {
		if id <= 0 || id >= int64(len(x.dense)) || x.dense[id] == 0 {
			return 0, false
		}
		return int(x.dense[id]) - 1, true
	}
	i, ok := x.m[id]
	return i, ok
}
