package batch

import (
	"hash/maphash"
	"math"

	"github.com/txpipe/txpipe/batch/analytics"
)

// merchants numbers the merchants and keeps their statistics without a
// pointer per merchant (the garbage collector does not scan them, and
// growing never copies them): names in one byte arena, an open-addressing
// table of indices, and the statistics in fixed-size chunks. A million
// transactions have some 260,000 merchants; each costs about 100 bytes
// plus its name.
type merchants struct {
	seed  maphash.Seed
	arena []byte
	off   []uint32 // name i is arena[off[i]:off[i+1]]
	table []int32  // index+1 of the name in each slot, 0 when empty
	stats [][]merchantStat
	dense []uint32 // slot counts of merchants with more than smallSlots transactions
	names []string // filled by finish
}

const (
	merchantChunk = 4096
	smallSlots    = 8
	// numSlots are the hour (24) then weekday (7) counters of a merchant.
	numSlots = 24 + 7
	noWeek   = math.MinInt32
)

// merchantStat is what the views need of one merchant.
type merchantStat struct {
	n                      uint32 // transactions
	sales, refunds, linked uint32
	refundAmt              int64
	// The hour*7 + weekday-1 of the first smallSlots transactions; beyond
	// them, dense-1 is the merchant's row of slot counts in dense.
	small [smallSlots]uint8
	dense int32
	// The merchant's last two weeks with transactions (their Mondays).
	curWeek, prevWeek int32
	curN, prevN       uint32
	curAmt, prevAmt   int64
}

func (m *merchants) len() int { return len(m.off) - 1 }

func (m *merchants) name(i int32) []byte { return m.arena[m.off[i]:m.off[i+1]] }

// id returns the merchant's index, adding it when new.
func (m *merchants) id(s string) int32 {
	if m.table == nil {
		m.seed = maphash.MakeSeed()
		m.table = make([]int32, 1<<12)
		m.off = []uint32{0}
	}
	mask := uint64(len(m.table) - 1)
	for i := maphash.String(m.seed, s) & mask; ; i = (i + 1) & mask {
		e := m.table[i]
		if e == 0 {
			return m.add(s, i)
		}
		if string(m.name(e-1)) == s {
			return e - 1
		}
	}
}

func (m *merchants) add(s string, slot uint64) int32 {
	idx := int32(m.len())
	m.arena = append(m.arena, s...)
	m.off = append(m.off, uint32(len(m.arena)))
	m.table[slot] = idx + 1
	if int(idx)%merchantChunk == 0 {
		m.stats = append(m.stats, make([]merchantStat, merchantChunk))
	}
	st := m.stat(idx)
	st.curWeek, st.prevWeek = noWeek, noWeek
	if 4*m.len() > 3*len(m.table) {
		m.grow()
	}
	return idx
}

func (m *merchants) grow() {
	m.table = make([]int32, 2*len(m.table))
	mask := uint64(len(m.table) - 1)
	for idx := range int32(m.len()) {
		i := maphash.Bytes(m.seed, m.name(idx)) & mask
		for m.table[i] != 0 {
			i = (i + 1) & mask
		}
		m.table[i] = idx + 1
	}
}

func (m *merchants) stat(i int32) *merchantStat {
	return &m.stats[i/merchantChunk][i%merchantChunk]
}

// addSlot counts a transaction at hour (0-23) and ISO weekday (1-7).
func (m *merchants) addSlot(st *merchantStat, hour, weekday int) {
	if st.n < smallSlots {
		st.small[st.n] = uint8(hour*7 + weekday - 1)
		st.n++
		return
	}
	if st.dense == 0 {
		m.dense = append(m.dense, make([]uint32, numSlots)...)
		st.dense = int32(len(m.dense) / numSlots)
		row := m.dense[(st.dense-1)*numSlots:]
		for _, s := range st.small {
			row[s/7]++
			row[24+s%7]++
		}
	}
	row := m.dense[(st.dense-1)*numSlots:]
	row[hour]++
	row[24+weekday-1]++
	st.n++
}

// slots returns the merchant's counts per hour then weekday.
func (m *merchants) slots(st *merchantStat, out *[numSlots]int64) {
	*out = [numSlots]int64{}
	if st.dense > 0 {
		for i, v := range m.dense[(st.dense-1)*numSlots : st.dense*numSlots] {
			out[i] = int64(v)
		}
		return
	}
	for _, s := range st.small[:st.n] {
		out[s/7]++
		out[24+s%7]++
	}
}

// weekDrop is a merchant's week (by its Monday) that had fewer
// transactions than the week before, which had at least the minimum.
type weekDrop struct {
	merchant  int32
	week      analytics.Day
	prevN     int64
	prevAmt   int64
	n, amount int64
}

// addWeek counts a transaction in the week starting on monday. The rows
// come in event order, so a merchant's weeks only move forward; a week
// left behind is compared with the one before it, and drops are noted.
func (m *merchants) addWeek(idx int32, st *merchantStat, monday analytics.Day, amount int64, minN int64, drops *[]weekDrop) {
	w := int32(monday)
	if st.curWeek != w {
		if st.curWeek != noWeek && w < st.curWeek {
			return // out of event order: cannot happen with sorted input
		}
		m.closeWeek(idx, st, w, minN, drops)
	}
	st.curN++
	st.curAmt += amount
}

// closeWeek moves the merchant on to week next (noWeek: the data ended)
// and notes the drops of the weeks that are complete.
func (m *merchants) closeWeek(idx int32, st *merchantStat, next int32, minN int64, drops *[]weekDrop) {
	if st.curWeek != noWeek {
		// The current week against the one before it.
		if st.prevWeek == st.curWeek-7 && int64(st.prevN) >= minN && st.curN < st.prevN {
			*drops = append(*drops, weekDrop{idx, analytics.Day(st.curWeek), int64(st.prevN), st.prevAmt, int64(st.curN), st.curAmt})
		}
		// The week after it, without a transaction.
		if next != st.curWeek+7 && int64(st.curN) >= minN {
			*drops = append(*drops, weekDrop{idx, analytics.Day(st.curWeek + 7), int64(st.curN), st.curAmt, 0, 0})
		}
	}
	st.prevWeek, st.prevN, st.prevAmt = st.curWeek, st.curN, st.curAmt
	st.curWeek, st.curN, st.curAmt = next, 0, 0
}

// finish closes every merchant's last week and makes the names strings.
func (m *merchants) finish(minN int64, drops *[]weekDrop) {
	all := string(m.arena)
	m.names = make([]string, m.len())
	for i := range int32(m.len()) {
		m.names[i] = all[m.off[i]:m.off[i+1]]
		st := m.stat(i)
		if st.curWeek != noWeek {
			m.closeWeek(i, st, noWeek, minN, drops)
		}
	}
}
