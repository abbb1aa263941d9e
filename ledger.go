package txpipe

import (
	"fmt"
)

// RecentIDs is how many transaction ids per card a Ledger remembers to
// catch a transaction sent twice.
const RecentIDs = 16

// CardState is what the stream layer keeps per card: its pending balance
// and the ids of its most recent transactions, oldest first.
type CardState struct {
	Pending Money
	Recent  []int64
}

// cardEntry is a card's master data and, once it has one, its state.
type cardEntry struct {
	card     Card
	known    bool // the card is in the master data
	hasState bool
	pending  Money
	recent   [RecentIDs]int64 // a ring: the n most recent ids end at head-1
	n, head  int
}

func (e *cardEntry) seen(id int64) bool {
	for i := 0; i < e.n; i++ {
		if e.recent[i] == id {
			return true
		}
	}
	return false
}

func (e *cardEntry) remember(id int64) {
	e.recent[e.head] = id
	e.head = (e.head + 1) % RecentIDs
	if e.n < RecentIDs {
		e.n++
	}
}

func (e *cardEntry) state() CardState {
	var s CardState
	e.stateInto(&s)
	return s
}

func (e *cardEntry) stateInto(s *CardState) {
	s.Pending, s.Recent = e.pending, s.Recent[:0]
	start := (e.head - e.n + RecentIDs) % RecentIDs
	for i := 0; i < e.n; i++ {
		s.Recent = append(s.Recent, e.recent[(start+i)%RecentIDs])
	}
}

func (e *cardEntry) restore(s CardState) {
	e.hasState, e.pending, e.n, e.head = true, s.Pending, 0, 0
	recent := s.Recent
	if len(recent) > RecentIDs {
		recent = recent[len(recent)-RecentIDs:]
	}
	for _, id := range recent {
		e.remember(id)
	}
}

// Ledger judges transactions in event order against the master data and
// keeps each card's running pending balance. It is pure: the stream layer
// persists and restores its state, the batch and tests use it directly. It
// is not safe for concurrent use.
type Ledger struct {
	cards map[int64]*cardEntry
	zips  map[int64]string // customer id → ZIP of the address
}

// NewLedger returns a ledger over the master data (which may be nil and
// filled later with SetCard and SetCustomer).
func NewLedger(m *Master) *Ledger {
	l := &Ledger{cards: map[int64]*cardEntry{}, zips: map[int64]string{}}
	if m != nil {
		for _, c := range m.Customers {
			l.SetCustomer(c)
		}
		for _, c := range m.Cards {
			l.SetCard(c)
		}
	}
	return l
}

func (l *Ledger) entry(id int64) *cardEntry {
	e := l.cards[id]
	if e == nil {
		e = &cardEntry{}
		l.cards[id] = e
	}
	return e
}

// SetCard adds or replaces a card's master data (a new limit takes effect
// for the next transaction). The card's pending balance is kept.
func (l *Ledger) SetCard(c Card) {
	e := l.entry(c.ID)
	e.card, e.known = c, true
}

// SetCustomer adds or replaces a customer's master data.
func (l *Ledger) SetCustomer(c Customer) { l.zips[c.ID] = ZIP(c.Address) }

// Card returns a card's master data.
func (l *Ledger) Card(id int64) (Card, bool) {
	if e := l.cards[id]; e != nil && e.known {
		return e.card, true
	}
	return Card{}, false
}

// State returns a card's current state; a card never judged starts at its
// current balance. ok is false for a card with neither master data nor a
// state.
func (l *Ledger) State(cardID int64) (s CardState, ok bool) {
	e := l.cards[cardID]
	switch {
	case e == nil:
		return CardState{}, false
	case e.hasState:
		return e.state(), true
	}
	return CardState{Pending: e.card.CurrentBalance}, e.known
}

// StateInto is State, reusing s's memory.
func (l *Ledger) StateInto(cardID int64, s *CardState) bool {
	e := l.cards[cardID]
	switch {
	case e == nil:
		*s = CardState{Recent: s.Recent[:0]}
		return false
	case e.hasState:
		e.stateInto(s)
		return true
	}
	s.Pending, s.Recent = e.card.CurrentBalance, s.Recent[:0]
	return e.known
}

// HasState reports whether a card has a state of its own (judged or
// restored), as opposed to starting at its current balance.
func (l *Ledger) HasState(cardID int64) bool {
	e := l.cards[cardID]
	return e != nil && e.hasState
}

// Snapshot is a card's state as it was, to roll back to (see Rollback).
type Snapshot struct {
	hasState bool
	pending  Money
	recent   [RecentIDs]int64
	n, head  int
}

// HasState reports whether the card had a state of its own then.
func (s Snapshot) HasState() bool { return s.hasState }

// Snapshot returns a card's current state, without allocating; ok is false
// for a card the ledger does not know.
func (l *Ledger) Snapshot(cardID int64) (s Snapshot, ok bool) {
	e := l.cards[cardID]
	if e == nil {
		return s, false
	}
	return Snapshot{hasState: e.hasState, pending: e.pending, recent: e.recent, n: e.n, head: e.head}, true
}

// Rollback puts a card back in the state of a snapshot.
func (l *Ledger) Rollback(cardID int64, s Snapshot) {
	e := l.entry(cardID)
	e.hasState, e.pending, e.recent, e.n, e.head = s.hasState, s.pending, s.recent, s.n, s.head
}

// Restore sets a card's state, as read back from its checkpoint.
func (l *Ledger) Restore(cardID int64, s CardState) { l.entry(cardID).restore(s) }

// Forget drops a card's state (its partition went to another process).
func (l *Ledger) Forget(cardID int64) {
	e := l.cards[cardID]
	if e == nil {
		return
	}
	if !e.known {
		delete(l.cards, cardID)
		return
	}
	e.hasState, e.pending, e.n, e.head = false, 0, 0, 0
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
	e := l.cards[tx.CardID]
	if e == nil || !e.known {
		return Result{}, RejectUnknownCard, fmt.Sprintf("card %d is not in the master data", tx.CardID)
	}
	if !e.hasState {
		e.hasState, e.pending = true, e.card.CurrentBalance
	}
	if e.seen(tx.ID) {
		return Result{}, RejectDuplicate, fmt.Sprintf("transaction %d was already judged on card %d", tx.ID, tx.CardID)
	}
	status, why, pending := decide(tx.Amount, ZIP(tx.Location), e.card.CreditLimit, l.zips[e.card.CustomerID], e.pending)
	e.pending = pending
	e.remember(tx.ID)
	return Result{Transaction: tx, Status: status, PendingBalance: pending, DeclineReason: why}, "", ""
}
