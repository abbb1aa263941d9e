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
	ringNext                    uint8         // next slot of its sales ring
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

type analyzer struct {
	cardIdx *cardIndex
	custIdx map[int64]int // customer id → index, with demographics

	regions     interner // "ST\x00City"; "" for addresses that do not parse
	regionInfo  []analytics.Region
	regionState []int32 // state index of each region (-1 unknown)
	states      interner
	regStats    [2][]regionStat // by scope, region
	custRegion  []int32         // region of each customer's address

	types      interner
	typeRefund []bool // the type is "refund"

	merchants merchants
	drops     []weekDrop
	early     []viewData // the views computed once the pass is over

	typeSales, typeRefunds, typeLinked, typeRefundAmt []int64
	unlinkedRefunds, unlinkedRefundAmt                int64

	reasons      interner
	reasonCount  []int64
	reasonAmount []int64

	lost    map[int64]lostStat // merchant<<20 | reason
	pending [][]pendingDecline // by customer

	days    map[analytics.Day]*dayStat
	curDay  *dayStat // the day of the last row
	curDayN analytics.Day
	first   analytics.Day
	last    analytics.Day
	any     bool

	hours    [24]slotStat
	weekdays [7]slotStat

	cards []cardStat
	ring  []ringSale // card*refundHorizon + slot

	mids, rids []int32 // merchant and region of each row of the record

	total struct {
		n, approved, declined int64
		amount, spend, spendN int64
		refunds, refundAmount int64
		sales                 int64
		declinedAmount        int64
		activeCards           int64
		rejected              int64
		latency               latencyHist
		latencyInvalid        int64
		latencySource         string
		demographics          bool
		age, gender           []string // by customer ("" unknown)
		minWeeklyVolume       int64
	}
}

func newAnalyzer(m *txpipe.Master, cardIdx *cardIndex) *analyzer {
	nc := len(m.Cards)
	a := &analyzer{
		cardIdx: cardIdx,
		lost:    map[int64]lostStat{},
		pending: make([][]pendingDecline, len(m.Customers)),
		days:    map[analytics.Day]*dayStat{},
		cards:   make([]cardStat, nc),
		ring:    make([]ringSale, nc*refundHorizon),
	}
	custIdx := make(map[int64]int32, len(m.Customers))
	for i, c := range m.Customers {
		custIdx[c.ID] = int32(i)
	}
	for i, c := range m.Cards {
		a.cards[i].cust = custIdx[c.CustomerID]
		a.cards[i].lastDay = math.MinInt64
	}
	a.custRegion = make([]int32, len(m.Customers))
	for i, c := range m.Customers {
		a.custRegion[i] = a.region(c.Address)
	}
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
		for s := range a.regStats {
			a.regStats[s] = append(a.regStats[s], regionStat{})
		}
	}
	return i
}

func (a *analyzer) typeID(s string) int32 {
	i, isNew := a.types.id(s)
	if isNew {
		a.typeRefund = append(a.typeRefund, s == "refund")
		a.typeSales = append(a.typeSales, 0)
		a.typeRefunds = append(a.typeRefunds, 0)
		a.typeLinked = append(a.typeLinked, 0)
		a.typeRefundAmt = append(a.typeRefundAmt, 0)
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

// consume accumulates the records of a worker's channel.
func (a *analyzer) consume(ch <-chan arrow.Record) error {
	for rec := range ch {
		a.add(rec)
		rec.Release()
	}
	return nil
}

// addBlock is how many rows add looks up at a time: what they touch
// stays in the processor's cache until they are added.
const addBlock = 1024

// add accumulates a settled record (every card is known: settle checked).
func (a *analyzer) add(rec arrow.Record) {
	c := columns(rec)
	for lo := 0; lo < c.n; lo += addBlock {
		a.addRows(&c, lo, min(lo+addBlock, c.n))
	}
}

// addRows accumulates rows lo to hi of a record.
func (a *analyzer) addRows(c *txCols, lo, hi int) {
	// The merchants and regions are looked up first, each in a loop of its
	// own: there no row waits for the one before, so the processor
	// overlaps their cache misses.
	a.mids = slices.Grow(a.mids[:0], hi-lo)[:hi-lo]
	for i := range a.mids {
		a.mids[i] = a.merchants.id(c.merchant.Value(lo + i))
	}
	a.rids = slices.Grow(a.rids[:0], hi-lo)[:hi-lo]
	for i := range a.rids {
		a.rids[i] = a.region(c.location.Value(lo + i))
	}
	for i := lo; i < hi; i++ {
		k, _ := a.cardIdx.get(c.card[i])
		cs := &a.cards[k]
		cust := cs.cust
		approved := c.status.Value(i) == string(txpipe.StatusApproved)
		amt := c.amount[i]
		ts := int64(c.ts[i])
		day := analytics.DayOf(ts)
		wd := day.Weekday()
		hour := int(((ts%microsPerDay)+microsPerDay)%microsPerDay) / 3600000000
		m := a.mids[i-lo]
		ms := a.merchants.stat(m)
		ty := a.typeID(c.typ.Value(i))
		reg := a.rids[i-lo]
		refund := a.typeRefund[ty] || amt < 0
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
		home := a.custRegion[cust]
		for s, r := range [2]int32{scopeCustomer: home, scopeMerchant: reg} {
			st := &a.regStats[s][r]
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
		for _, sl := range [2]*slotStat{&a.hours[hour], &a.weekdays[wd-1]} {
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
		a.merchants.addSlot(ms, hour, wd)

		// Weeks per merchant.
		weekAmt := int64(0)
		if approved {
			weekAmt = amt
		}
		a.merchants.addWeek(m, ms, day.Monday(), weekAmt, a.total.minWeeklyVolume, &a.drops)

		// Lost sales.
		reason := int32(-1)
		if !approved {
			reason = a.reasonID(c.decl.Value(i))
		}
		a.lostSales(cust, ts, m, approved, reason, amt)

		// Refunds.
		if approved {
			switch {
			case refund:
				a.refund(k, m, c.related.Value(i), c.related.IsValid(i), amt)
				d.refunds++
				d.refundAmount += amt
			default:
				a.total.sales++
				ms.sales++
				a.typeSales[ty]++
				a.ring[k*refundHorizon+int(cs.ringNext)] = ringSale{c.id[i], m, ty}
				cs.ringNext = uint8((int(cs.ringNext) + 1) % refundHorizon)
			}
		}
	}
}

// refund counts an approved refund against the sale it names, when that
// is among the card's last refundHorizon sales, else against its own
// merchant as unlinked.
func (a *analyzer) refund(k int, m int32, related string, hasRelated bool, amt int64) {
	a.total.refunds++
	a.total.refundAmount += amt
	if hasRelated {
		if id, err := strconv.ParseInt(strings.TrimSpace(related), 10, 64); err == nil && id > 0 {
			for _, sale := range a.ring[k*refundHorizon : (k+1)*refundHorizon] {
				if sale.id == id {
					om, ot := sale.merchant, sale.typ
					st := a.merchants.stat(om)
					st.refunds++
					st.linked++
					st.refundAmt += amt
					a.typeRefunds[ot]++
					a.typeLinked[ot]++
					a.typeRefundAmt[ot] += amt
					return
				}
			}
		}
	}
	st := a.merchants.stat(m)
	st.refunds++
	st.refundAmt += amt
	a.unlinkedRefunds++
	a.unlinkedRefundAmt += amt
}

// lostSales follows the customer's declines of the last 30 minutes: an
// approved transaction at the same merchant recovers them, and those
// older than 30 minutes are lost.
func (a *analyzer) lostSales(cust int32, t int64, m int32, approved bool, reason int32, amt int64) {
	p := a.pending[cust]
	if len(p) == 0 && approved {
		return
	}
	keep := p[:0]
	for _, d := range p {
		switch {
		case t-d.t > lostSaleWindow:
			a.lose(d)
		case approved && d.merchant == m && t >= d.t:
			k := lostKey(d.merchant, d.reason)
			s := a.lost[k]
			s.recovered++
			a.lost[k] = s
		default:
			keep = append(keep, d)
		}
	}
	if !approved {
		k := lostKey(m, reason)
		s := a.lost[k]
		s.declines++
		a.lost[k] = s
		keep = append(keep, pendingDecline{t: t, merchant: m, reason: reason, amount: amt})
	}
	if len(keep) == 0 {
		keep = nil // let a burst's memory go
	}
	a.pending[cust] = keep
}

func lostKey(m, reason int32) int64 { return int64(m)<<20 | int64(reason) }

func (a *analyzer) lose(d pendingDecline) {
	k := lostKey(d.merchant, d.reason)
	s := a.lost[k]
	s.lost++
	s.lostAmount += d.amount
	a.lost[k] = s
}

// finishLostSales counts the declines still waiting as lost: the data
// ends before anything recovered them.
func (a *analyzer) finishLostSales() {
	for i, p := range a.pending {
		for _, d := range p {
			a.lose(d)
		}
		a.pending[i] = nil
	}
}
