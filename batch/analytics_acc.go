package batch

import (
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/batch/analytics"
)

// The analyzer accumulates every analytics view from the settled records,
// in one pass, in memory bounded by the cards, customers, merchants,
// regions, transaction types and days (never by the transactions):
//
//   - per card: counters, the day of its last transaction and its last
//     refundHorizon approved sales (to link refunds);
//   - per customer: the declines of the last 30 minutes (lost sales);
//   - per merchant: counts per hour and weekday, refunds, and per week;
//   - per region (state, city) and scope, per day, per hour and weekday.

// refundHorizon is how many approved sales per card a refund can be
// linked to through related_transaction_id (the stream's dedup horizon).
const refundHorizon = 16

// lostSaleWindow is how long after a decline an approved transaction at
// the same merchant recovers it, in microseconds.
const lostSaleWindow = 30 * 60 * 1000000

const microsPerDay = 86400 * 1000000

// Decline categories of the regional view.
const (
	declOverHalf = iota
	declLocation
	declOverLimit
	declOther
	numDeclCategories
)

func declCategory(reason string) int {
	switch txpipe.DeclineReason(reason) {
	case txpipe.DeclineOverHalf:
		return declOverHalf
	case txpipe.DeclineLocation:
		return declLocation
	case txpipe.DeclineOverLimit:
		return declOverLimit
	}
	return declOther
}

// Region scopes.
const (
	scopeCustomer = iota
	scopeMerchant
)

type regionStat struct {
	n, approved, declined int64
	amount, spend         int64
	decl                  [numDeclCategories]int64
	outSpend              int64
	types                 typeCounts // transactions by type index
}

type slotStat struct {
	n, approved   int64
	amount, spend int64
	types         typeCounts
}

// inlineTypes are the transaction types counted in place (a dataset has
// a handful); more go to a slice.
const inlineTypes = 8

// typeCounts counts transactions by type index.
type typeCounts struct {
	first [inlineTypes]int64
	more  []int64
}

func (t *typeCounts) add(ty int32, n int64) {
	if ty < inlineTypes {
		t.first[ty] += n
		return
	}
	for int(ty)-inlineTypes >= len(t.more) {
		t.more = append(t.more, 0)
	}
	t.more[ty-inlineTypes] += n
}

// counts returns the counts by type index (trailing types may be left
// out: their count is 0).
func (t *typeCounts) counts() []int64 {
	return append(t.first[:len(t.first):len(t.first)], t.more...)
}

// cardStat is what the views need of a card, in one place.
type cardStat struct {
	tx, declined, spend, amount int64
	lastDay                     analytics.Day // of its last transaction
	cust                        int32         // customer index
}

// ringSale is an approved sale a refund may name.
type ringSale struct {
	id            int64
	merchant, typ int32
}

type dayStat struct {
	n, approved, declined int64
	amount, spend, spendN int64
	refunds, refundAmount int64
	active                int64
}

type lostStat struct{ declines, recovered, lost, lostAmount int64 }

type pendingDecline struct {
	t        int64 // timestamp, microseconds
	merchant int32
	reason   int32
	amount   int64
}

// interner numbers strings in the order they are first seen. Lookups of
// strings that point into Arrow buffers do not allocate; new keys are
// copied. While there are few, they are looked up without hashing.
type interner struct {
	idx   map[string]int32
	names []string
}

// interScan is the most names an interner scans instead of hashing.
const interScan = 16

func (in *interner) id(s string) (int32, bool) {
	if len(in.names) <= interScan {
		for i, n := range in.names {
			if n == s {
				return int32(i), false
			}
		}
	} else if i, ok := in.idx[s]; ok {
		return i, false
	}
	if in.idx == nil {
		in.idx = map[string]int32{}
	}
	s = strings.Clone(s)
	i := int32(len(in.names))
	in.idx[s] = i
	in.names = append(in.names, s)
	return i, true
}

// The pass is in two halves, each in a goroutine of its own over the same
// records: the analyzer's own (cards, days, regions, time slots, decline
// reasons) and the merchant pass (merchants, their weeks, refund links,
// lost sales). Each numbers the transaction types and decline reasons
// itself, in the order it sees them: the same order, so the same numbers.
type analyzer struct {
	cardIdx *cardIndex
	custIdx map[int64]int // customer id → index, with demographics
	mp      *merchantPass

	regions     interner // "ST\x00City"; "" for addresses that do not parse
	regionInfo  []analytics.Region
	regionState []int32 // state index of each region (-1 unknown)
	states      interner
	regStats    []regionStat // merchant scope, by region
	// The customer scope: its few regions (the customers' addresses)
	// numbered apart.
	homeStats  []regionStat // by home
	homeRegion []int32      // region of each home
	custHome   []int32      // home of each customer

	types interner

	early []viewData // the views computed once the pass is over

	reasons      interner
	reasonCount  []int64
	reasonAmount []int64

	days    map[analytics.Day]*dayStat
	curDay  *dayStat // the day of the last row
	curDayN analytics.Day
	first   analytics.Day
	last    analytics.Day
	any     bool

	hours    [24]slotStat
	weekdays [7]slotStat

	cards []cardStat
	rids  []int32 // region of each row of a block

	total struct {
		n, approved, declined int64
		amount, spend, spendN int64
		declinedAmount        int64
		activeCards           int64
		rejected              int64
		latency               analytics.LatencyHist
		latencyInvalid        int64
		latencySource         string
		demographics          bool
		age, gender           []string // by customer ("" unknown)
	}
}

// merchantPass is the half of the pass keyed by merchant, with the
// refund links and lost sales that need the merchants.
type merchantPass struct {
	cardIdx  *cardIndex
	cardCust []int32 // customer index of each card

	merchants merchants
	drops     []weekDrop
	minWeekly int64 // the fewest transactions of a week to drop from

	types                                             interner
	typeRefund                                        []bool // the type is "refund"
	typeSales, typeRefunds, typeLinked, typeRefundAmt []int64
	unlinkedRefunds, unlinkedRefundAmt                int64
	sales, refunds, refundAmount                      int64

	reasons interner
	lost    map[int64]lostStat // merchant<<20 | reason
	pending [][]pendingDecline // by customer

	ring     []ringSale // card*refundHorizon + slot
	ringNext []uint8    // per card: its ring's next slot

	dayRefunds map[analytics.Day]*[2]int64 // refunds and their amount
	curDay     *[2]int64
	curDayN    analytics.Day

	mids []int32 // merchant of each row of a block
}

func newAnalyzer(m *txpipe.Master, cardIdx *cardIndex) *analyzer {
	nc := len(m.Cards)
	a := &analyzer{
		cardIdx: cardIdx,
		days:    map[analytics.Day]*dayStat{},
		cards:   make([]cardStat, nc),
	}
	a.mp = &merchantPass{
		cardIdx:    cardIdx,
		cardCust:   make([]int32, nc),
		lost:       map[int64]lostStat{},
		pending:    make([][]pendingDecline, len(m.Customers)),
		ring:       make([]ringSale, nc*refundHorizon),
		ringNext:   make([]uint8, nc),
		dayRefunds: map[analytics.Day]*[2]int64{},
	}
	custIdx := make(map[int64]int32, len(m.Customers))
	for i, c := range m.Customers {
		custIdx[c.ID] = int32(i)
	}
	for i, c := range m.Cards {
		a.cards[i].cust = custIdx[c.CustomerID]
		a.cards[i].lastDay = math.MinInt64
		a.mp.cardCust[i] = a.cards[i].cust
	}
	a.custHome = make([]int32, len(m.Customers))
	homes := map[int32]int32{} // region → home
	for i, c := range m.Customers {
		r := a.region(c.Address)
		h, ok := homes[r]
		if !ok {
			h = int32(len(a.homeRegion))
			homes[r] = h
			a.homeRegion = append(a.homeRegion, r)
		}
		a.custHome[i] = h
	}
	a.homeStats = make([]regionStat, len(a.homeRegion))
	return a
}

// region returns the index of the region of an address.
func (a *analyzer) region(address string) int32 {
	reg, ok := analytics.ParseRegion(address)
	var key string
	if ok {
		// The key is looked up without allocating: a stack buffer.
		var buf [128]byte
		b := append(append(append(buf[:0], reg.State...), 0), reg.City...)
		if i, found := a.regions.idx[string(b)]; found {
			return i
		}
		key = string(b)
	}
	i, isNew := a.regions.id(key)
	if isNew {
		if ok {
			reg = analytics.Region{State: strings.Clone(reg.State), City: strings.Clone(reg.City)}
		}
		a.regionInfo = append(a.regionInfo, reg)
		st := int32(-1)
		if ok {
			st, _ = a.states.id(reg.State)
		}
		a.regionState = append(a.regionState, st)
		a.regStats = append(a.regStats, regionStat{})
	}
	return i
}

func (p *merchantPass) typeID(s string) int32 {
	i, isNew := p.types.id(s)
	if isNew {
		p.typeRefund = append(p.typeRefund, s == "refund")
		p.typeSales = append(p.typeSales, 0)
		p.typeRefunds = append(p.typeRefunds, 0)
		p.typeLinked = append(p.typeLinked, 0)
		p.typeRefundAmt = append(p.typeRefundAmt, 0)
	}
	return i
}

func (a *analyzer) reasonID(s string) int32 {
	i, isNew := a.reasons.id(s)
	if isNew {
		a.reasonCount = append(a.reasonCount, 0)
		a.reasonAmount = append(a.reasonAmount, 0)
	}
	return i
}

// consume accumulates the records of a worker's channel (the analyzer's
// half of the pass).
func (a *analyzer) consume(ch <-chan arrow.Record) error {
	for rec := range ch {
		a.addOwn(rec)
		rec.Release()
	}
	return nil
}

// consume accumulates the records of a worker's channel (the merchant
// half of the pass).
func (p *merchantPass) consume(ch <-chan arrow.Record) error {
	for rec := range ch {
		p.add(rec)
		rec.Release()
	}
	return nil
}

// add accumulates a settled record, both halves (every card is known:
// settle checked).
func (a *analyzer) add(rec arrow.Record) {
	a.addOwn(rec)
	a.mp.add(rec)
}

// addBlock is how many rows are looked up at a time: what they touch
// stays in the processor's cache until they are added.
const addBlock = 1024

// rowBasics are what both halves need of a row.
type rowBasics struct {
	k        int // card index
	approved bool
	amt, ts  int64
	day      analytics.Day
	wd, hour int
}

func basics(c *txCols, idx *cardIndex, i int) rowBasics {
	k, _ := idx.get(c.card[i])
	ts := int64(c.ts[i])
	day := analytics.DayOf(ts)
	return rowBasics{k: k, approved: c.status.Value(i) == string(txpipe.StatusApproved), amt: c.amount[i], ts: ts, day: day,
		wd: day.Weekday(), hour: int(((ts%microsPerDay)+microsPerDay)%microsPerDay) / 3600000000}
}

// addOwn accumulates the analyzer's half of a record.
func (a *analyzer) addOwn(rec arrow.Record) {
	c := columns(rec)
	for lo := 0; lo < c.n; lo += addBlock {
		hi := min(lo+addBlock, c.n)
		// The regions are looked up first, in a loop of their own: there
		// no row waits for the one before, so the processor overlaps
		// their cache misses.
		a.rids = slices.Grow(a.rids[:0], hi-lo)[:hi-lo]
		for i := range a.rids {
			a.rids[i] = a.region(c.location.Value(lo + i))
		}
		for i := lo; i < hi; i++ {
			a.addRow(&c, i, a.rids[i-lo])
		}
	}
}

func (a *analyzer) addRow(c *txCols, i int, reg int32) {
	r := basics(c, a.cardIdx, i)
	cs := &a.cards[r.k]
	approved, amt, day := r.approved, r.amt, r.day
	ty, _ := a.types.id(c.typ.Value(i))
	spend := approved && amt > 0

	// Totals, per card, per day.
	a.total.n++
	cs.tx++
	if !a.any || day < a.first {
		a.first = day
	}
	if !a.any || day > a.last {
		a.last = day
	}
	a.any = true
	d := a.curDay
	if d == nil || day != a.curDayN {
		if d = a.days[day]; d == nil {
			d = &dayStat{}
			a.days[day] = d
		}
		a.curDay, a.curDayN = d, day
	}
	d.n++
	if cs.lastDay != day { // a card's rows come in event order
		cs.lastDay = day
		d.active++
	}
	if approved {
		a.total.approved++
		a.total.amount += amt
		cs.amount += amt
		d.approved++
		d.amount += amt
	} else {
		a.total.declined++
		a.total.declinedAmount += amt
		cs.declined++
		d.declined++
		r := a.reasonID(c.decl.Value(i))
		a.reasonCount[r]++
		a.reasonAmount[r] += amt
	}
	if spend {
		a.total.spend += amt
		a.total.spendN++
		cs.spend += amt
		d.spend += amt
		d.spendN++
	}

	// Regions, in both scopes.
	h := a.custHome[cs.cust]
	home := a.homeRegion[h]
	for _, st := range [2]*regionStat{scopeCustomer: &a.homeStats[h], scopeMerchant: &a.regStats[reg]} {
		st.n++
		st.types.add(ty, 1)
		if approved {
			st.approved++
			st.amount += amt
		} else {
			st.declined++
			st.decl[declCategory(c.decl.Value(i))]++
		}
		if spend {
			st.spend += amt
			if hs, ms := a.regionState[home], a.regionState[reg]; hs >= 0 && ms >= 0 && hs != ms {
				st.outSpend += amt
			}
		}
	}

	// Time patterns.
	for _, sl := range [2]*slotStat{&a.hours[r.hour], &a.weekdays[r.wd-1]} {
		sl.n++
		sl.types.add(ty, 1)
		if approved {
			sl.approved++
			sl.amount += amt
		}
		if spend {
			sl.spend += amt
		}
	}
}

// add accumulates the merchant half of a record.
func (p *merchantPass) add(rec arrow.Record) {
	c := columns(rec)
	for lo := 0; lo < c.n; lo += addBlock {
		hi := min(lo+addBlock, c.n)
		// The merchants are looked up first, in a loop of their own (see
		// analyzer.addOwn).
		p.mids = slices.Grow(p.mids[:0], hi-lo)[:hi-lo]
		for i := range p.mids {
			p.mids[i] = p.merchants.id(c.merchant.Value(lo + i))
		}
		for i := lo; i < hi; i++ {
			p.addRow(&c, i, p.mids[i-lo])
		}
	}
}

func (p *merchantPass) addRow(c *txCols, i int, m int32) {
	r := basics(c, p.cardIdx, i)
	ms := p.merchants.stat(m)
	approved, amt, k := r.approved, r.amt, r.k
	ty := p.typeID(c.typ.Value(i))
	p.merchants.addSlot(ms, r.hour, r.wd)

	// Weeks per merchant.
	weekAmt := int64(0)
	if approved {
		weekAmt = amt
	}
	p.merchants.addWeek(m, ms, r.day.Monday(), weekAmt, p.minWeekly, &p.drops)

	// Lost sales.
	reason := int32(-1)
	if !approved {
		reason, _ = p.reasons.id(c.decl.Value(i))
	}
	p.lostSales(p.cardCust[k], r.ts, m, approved, reason, amt)

	// Refunds.
	if approved {
		switch {
		case p.typeRefund[ty] || amt < 0:
			p.refund(k, m, c.related.Value(i), c.related.IsValid(i), amt)
			d := p.curDay
			if d == nil || r.day != p.curDayN {
				if d = p.dayRefunds[r.day]; d == nil {
					d = &[2]int64{}
					p.dayRefunds[r.day] = d
				}
				p.curDay, p.curDayN = d, r.day
			}
			d[0]++
			d[1] += amt
		default:
			p.sales++
			ms.sales++
			p.typeSales[ty]++
			p.ring[k*refundHorizon+int(p.ringNext[k])] = ringSale{c.id[i], m, ty}
			p.ringNext[k] = uint8((int(p.ringNext[k]) + 1) % refundHorizon)
		}
	}
}

// refund counts an approved refund against the sale it names, when that
// is among the card's last refundHorizon sales, else against its own
// merchant as unlinked.
func (p *merchantPass) refund(k int, m int32, related string, hasRelated bool, amt int64) {
	p.refunds++
	p.refundAmount += amt
	if hasRelated {
		if id, err := strconv.ParseInt(strings.TrimSpace(related), 10, 64); err == nil && id > 0 {
			for _, sale := range p.ring[k*refundHorizon : (k+1)*refundHorizon] {
				if sale.id == id {
					om, ot := sale.merchant, sale.typ
					st := p.merchants.stat(om)
					st.refunds++
					st.linked++
					st.refundAmt += amt
					p.typeRefunds[ot]++
					p.typeLinked[ot]++
					p.typeRefundAmt[ot] += amt
					return
				}
			}
		}
	}
	st := p.merchants.stat(m)
	st.refunds++
	st.refundAmt += amt
	p.unlinkedRefunds++
	p.unlinkedRefundAmt += amt
}

// lostSales follows the customer's declines of the last 30 minutes: an
// approved transaction at the same merchant recovers them, and those
// older than 30 minutes are lost.
func (mp *merchantPass) lostSales(cust int32, t int64, m int32, approved bool, reason int32, amt int64) {
	p := mp.pending[cust]
	if len(p) == 0 && approved {
		return
	}
	keep := p[:0]
	for _, d := range p {
		switch {
		case t-d.t > lostSaleWindow:
			mp.lose(d)
		case approved && d.merchant == m && t >= d.t:
			k := lostKey(d.merchant, d.reason)
			s := mp.lost[k]
			s.recovered++
			mp.lost[k] = s
		default:
			keep = append(keep, d)
		}
	}
	if !approved {
		k := lostKey(m, reason)
		s := mp.lost[k]
		s.declines++
		mp.lost[k] = s
		keep = append(keep, pendingDecline{t: t, merchant: m, reason: reason, amount: amt})
	}
	if len(keep) == 0 {
		keep = nil // let a burst's memory go
	}
	mp.pending[cust] = keep
}

func lostKey(m, reason int32) int64 { return int64(m)<<20 | int64(reason) }

func (mp *merchantPass) lose(d pendingDecline) {
	k := lostKey(d.merchant, d.reason)
	s := mp.lost[k]
	s.lost++
	s.lostAmount += d.amount
	mp.lost[k] = s
}

// finishLostSales counts the declines still waiting as lost: the data
// ends before anything recovered them.
func (mp *merchantPass) finishLostSales() {
	for i, p := range mp.pending {
		for _, d := range p {
			mp.lose(d)
		}
		mp.pending[i] = nil
	}
}
