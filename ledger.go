package txpipe

import (
	"fmt"
	"maps"
	"time"
)

// DefaultDedupHorizon is how long, in event time, a card remembers the
// transaction ids it judged: a payment's id is its idempotency key, and a
// repeat within the horizon is rejected as duplicate_transaction_id.
const DefaultDedupHorizon = 7 * 24 * time.Hour

// MasterData is what judging needs of the master data.
type MasterData interface {
	// Card returns a card's master data.
	Card(id int64) (Card, bool)
	// HomeZIP returns the ZIP of a customer's address ("" when unknown).
	HomeZIP(customerID int64) string
	// Stolen returns a card's stolen report, when it has one.
	Stolen(cardID int64) (StolenCard, bool)
}

// MasterIndex is MasterData kept in maps. It is not safe for concurrent
// use: the stream layer replaces a shared one instead of changing it.
type MasterIndex struct {
	cards  map[int64]Card
	zips   map[int64]string
	stolen map[int64]StolenCard
}

// NewMasterIndex indexes master data (which may be nil).
func NewMasterIndex(m *Master) *MasterIndex {
	x := &MasterIndex{cards: map[int64]Card{}, zips: map[int64]string{}, stolen: map[int64]StolenCard{}}
	if m != nil {
		for _, c := range m.Customers {
			x.SetCustomer(c)
		}
		for _, c := range m.Cards {
			x.SetCard(c)
		}
	}
	return x
}

// SetCard adds or replaces a card.
func (x *MasterIndex) SetCard(c Card) { x.cards[c.ID] = c }

// SetCustomer adds or replaces a customer.
func (x *MasterIndex) SetCustomer(c Customer) { x.zips[c.ID] = ZIP(c.Address) }

// SetStolen records a card's stolen report, or clears it.
func (x *MasterIndex) SetStolen(s StolenCard) {
	if s.Cleared {
		delete(x.stolen, s.CardID)
		return
	}
	x.stolen[s.CardID] = s
}

// Stolen implements MasterData.
func (x *MasterIndex) Stolen(cardID int64) (StolenCard, bool) {
	s, ok := x.stolen[cardID]
	return s, ok
}

// Card implements MasterData.
func (x *MasterIndex) Card(id int64) (Card, bool) {
	c, ok := x.cards[id]
	return c, ok
}

// HomeZIP implements MasterData.
func (x *MasterIndex) HomeZIP(customerID int64) string { return x.zips[customerID] }

// Cards is the number of cards.
func (x *MasterIndex) Cards() int { return len(x.cards) }

// Clone returns a copy that can be changed without changing x.
func (x *MasterIndex) Clone() *MasterIndex {
	c := &MasterIndex{cards: maps.Clone(x.cards), zips: maps.Clone(x.zips), stolen: maps.Clone(x.stolen)}
	return c
}

// CardState is what the stream layer keeps per card: its pending balance,
// the latest event time it judged, and the transactions it judged within
// the dedup horizon of that time, in the order judged.
type CardState struct {
	Pending Money
	Last    int64    // unix seconds of the latest event judged; meaningful when len(Seen) > 0 or after a judgement
	Seen    []SeenID // oldest first
}

// SeenID is a judged transaction id and its event time (unix seconds).
type SeenID struct {
	ID, At int64
}

// cardState is a card's state in a Ledger. ids and ats are parallel: the
// judged ids and their event times, in the order judged; entries older
// than last − horizon are dropped when a batch settles. An event time is
// kept in 32 bits, as seconds from 2000-01-01 (12 bytes per remembered id
// with its id): times before 1931-12-14 or after 2068-01-19 are kept as
// those limits.
type cardState struct {
	pending Money
	last    int64
	ids     []int64
	ats     []int32
}

// atEpoch is the zero of the 32-bit event times: 2000-01-01 00:00:00 UTC.
const atEpoch = 946684800

func packAt(at int64) int32 {
	return int32(min(max(at-atEpoch, -1<<31), 1<<31-1))
}

func unpackAt(a int32) int64 { return int64(a) + atEpoch }

// Ledger judges transactions in event order against the master data and
// keeps each card's running pending balance and its recent transaction
// ids. It is pure; the stream layer keeps one per input partition (the
// cards of a partition), persists its state and restores it. It is not
// safe for concurrent use.
type Ledger struct {
	master  MasterData
	horizon int64 // seconds
	cards   map[int64]*cardState
}

// NewLedger returns an empty ledger over master data. A transaction id is
// a duplicate when the card judged it at an event time no older than the
// card's latest event time (or the new transaction's, if later) minus the
// horizon (DefaultDedupHorizon when ≤ 0).
func NewLedger(master MasterData, horizon time.Duration) *Ledger {
	if horizon <= 0 {
		horizon = DefaultDedupHorizon
	}
	return &Ledger{master: master, horizon: int64(horizon / time.Second), cards: map[int64]*cardState{}}
}

// SetMaster replaces the master data the next judgements use (a new limit
// takes effect for the next transaction); the cards' states are kept.
func (l *Ledger) SetMaster(m MasterData) { l.master = m }

// State returns a card's state: a card never judged starts at its current
// balance. ok is false for a card with neither master data nor a state.
func (l *Ledger) State(cardID int64) (CardState, bool) {
	if e := l.cards[cardID]; e != nil {
		s := CardState{Pending: e.pending, Last: e.last, Seen: make([]SeenID, 0, len(e.ids))}
		from := packAt(e.last - l.horizon)
		for i, id := range e.ids {
			if e.ats[i] >= from {
				s.Seen = append(s.Seen, SeenID{ID: id, At: unpackAt(e.ats[i])})
			}
		}
		return s, true
	}
	c, ok := l.master.Card(cardID)
	return CardState{Pending: c.CurrentBalance}, ok
}

// Restore sets a card's state, as read back from a checkpoint; ids older
// than the horizon are dropped.
func (l *Ledger) Restore(cardID int64, s CardState) {
	e := &cardState{pending: s.Pending, last: s.Last}
	from := packAt(s.Last - l.horizon)
	for _, seen := range s.Seen {
		if at := packAt(seen.At); at >= from {
			e.ids, e.ats = append(e.ids, seen.ID), append(e.ats, at)
		}
	}
	l.cards[cardID] = e
}

// Replay applies a judgement that was taken and committed before (a result
// read back from the stream): the card's pending balance after it, and its
// id and event time.
func (l *Ledger) Replay(cardID, id int64, at time.Time, pending Money) {
	e := l.entry(cardID, 0)
	e.pending = pending
	l.remember(e, id, at.Unix())
}

// Cards lists the cards that have a state.
func (l *Ledger) Cards() []int64 {
	out := make([]int64, 0, len(l.cards))
	for id := range l.cards {
		out = append(out, id)
	}
	return out
}

// Remembered is the number of ids the ledger holds.
func (l *Ledger) Remembered() int {
	n := 0
	for _, e := range l.cards {
		n += len(e.ids)
	}
	return n
}

func (l *Ledger) entry(cardID int64, balance Money) *cardState {
	e := l.cards[cardID]
	if e == nil {
		e = &cardState{pending: balance, last: minEventTime}
		l.cards[cardID] = e
	}
	return e
}

// minEventTime is the latest event time of a card that judged nothing.
const minEventTime = -1 << 62

func (l *Ledger) remember(e *cardState, id, at int64) {
	e.ids, e.ats = append(e.ids, id), append(e.ats, packAt(at))
	e.last = max(e.last, at)
}

// Snapshot is a card's state as it was, to roll back to (see Rollback).
type Snapshot struct {
	exists  bool
	pending Money
	last    int64
	n       int
}

// Snapshot returns a card's current state, without allocating. Between a
// snapshot and Rollback or Settle, judgements only append ids.
func (l *Ledger) Snapshot(cardID int64) Snapshot {
	e := l.cards[cardID]
	if e == nil {
		return Snapshot{}
	}
	return Snapshot{exists: true, pending: e.pending, last: e.last, n: len(e.ids)}
}

// Rollback puts a card back in the state of a snapshot (its transaction
// aborted).
func (l *Ledger) Rollback(cardID int64, s Snapshot) {
	if !s.exists {
		delete(l.cards, cardID)
		return
	}
	e := l.cards[cardID]
	if e == nil {
		return
	}
	e.pending, e.last = s.pending, s.last
	clear(e.ids[s.n:]) // keep no stale ids past the length
	e.ids, e.ats = e.ids[:s.n], e.ats[:s.n]
}

// Settle forgets a card's ids that fell out of the horizon, once the
// judgements since its snapshot are committed.
func (l *Ledger) Settle(cardID int64) {
	e := l.cards[cardID]
	if e == nil {
		return
	}
	from := packAt(e.last - l.horizon)
	i := 0
	for i < len(e.ats) && e.ats[i] < from {
		i++
	}
	// The lists only grow at the end; dropping from the front and the
	// slack that appends leave are taken back once they pass a quarter.
	if n := len(e.ids) - i; cap(e.ids) > n+n/4+4 {
		e.ids = append(make([]int64, 0, n+n/8+1), e.ids[i:]...)
		e.ats = append(make([]int32, 0, n+n/8+1), e.ats[i:]...)
		return
	}
	e.ids, e.ats = e.ids[i:], e.ats[i:]
}

// Judge decides one raw transaction. It returns either the result, with
// the card's pending balance updated, or why the row cannot be judged.
func (l *Ledger) Judge(raw RawTransaction) (Result, RejectReason, string) {
	tx, reason, detail := ParseTransaction(raw)
	if reason != "" {
		return Result{}, reason, detail
	}
	return l.JudgeParsed(tx)
}

// JudgeParsed decides a transaction whose fields are already checked.
func (l *Ledger) JudgeParsed(tx Transaction) (Result, RejectReason, string) {
	card, ok := l.master.Card(tx.CardID)
	if !ok {
		return Result{}, RejectUnknownCard, fmt.Sprintf("card %d is not in the master data", tx.CardID)
	}
	e := l.entry(tx.CardID, card.CurrentBalance)
	at := tx.Timestamp.Unix()
	from := packAt(max(e.last, at) - l.horizon)
	for i, id := range e.ids {
		if id == tx.ID && e.ats[i] >= from {
			return Result{}, RejectDuplicate, fmt.Sprintf("transaction %d was already judged on card %d (event time %s, within the dedup horizon of %s)",
				tx.ID, tx.CardID, time.Unix(unpackAt(e.ats[i]), 0).UTC().Format(TimestampLayout), time.Duration(l.horizon)*time.Second)
		}
	}
	var status Status
	var why DeclineReason
	var pending Money
	if s, ok := l.master.Stolen(tx.CardID); ok && s.StolenAt(tx.EventTime()) {
		status, why, pending = StatusDeclined, DeclineStolen, e.pending
	} else {
		status, why, pending = decide(tx.Amount, ZIP(tx.Location), card.CreditLimit, l.master.HomeZIP(card.CustomerID), e.pending)
	}
	e.pending = pending
	l.remember(e, tx.ID, at)
	return Result{Transaction: tx, Status: status, PendingBalance: pending, DeclineReason: why, Pos: Unpositioned}, "", ""
}
