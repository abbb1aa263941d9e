package batch

import (
	"math"
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
	types                 []int64 // transactions by type index
}

type slotStat struct {
	n, approved   int64
	amount, spend int64
	types         []int64
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
// copied.
type interner struct {
	idx   map[string]int32
	names []string
}

func (in *interner) id(s string) (int32, bool) {
	if i, ok := in.idx[s]; ok {
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
	cardIdx  *cardIndex
	custIdx  map[int64]int // customer id → index, with demographics
	cardCust []int32       // customer index of each card

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

	// per card
	cTx, cDeclined, cSpend, cAmount []int64
	cLastDay                        []analytics.Day
	ringID                          []int64 // card*refundHorizon + slot
	ringMerchant, ringType          []int32
	ringNext                        []uint8

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
		cardIdx:   cardIdx,
		cardCust:  make([]int32, nc),
		lost:      map[int64]lostStat{},
		pending:   make([][]pendingDecline, len(m.Customers)),
		days:      map[analytics.Day]*dayStat{},
		cTx:       make([]int64, nc),
		cDeclined: make([]int64, nc),
		cSpend:    make([]int64, nc),
		cAmount:   make([]int64, nc),
		cLastDay:  make([]analytics.Day, nc),
		ringID:    make([]int64, nc*refundHorizon),
		ringNext:  make([]uint8, nc),
	}
	a.ringMerchant = make([]int32, nc*refundHorizon)
	a.ringType = make([]int32, nc*refundHorizon)
	custIdx := make(map[int64]int32, len(m.Customers))
	for i, c := range m.Customers {
		custIdx[c.ID] = int32(i)
	}
	for i, c := range m.Cards {
		a.cardCust[i] = custIdx[c.CustomerID]
		a.cLastDay[i] = math.MinInt64
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

func addType(types []int64, t int32) []int64 {
	for int(t) >= len(types) {
		types = append(types, 0)
	}
	types[t]++
	return types
}

// consume accumulates the records of a worker's channel.
func (a *analyzer) consume(ch <-chan arrow.Record) error {
	for rec := range ch {
		a.add(rec)
		rec.Release()
	}
	return nil
}

// add accumulates a settled record (every card is known: settle checked).
func (a *analyzer) add(rec arrow.Record) {
	c := columns(rec)
	for i := 0; i < c.n; i++ {
		k, _ := a.cardIdx.get(c.card[i])
		cust := a.cardCust[k]
		approved := c.status.Value(i) == string(txpipe.StatusApproved)
		amt := c.amount[i]
		ts := int64(c.ts[i])
		day := analytics.DayOf(ts)
		wd := day.Weekday()
		hour := int(((ts%microsPerDay)+microsPerDay)%microsPerDay) / 3600000000
		m := a.merchants.id(c.merchant.Value(i))
		ms := a.merchants.stat(m)
		ty := a.typeID(c.typ.Value(i))
		reg := a.region(c.location.Value(i))
		refund := a.typeRefund[ty] || amt < 0
		spend := approved && amt > 0

		// Totals, per card, per day.
		a.total.n++
		a.cTx[k]++
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
		if a.cLastDay[k] != day { // a card's rows come in event order
			a.cLastDay[k] = day
			d.active++
		}
		if approved {
			a.total.approved++
			a.total.amount += amt
			a.cAmount[k] += amt
			d.approved++
			d.amount += amt
		} else {
			a.total.declined++
			a.total.declinedAmount += amt
			a.cDeclined[k]++
			d.declined++
			r := a.reasonID(c.decl.Value(i))
			a.reasonCount[r]++
			a.reasonAmount[r] += amt
		}
		if spend {
			a.total.spend += amt
			a.total.spendN++
			a.cSpend[k] += amt
			d.spend += amt
			d.spendN++
		}

		// Regions, in both scopes.
		home := a.custRegion[cust]
		for s, r := range [2]int32{scopeCustomer: home, scopeMerchant: reg} {
			st := &a.regStats[s][r]
			st.n++
			st.types = addType(st.types, ty)
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
			sl.types = addType(sl.types, ty)
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
				slot := k*refundHorizon + int(a.ringNext[k])
				a.ringID[slot], a.ringMerchant[slot], a.ringType[slot] = c.id[i], m, ty
				a.ringNext[k] = uint8((int(a.ringNext[k]) + 1) % refundHorizon)
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
			for s := k * refundHorizon; s < (k+1)*refundHorizon; s++ {
				if a.ringID[s] == id {
					om, ot := a.ringMerchant[s], a.ringType[s]
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
