package batch

import (
	"cmp"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/batch/analytics"
)

// cell is a value of a view: for Int, Money (cents), Fixed (scaled) and
// Date (day number) columns i, for Text s.
type cell struct {
	i    int64
	s    string
	null bool
}

func intc(v int64) cell  { return cell{i: v} }
func strc(s string) cell { return cell{s: s} }

var nullc = cell{null: true}

func ratec(num, den int64) cell {
	v, ok := analytics.Rate(num, den)
	if !ok {
		return nullc
	}
	return cell{i: v}
}

// floatc rounds v × 10^scale to an integer cell; NaN and infinities, and
// values out of range, are NULL.
func floatc(v float64, scale int) cell {
	v = math.Round(v * math.Pow10(scale))
	if math.IsNaN(v) || v >= 1e17 || v <= -1e17 {
		return nullc
	}
	return cell{i: int64(v)}
}

// viewData is a computed view: n rows, row i appended to dst by row.
type viewData struct {
	view analytics.View
	n    int
	row  func(i int, dst []cell) []cell
}

func mustView(name string) analytics.View {
	v, ok := analytics.Lookup(name)
	if !ok {
		panic("batch: no analytics view " + name) // a programming error, caught by every test
	}
	return v
}

// topK returns the indices of the k largest counts (count > 0), ties by
// name.
func topK(counts []int64, names []string, k int) []int {
	var out []int
	for i, n := range counts {
		if n == 0 {
			continue
		}
		j := len(out)
		for j > 0 && (counts[out[j-1]] < n || counts[out[j-1]] == n && names[out[j-1]] > names[i]) {
			j--
		}
		if j < k {
			out = slices.Insert(out, j, i)
			if len(out) > k {
				out = out[:k]
			}
		}
	}
	return out
}

// topCells appends k (name, count) pairs, NULL where there are fewer.
func topCells(dst []cell, idx []int, counts []int64, names []string, k int) []cell {
	for j := range k {
		if j < len(idx) {
			dst = append(dst, strc(names[idx[j]]), intc(counts[idx[j]]))
		} else {
			dst = append(dst, nullc, nullc)
		}
	}
	return dst
}

// analyticsInput is what the views need besides the accumulated pass.
type analyticsInput struct {
	master    *txpipe.Master
	cards     []txpipe.Card     // settled, with the new limits
	customers []txpipe.Customer // re-scored
}

// earlyViews computes every analytics view but the segments, once the
// pass is over, and keeps them in a.early.
func (a *analyzer) earlyViews() []viewData {
	p := a.mp
	p.finishLostSales()
	p.merchants.finish(p.minWeekly, &p.drops)
	for day, r := range p.dayRefunds {
		if d := a.days[day]; d != nil { // both halves saw the same days
			d.refunds, d.refundAmount = r[0], r[1]
		}
	}
	// Each view reads the pass only (kpis and merchant drops also change
	// what only they read): they are computed side by side.
	build := []func() viewData{
		a.regionsView,
		a.timePatternsView,
		a.dailyView,
		a.declineReasonsView,
		a.lostSalesView,
		a.merchantDropsView,
		a.refundRatesView,
		a.kpisView,
		a.forecastView,
	}
	a.early = make([]viewData, len(build))
	parallel(len(build), func(i int) error {
		a.early[i] = build[i]()
		return nil
	})
	return a.early
}

type regionRow struct {
	scope       string
	state, city string
	st          *regionStat
}

func (a *analyzer) regionsView() viewData {
	var rows []regionRow
	order := make([]int, len(a.regionInfo))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(x, y int) int {
		rx, ry := a.regionInfo[x], a.regionInfo[y]
		// Addresses that do not parse last.
		if c := cmp.Compare(b2i(rx.State == ""), b2i(ry.State == "")); c != 0 {
			return c
		}
		return cmp.Or(strings.Compare(rx.State, ry.State), strings.Compare(rx.City, ry.City))
	})
	homes := map[int]*regionStat{} // region → its customer-scope stats
	for h, r := range a.homeRegion {
		homes[int(r)] = &a.homeStats[h]
	}
	var none regionStat
	for s, scope := range [2]string{scopeCustomer: "customer", scopeMerchant: "merchant"} {
		var total *regionStat
		for j, r := range order {
			info, st := a.regionInfo[r], &a.regStats[r]
			if s == scopeCustomer {
				if st = homes[r]; st == nil {
					st = &none
				}
			}
			if info.State == "" {
				if st.n > 0 {
					rows = append(rows, regionRow{scope, "", "", st})
				}
				continue
			}
			if j == 0 || a.regionInfo[order[j-1]].State != info.State {
				total = &regionStat{}
				rows = append(rows, regionRow{scope, info.State, "", total})
			}
			total.add(st)
			if st.n > 0 {
				rows = append(rows, regionRow{scope, info.State, info.City, st})
			}
		}
	}
	// States without a transaction in this scope are left out.
	rows = slices.DeleteFunc(rows, func(r regionRow) bool { return r.st.n == 0 })
	return viewData{view: mustView(analytics.Regions), n: len(rows), row: func(i int, dst []cell) []cell {
		r := rows[i]
		st := r.st
		dst = append(dst, strc(r.scope), strc(r.state), strc(r.city), intc(st.n), intc(st.approved), intc(st.declined),
			ratec(st.approved, st.n), intc(st.amount), intc(st.spend))
		for _, d := range st.decl {
			dst = append(dst, intc(d))
		}
		types := st.types.counts()
		dst = topCells(dst, topK(types, a.types.names, 3), types, a.types.names, 3)
		return append(dst, intc(st.outSpend), ratec(st.outSpend, st.spend))
	}}
}

func (s *regionStat) add(o *regionStat) {
	s.n += o.n
	s.approved += o.approved
	s.declined += o.declined
	s.amount += o.amount
	s.spend += o.spend
	for i := range s.decl {
		s.decl[i] += o.decl[i]
	}
	s.outSpend += o.outSpend
	for t, n := range o.types.counts() {
		s.types.add(int32(t), n)
	}
}

type segment struct {
	dimension, band                 string
	customers, cards, tx, declined  int64
	spend, amount                   int64
	balance, limit                  int64
	scoreChange, scoreUp, scoreDown int64
}

// incomeBands are the lower bounds of the income bands, in whole units.
var incomeBands = []int64{0, 25000, 50000, 100000, 150000, 250000, 500000}

func incomeBand(income txpipe.Money) int {
	units := int64(income) / 100
	b := 0
	for i, lo := range incomeBands {
		if units >= lo {
			b = i
		}
	}
	return b
}

func incomeLabel(b int) string {
	if b == len(incomeBands)-1 {
		return strconv.FormatInt(incomeBands[b], 10) + "+"
	}
	return strconv.FormatInt(incomeBands[b], 10) + "-" + strconv.FormatInt(incomeBands[b+1]-1, 10)
}

// ageBands are the lower bounds of the age bands.
var ageBands = []int{0, 25, 35, 45, 55, 65}

func ageLabel(age string) (int, string) {
	n, err := strconv.Atoi(age)
	if err != nil || n < 0 || n > 150 {
		return len(ageBands), "unknown"
	}
	b := 0
	for i, lo := range ageBands {
		if n >= lo {
			b = i
		}
	}
	switch {
	case b == 0:
		return 0, "under 25"
	case b == len(ageBands)-1:
		return b, strconv.Itoa(ageBands[b]) + "+"
	}
	return b, strconv.Itoa(ageBands[b]) + "-" + strconv.Itoa(ageBands[b+1]-1)
}

// scoreBands are the card types' credit-score ranges, each once, by their
// lower bound.
type scoreBand struct {
	lo, hi int64
	label  string
}

func scoreBands(types []txpipe.CardType) []scoreBand {
	var bands []scoreBand
	for _, t := range types { // by id
		i := slices.IndexFunc(bands, func(b scoreBand) bool { return b.lo == t.ScoreMin && b.hi == t.ScoreMax })
		if i < 0 {
			bands = append(bands, scoreBand{lo: t.ScoreMin, hi: t.ScoreMax, label: fmt.Sprintf("%d-%d (%s", t.ScoreMin, t.ScoreMax, t.Name)})
		} else {
			bands[i].label += ", " + t.Name
		}
	}
	for i := range bands {
		bands[i].label += ")"
	}
	slices.SortStableFunc(bands, func(x, y scoreBand) int { return cmp.Or(cmp.Compare(x.lo, y.lo), cmp.Compare(x.hi, y.hi)) })
	return bands
}

func (a *analyzer) segmentsView(in analyticsInput) viewData {
	m := in.master
	var segs []*segment
	index := map[string]*segment{}
	get := func(dim, band string) *segment {
		k := dim + "\x00" + band
		s := index[k]
		if s == nil {
			s = &segment{dimension: dim, band: band}
			index[k] = s
			segs = append(segs, s)
		}
		return s
	}
	// Every band of the fixed dimensions has a row, in band order.
	bands := scoreBands(m.CardTypes)
	for _, b := range bands {
		get("credit_score", b.label)
	}
	get("credit_score", "other")
	for b := range incomeBands {
		get("income", incomeLabel(b))
	}
	typeName := map[int64]string{}
	for _, t := range m.CardTypes {
		get("card_type", t.Name)
		typeName[t.ID] = t.Name
	}
	if a.total.demographics {
		for b := range ageBands {
			_, label := ageLabel(strconv.Itoa(max(ageBands[b], 18)))
			get("age", label)
		}
		get("age", "unknown")
		var genders []string
		for _, g := range a.total.gender {
			if g != "" && !slices.Contains(genders, g) {
				genders = append(genders, g)
			}
		}
		slices.Sort(genders)
		for _, g := range genders {
			get("gender", g)
		}
		get("gender", "unknown")
	}
	custDims := func(ci int) []*segment {
		c := m.Customers[ci]
		band := "other"
		for _, b := range bands {
			if b.lo <= c.CreditScore && c.CreditScore <= b.hi {
				band = b.label
				break
			}
		}
		out := []*segment{get("credit_score", band), get("income", incomeLabel(incomeBand(c.AnnualIncome)))}
		if a.total.demographics {
			_, age := ageLabel(a.total.age[ci])
			g := a.total.gender[ci]
			if g == "" {
				g = "unknown"
			}
			out = append(out, get("age", age), get("gender", g))
		}
		return out
	}
	change := func(ci int) int64 { return in.customers[ci].CreditScore - m.Customers[ci].CreditScore }
	addCustomer := func(s *segment, ci int) {
		s.customers++
		ch := change(ci)
		s.scoreChange += ch
		if ch > 0 {
			s.scoreUp++
		} else if ch < 0 {
			s.scoreDown++
		}
	}
	addCard := func(s *segment, k int) {
		s.cards++
		cs := &a.cards[k]
		s.tx += cs.tx
		s.declined += cs.declined
		s.spend += cs.spend
		s.amount += cs.amount
		s.balance += int64(in.cards[k].CurrentBalance)
		s.limit += int64(m.Cards[k].CreditLimit)
	}
	dims := make([][]*segment, len(m.Customers))
	for ci := range m.Customers {
		dims[ci] = custDims(ci)
		for _, s := range dims[ci] {
			addCustomer(s, ci)
		}
	}
	seen := map[[2]int64]bool{} // (card type, customer) counted
	for k, c := range m.Cards {
		ci := a.cards[k].cust
		for _, s := range dims[ci] {
			addCard(s, k)
		}
		s := get("card_type", typeName[c.CardTypeID])
		addCard(s, k)
		if key := [2]int64{c.CardTypeID, int64(ci)}; !seen[key] {
			seen[key] = true
			addCustomer(s, int(ci))
		}
	}
	// Dimensions in a fixed order, bands in the order they were created.
	dimOrder := map[string]int{"credit_score": 0, "income": 1, "card_type": 2, "age": 3, "gender": 4}
	slices.SortStableFunc(segs, func(x, y *segment) int { return cmp.Compare(dimOrder[x.dimension], dimOrder[y.dimension]) })
	return viewData{view: mustView(analytics.Segments), n: len(segs), row: func(i int, dst []cell) []cell {
		s := segs[i]
		usage := nullc
		if v, ok := analytics.Ratio(s.balance*100, s.limit, 2); ok {
			usage = intc(v)
		}
		avg := nullc
		if v, ok := analytics.Ratio(s.scoreChange, s.customers, 2); ok {
			avg = intc(v)
		}
		return append(dst, strc(s.dimension), strc(s.band), intc(s.customers), intc(s.cards), intc(s.tx), intc(s.declined),
			ratec(s.declined, s.tx), intc(s.spend), intc(s.amount), usage, avg, intc(s.scoreUp), intc(s.scoreDown))
	}}
}

// spanDays returns how many days of the data's span fall on each ISO
// weekday (index 0 = Monday).
func (a *analyzer) spanDays() (total int64, byWeekday [7]int64) {
	if !a.any {
		return 0, byWeekday
	}
	for d := a.first; d <= a.last; d++ {
		byWeekday[d.Weekday()-1]++
	}
	return int64(a.last-a.first) + 1, byWeekday
}

func (a *analyzer) timePatternsView() viewData {
	total, byWeekday := a.spanDays()
	names := a.mp.merchants.names
	// The top 3 merchants of every slot, in one pass over the merchants.
	var top [numSlots][]int
	var counts [numSlots][]int64
	var c [numSlots]int64
	for m := range int32(len(names)) {
		a.mp.merchants.slots(a.mp.merchants.stat(m), &c)
		for s, n := range c {
			if n == 0 {
				continue
			}
			t, tc := top[s], counts[s]
			j := len(t)
			for j > 0 && (tc[j-1] < n || tc[j-1] == n && names[t[j-1]] > names[m]) {
				j--
			}
			if j < 3 {
				t, tc = slices.Insert(t, j, int(m)), slices.Insert(tc, j, n)
				if len(t) > 3 {
					t, tc = t[:3], tc[:3]
				}
				top[s], counts[s] = t, tc
			}
		}
	}
	type slotRow struct {
		dim   string
		slot  int
		label string
		days  int64
		st    *slotStat
		top   int // index in top/counts
	}
	var rows []slotRow
	for h := range 24 {
		rows = append(rows, slotRow{"hour", h, fmt.Sprintf("%02d:00-%02d:59", h, h), total, &a.hours[h], h})
	}
	for w := range 7 {
		rows = append(rows, slotRow{"weekday", w + 1, analytics.WeekdayNames[w], byWeekday[w], &a.weekdays[w], 24 + w})
	}
	return viewData{view: mustView(analytics.TimePatterns), n: len(rows), row: func(i int, dst []cell) []cell {
		r := rows[i]
		perDay := nullc
		if v, ok := analytics.Ratio(r.st.n, r.days, 2); ok {
			perDay = intc(v)
		}
		dst = append(dst, strc(r.dim), intc(int64(r.slot)), strc(r.label), intc(r.days), intc(r.st.n), perDay,
			intc(r.st.approved), intc(r.st.amount), intc(r.st.spend))
		t, tc := top[r.top], counts[r.top]
		for j := range 3 {
			if j < len(t) {
				dst = append(dst, strc(names[t[j]]), intc(tc[j]))
			} else {
				dst = append(dst, nullc, nullc)
			}
		}
		types := r.st.types.counts()
		return topCells(dst, topK(types, a.types.names, 3), types, a.types.names, 3)
	}}
}

// series returns the days of the span, each with its stats (zero for a
// day without transactions).
func (a *analyzer) series() ([]analytics.Day, []dayStat) {
	if !a.any {
		return nil, nil
	}
	var days []analytics.Day
	var stats []dayStat
	for d := a.first; d <= a.last; d++ {
		days = append(days, d)
		if s := a.days[d]; s != nil {
			stats = append(stats, *s)
		} else {
			stats = append(stats, dayStat{})
		}
	}
	return days, stats
}

func (a *analyzer) dailyView() viewData {
	days, stats := a.series()
	return viewData{view: mustView(analytics.Daily), n: len(days), row: func(i int, dst []cell) []cell {
		d, s := days[i], stats[i]
		ticket := nullc
		if s.spendN > 0 {
			ticket = intc(analytics.DivRound(s.spend, s.spendN))
		}
		return append(dst, intc(int64(d)), strc(analytics.WeekdayNames[d.Weekday()-1]), intc(s.n), intc(s.approved), intc(s.declined),
			ratec(s.approved, s.n), intc(s.amount), intc(s.spend), intc(s.refunds), intc(s.refundAmount), ticket, intc(s.active))
	}}
}

func (a *analyzer) declineReasonsView() viewData {
	order := make([]int, len(a.reasons.names))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(x, y int) int {
		return cmp.Or(cmp.Compare(a.reasonCount[y], a.reasonCount[x]), strings.Compare(a.reasons.names[x], a.reasons.names[y]))
	})
	order = slices.DeleteFunc(order, func(r int) bool { return a.reasonCount[r] == 0 })
	return viewData{view: mustView(analytics.DeclineReasons), n: len(order), row: func(i int, dst []cell) []cell {
		r := order[i]
		return append(dst, strc(a.reasons.names[r]), intc(a.reasonCount[r]), ratec(a.reasonCount[r], a.total.declined),
			ratec(a.reasonCount[r], a.total.n), intc(a.reasonAmount[r]))
	}}
}

func (a *analyzer) lostSalesView() viewData {
	type lostRow struct {
		merchant, reason int32
		s                lostStat
	}
	names := a.mp.merchants.names
	rows := make([]lostRow, 0, len(a.mp.lost))
	for k, s := range a.mp.lost {
		rows = append(rows, lostRow{int32(k >> 20), int32(k & (1<<20 - 1)), s})
	}
	slices.SortFunc(rows, func(x, y lostRow) int {
		return cmp.Or(cmp.Compare(y.s.lostAmount, x.s.lostAmount), cmp.Compare(y.s.lost, x.s.lost),
			strings.Compare(names[x.merchant], names[y.merchant]),
			strings.Compare(a.mp.reasons.names[x.reason], a.mp.reasons.names[y.reason]))
	})
	return viewData{view: mustView(analytics.LostSales), n: len(rows), row: func(i int, dst []cell) []cell {
		r := rows[i]
		return append(dst, strc(names[r.merchant]), strc(a.mp.reasons.names[r.reason]), intc(r.s.declines),
			intc(r.s.recovered), intc(r.s.lost), intc(r.s.lostAmount), ratec(r.s.lost, r.s.declines))
	}}
}

func (a *analyzer) merchantDropsView() viewData {
	names := a.mp.merchants.names
	complete := func(monday analytics.Day) bool { return a.any && monday >= a.first && monday+6 <= a.last }
	// Both weeks inside the span.
	rows := slices.DeleteFunc(a.mp.drops, func(d weekDrop) bool { return !complete(d.week-7) || !complete(d.week) })
	slices.SortFunc(rows, func(x, y weekDrop) int {
		// The larger (prev-n)/prev first, compared exactly.
		xh, xl := bits.Mul64(uint64(x.prevN-x.n), uint64(y.prevN))
		yh, yl := bits.Mul64(uint64(y.prevN-y.n), uint64(x.prevN))
		return cmp.Or(-cmp.Or(cmp.Compare(xh, yh), cmp.Compare(xl, yl)), cmp.Compare(x.n-x.prevN, y.n-y.prevN),
			strings.Compare(names[x.merchant], names[y.merchant]), cmp.Compare(x.week, y.week))
	})
	return viewData{view: mustView(analytics.MerchantDrops), n: len(rows), row: func(i int, dst []cell) []cell {
		r := rows[i]
		return append(dst, strc(names[r.merchant]), intc(int64(r.week)), intc(r.prevN), intc(r.n),
			intc(r.n-r.prevN), ratec(r.prevN-r.n, r.prevN), intc(r.prevAmt), intc(r.amount))
	}}
}

func (a *analyzer) refundRatesView() viewData {
	type refundRow struct {
		dim, key                       string
		sales, refunds, linked, amount int64
	}
	var rows []refundRow
	types := make([]int, 0, len(a.mp.types.names))
	for t := range a.mp.types.names {
		if !a.mp.typeRefund[t] && (a.mp.typeSales[t] > 0 || a.mp.typeRefunds[t] > 0) {
			types = append(types, t)
		}
	}
	slices.SortFunc(types, func(x, y int) int { return strings.Compare(a.mp.types.names[x], a.mp.types.names[y]) })
	for _, t := range types {
		rows = append(rows, refundRow{"transaction_type", a.mp.types.names[t], a.mp.typeSales[t], a.mp.typeRefunds[t], a.mp.typeLinked[t], a.mp.typeRefundAmt[t]})
	}
	if a.mp.unlinkedRefunds > 0 {
		rows = append(rows, refundRow{"transaction_type", "(unlinked)", 0, a.mp.unlinkedRefunds, 0, a.mp.unlinkedRefundAmt})
	}
	names := a.mp.merchants.names
	var ms []int32
	for m := range int32(len(names)) {
		if a.mp.merchants.stat(m).refunds > 0 {
			ms = append(ms, m)
		}
	}
	slices.SortFunc(ms, func(x, y int32) int {
		return cmp.Or(cmp.Compare(a.mp.merchants.stat(y).refunds, a.mp.merchants.stat(x).refunds), strings.Compare(names[x], names[y]))
	})
	nTypes := len(rows)
	return viewData{view: mustView(analytics.RefundRates), n: nTypes + len(ms), row: func(i int, dst []cell) []cell {
		r := refundRow{}
		if i < nTypes {
			r = rows[i]
		} else {
			m := ms[i-nTypes]
			st := a.mp.merchants.stat(m)
			r = refundRow{"merchant", names[m], int64(st.sales), int64(st.refunds), int64(st.linked), st.refundAmt}
		}
		return append(dst, strc(r.dim), strc(r.key), intc(r.sales), intc(r.refunds), intc(r.linked), ratec(r.refunds, r.sales), intc(r.amount))
	}}
}

type kpi struct {
	metric, unit string
	value        cell // scaled by 10^6
	num, den     cell
}

func (a *analyzer) kpisView() viewData {
	const one = 1000000
	t := &a.total
	count := func(name string, n int64) kpi { return kpi{name, "count", intc(n * one), nullc, nullc} }
	moneyK := func(name string, cents int64) kpi { return kpi{name, "money", intc(cents * (one / 100)), nullc, nullc} }
	rateK := func(name string, num, den int64) kpi {
		return kpi{name, "rate", ratec(num, den), intc(num), intc(den)}
	}
	for k := range a.cards {
		if a.cards[k].tx > 0 {
			t.activeCards++
		}
	}
	total, _ := a.spanDays()
	ticket := nullc
	if t.spendN > 0 {
		v, _ := analytics.Ratio(t.spend, t.spendN*100, analytics.RateScale)
		ticket = intc(v)
	}
	rows := []kpi{
		count("transactions", t.n),
		count("approved", t.approved),
		count("declined", t.declined),
		rateK("approval_rate", t.approved, t.n),
		rateK("decline_rate", t.declined, t.n),
		moneyK("amount", t.amount),
		moneyK("spend", t.spend),
		{"average_ticket", "money", ticket, nullc, nullc},
		count("sales", a.mp.sales),
		count("refunds", a.mp.refunds),
		rateK("refund_rate", a.mp.refunds, a.mp.sales),
		moneyK("refund_amount", a.mp.refundAmount),
		count("active_cards", t.activeCards),
		count("days", total),
		count("rejected_rows", t.rejected),
		rateK("rejected_row_rate", t.rejected, t.n+t.rejected),
		count("latency_samples", t.latency.N),
		count("latency_invalid_rows", t.latencyInvalid),
	}
	for _, p := range []struct {
		name string
		q    int64 // per mille
	}{{"latency_p50_seconds", 500}, {"latency_p90_seconds", 900}, {"latency_p95_seconds", 950}, {"latency_p99_seconds", 990}, {"latency_max_seconds", 1000}} {
		v := nullc
		if us, ok := t.latency.Quantile(p.q); ok {
			v = intc(us) // microseconds are seconds with 6 decimals
		}
		rows = append(rows, kpi{p.name, "seconds", v, nullc, nullc})
	}
	return viewData{view: mustView(analytics.KPIs), n: len(rows), row: func(i int, dst []cell) []cell {
		r := rows[i]
		return append(dst, strc(r.metric), strc(r.unit), r.value, r.num, r.den)
	}}
}

// Forecast settings: 14 days ahead, weekly seasonality, a backtest over
// the last 28 origins.
const (
	forecastDays    = 14
	forecastPeriod  = 7
	backtestOrigins = 28
	backtestHorizon = forecastDays
)

func (a *analyzer) forecastView() viewData {
	days, stats := a.series()
	y := make([]float64, len(days))
	for i, s := range stats {
		y[i] = float64(s.amount)
	}
	type row struct {
		day   analytics.Day
		cells []cell
	}
	var rows []row
	model, err := analytics.FitHW(y, forecastPeriod)
	for i, d := range days {
		fit := nullc
		if err == nil {
			fit = floatc(model.Fitted[i], 0)
		}
		rows = append(rows, row{d, []cell{strc("actual"), intc(stats[i].amount), fit, nullc, nullc, nullc, nullc, nullc, nullc, nullc, nullc, nullc, nullc}})
	}
	if err == nil {
		bt, ok := analytics.RollingBacktest(y, forecastPeriod, backtestHorizon, backtestOrigins)
		back := []cell{nullc, nullc, nullc, nullc, nullc}
		if ok {
			mape, naive := nullc, nullc
			if bt.MAPEPairs > 0 {
				mape, naive = floatc(bt.MAPE, analytics.RateScale), floatc(bt.NaiveMAPE, analytics.RateScale)
			}
			back = []cell{mape, ratec(int64(bt.Covered80), int64(bt.Forecasts)), ratec(int64(bt.Covered95), int64(bt.Forecasts)), naive, intc(int64(bt.Forecasts))}
		}
		for h, p := range model.Forecast(forecastDays) {
			c := []cell{strc("forecast"), nullc, floatc(p.Mean, 0), floatc(p.Lo80, 0), floatc(p.Hi80, 0), floatc(p.Lo95, 0), floatc(p.Hi95, 0), strc(model.String())}
			rows = append(rows, row{a.last + analytics.Day(h+1), append(c, back...)})
		}
	}
	return viewData{view: mustView(analytics.Forecast), n: len(rows), row: func(i int, dst []cell) []cell {
		return append(append(dst, intc(int64(rows[i].day))), rows[i].cells...)
	}}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
