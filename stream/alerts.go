package stream

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe"
)

// Stolen-card alerts: an operator downstream of the ledger.
//
// The ledger declines a payment on a card reported stolen at or before
// its event time (stolen_card) and forwards it here. Event time is the
// payment's event_date_origin (its timestamp when the producer gives
// none). Per input partition:
//
//   - the watermark is the largest event time seen minus Bound (5 s): a
//     window of Window (5 s, tumbling, aligned to the epoch) closes once
//     the watermark passes its end, and emits one PAYMENT_ALERT per
//     stolen card with payments in it, listing them;
//   - a payment whose window has already closed is late: it is counted,
//     emitted at once in a PAYMENT_ALERT of its own flagged late, and
//     included in later summaries;
//   - every SummaryEvery (10 s) of event time, at each multiple of it the
//     watermark passes, one PAYMENT_ALERT_SUMMARY per stolen card with
//     payments in the last SummarySpan (60 min): count, total, first and
//     last seen, distinct merchants and locations;
//   - a quiet partition's windows still close: once no payment came for
//     Idle (5 s) of processing time, the watermark moves on with
//     processing time (an idle watermark), checked by a processing-time
//     timer every Window.
//
// Alerts go to the alerts topic, keyed by card, in the same Kafka
// transaction as the decisions. The state — each stolen card's payments
// of the last hour (the open windows are those of them whose window has
// not closed) and the partition's event time — is a changelog: every
// transaction writes what it changed, so a crash or a rebalance neither
// repeats nor drops an alert. With an injected clock, the same input
// gives byte-identical alerts.

// AlertsName is the alert operator's name on the state topic.
const AlertsName = "alerts"

// AlertsConfig configures the alerts operator (zero values take the
// defaults in brackets).
type AlertsConfig struct {
	Topic        string        // the alerts topic (Topics.Alerts)
	Window       time.Duration // tumbling window of PAYMENT_ALERT [5 s]
	SummaryEvery time.Duration // period of PAYMENT_ALERT_SUMMARY [10 s]
	SummarySpan  time.Duration // what a summary covers [60 min]
	Bound        time.Duration // how far behind the largest event time the watermark stays [5 s]
	Idle         time.Duration // quiet time after which the watermark follows processing time [5 s]
	Clock        Clock
}

func (c *AlertsConfig) defaults() {
	if c.Window <= 0 {
		c.Window = 5 * time.Second
	}
	if c.SummaryEvery <= 0 {
		c.SummaryEvery = 10 * time.Second
	}
	if c.SummarySpan <= 0 {
		c.SummarySpan = time.Hour
	}
	if c.Bound <= 0 {
		c.Bound = 5 * time.Second
	}
	if c.Idle <= 0 {
		c.Idle = 5 * time.Second
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
}

// NewAlerts returns the stolen-card alert operator, to run after the
// ledger (ValidatorConfig.Operators).
func NewAlerts(cfg AlertsConfig) Operator {
	cfg.defaults()
	return &alertsOp{cfg: cfg}
}

type alertsOp struct{ cfg AlertsConfig }

func (o *alertsOp) Name() string           { return AlertsName }
func (o *alertsOp) Inputs() []string       { return []string{ForwardResults} }
func (o *alertsOp) OutputTopics() []string { return []string{o.cfg.Topic} }
func (o *alertsOp) NewTask(int32) Task {
	return &alertsTask{op: o, cards: map[int64][]payment{}, dirty: map[int64]bool{}, undo: map[int64][]payment{}}
}

// payment is a payment on a stolen card, as its alerts list it.
type payment struct {
	ID       int64        `json:"transaction_id"`
	Amount   txpipe.Money `json:"-"`
	Merchant string       `json:"merchant_name"`
	Location string       `json:"location"`
	At       int64        `json:"-"` // event time, unix milliseconds
	Late     bool         `json:"late,omitempty"`
}

// alertsTask is the alert state of one input partition.
type alertsTask struct {
	op *alertsOp
	// cards are the stolen cards' payments of the last SummarySpan before
	// the next summary, and those whose window is still open, by event
	// time then arrival.
	cards    map[int64][]payment
	maxEvent int64 // the largest event time seen, unix ms (0: none)
	wm       int64 // the watermark, unix ms
	nextTick int64 // the next summary, unix ms (0: none yet)
	quiet    time.Time
	lastTick time.Time // processing time of the last idle check
	dirty    map[int64]bool
	meta     bool // maxEvent, wm or nextTick changed

	// the mark of the transaction in flight
	undo                     map[int64][]payment // cards as they were (nil: absent)
	markMax, markWM, markNxt int64
	markQuiet, markTick      time.Time
	markDirty                map[int64]bool
	markMeta                 bool
}

func (t *alertsTask) Process(*kgo.Record, *Emitter) {}

func ms(t time.Time) int64 { return t.UnixMilli() }

// Receive takes a judged payment: every one moves event time; a stolen
// card's goes into its window, or out at once when late.
func (t *alertsTask) Receive(_ string, v any, out *Emitter) {
	r := v.(*txpipe.Result)
	at := ms(r.EventTime())
	t.quiet = out.Now()
	if at > t.maxEvent {
		t.maxEvent, t.meta = at, true
	}
	if r.DeclineReason == txpipe.DeclineStolen {
		p := payment{ID: r.ID, Amount: r.Amount, Merchant: r.Merchant, Location: r.Location, At: at}
		win := t.op.cfg.Window.Milliseconds()
		if start := at - at%win; start+win <= t.wm { // its window has closed
			p.Late = true
			t.emitAlert(out, r.CardID, start, start+win, []payment{p}, true)
		}
		t.change(r.CardID)
		ps := t.cards[r.CardID]
		i := len(ps)
		for i > 0 && ps[i-1].At > p.At { // keep them in event-time order
			i--
		}
		t.cards[r.CardID] = slices.Insert(ps, i, p)
		if t.nextTick == 0 {
			// The ticks start again after the watermark, not after a late
			// payment's own time: ticks the watermark passed while no stolen
			// payment was held have no summary to give, and a back-dated
			// payment must not release a burst of them.
			every, from := t.op.cfg.SummaryEvery.Milliseconds(), max(at, t.wm)
			t.nextTick, t.meta = from-from%every+every, true
		}
	}
	t.advance(out, t.maxEvent-t.op.cfg.Bound.Milliseconds())
}

// change remembers a card's payments before the transaction changes them.
func (t *alertsTask) change(card int64) {
	if _, ok := t.undo[card]; !ok {
		t.undo[card] = slices.Clone(t.cards[card])
		if t.undo[card] == nil {
			t.undo[card] = []payment{}
		}
	}
	t.dirty[card] = true
}

// advance moves the watermark to wm (never back), closing the windows and
// emitting the summaries it passes, in a fixed order.
func (t *alertsTask) advance(out *Emitter, wm int64) {
	if wm <= t.wm {
		return
	}
	old := t.wm
	t.wm, t.meta = wm, true
	win := t.op.cfg.Window.Milliseconds()
	// Windows that close: (start, card) in order.
	type closing struct {
		start, card int64
	}
	var due []closing
	// Windows end at multiples of win: none closes unless the watermark
	// passed one (most advances move it by a millisecond or so, and the
	// scan below reads every held payment).
	crossed := floorDiv(wm, win) > floorDiv(old, win)
	for card, ps := range t.cards {
		if !crossed {
			break
		}
		for _, p := range ps {
			if p.Late {
				continue
			}
			start := p.At - p.At%win
			if start+win > old && start+win <= wm {
				if len(due) == 0 || due[len(due)-1] != (closing{start, card}) {
					due = append(due, closing{start, card})
				}
			}
		}
	}
	slices.SortFunc(due, func(a, b closing) int {
		if a.start != b.start {
			return cmpInt(a.start, b.start)
		}
		return cmpInt(a.card, b.card)
	})
	due = slices.Compact(due)
	for _, c := range due {
		var in []payment
		for _, p := range t.cards[c.card] {
			if !p.Late && p.At-p.At%win == c.start {
				in = append(in, p)
			}
		}
		t.emitAlert(out, c.card, c.start, c.start+win, in, false)
	}
	// Summaries at every tick the watermark passed.
	every, span := t.op.cfg.SummaryEvery.Milliseconds(), t.op.cfg.SummarySpan.Milliseconds()
	for t.nextTick != 0 && t.nextTick <= wm {
		tick := t.nextTick
		for _, card := range slices.Sorted(maps.Keys(t.cards)) {
			var in []payment
			for _, p := range t.cards[card] {
				if p.At > tick-span && p.At <= tick {
					in = append(in, p)
				}
			}
			if len(in) > 0 {
				t.emitSummary(out, card, tick, in)
			}
		}
		t.nextTick += every
		// Forget what no summary to come and no open window needs.
		for card, ps := range t.cards {
			keep := ps[:0:0]
			for _, p := range ps {
				if p.At > t.nextTick-span || (!p.Late && p.At-p.At%win+win > wm) {
					keep = append(keep, p)
				}
			}
			if len(keep) != len(ps) {
				t.change(card)
				if len(keep) == 0 {
					delete(t.cards, card)
				} else {
					t.cards[card] = keep
				}
			}
		}
		if len(t.cards) == 0 {
			t.nextTick = 0 // the next stolen payment starts the ticks again
		}
	}
}

// floorDiv is a/b rounded down (b > 0).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (t *alertsTask) NextTimer() time.Time {
	if len(t.cards) == 0 || t.quiet.IsZero() {
		return time.Time{}
	}
	next := t.quiet.Add(t.op.cfg.Idle)
	if !t.lastTick.IsZero() && t.lastTick.After(t.quiet) {
		next = t.lastTick.Add(t.op.cfg.Window)
	}
	return next
}

// OnTime moves a quiet partition's watermark with processing time.
func (t *alertsTask) OnTime(now time.Time, out *Emitter) {
	if len(t.cards) == 0 || now.Before(t.quiet.Add(t.op.cfg.Idle)) {
		return
	}
	t.lastTick = now
	t.advance(out, t.maxEvent-t.op.cfg.Bound.Milliseconds()+now.Sub(t.quiet).Milliseconds())
}

func (t *alertsTask) Dirty() bool { return len(t.dirty) > 0 || t.meta }

func (t *alertsTask) Begin() {
	clear(t.undo)
	t.markMax, t.markWM, t.markNxt = t.maxEvent, t.wm, t.nextTick
	t.markQuiet, t.markTick = t.quiet, t.lastTick
	t.markDirty, t.markMeta = maps.Clone(t.dirty), t.meta
}

func (t *alertsTask) Rollback() {
	for card, ps := range t.undo {
		if len(ps) == 0 {
			delete(t.cards, card)
		} else {
			t.cards[card] = ps
		}
	}
	clear(t.undo)
	t.maxEvent, t.wm, t.nextTick = t.markMax, t.markWM, t.markNxt
	t.quiet, t.lastTick = t.markQuiet, t.markTick
	t.dirty, t.meta = t.markDirty, t.markMeta
}

func (t *alertsTask) Commit(map[string]int64) { clear(t.undo) }

// Checkpoint writes the cards and the event time the transaction changed
// (a changelog).
func (t *alertsTask) Checkpoint(w *StateWriter, _ bool, _ map[string]int64) {
	for card := range t.dirty {
		key := strconv.AppendInt([]byte("c/"), card, 10)
		ps := t.cards[card]
		if len(ps) == 0 {
			w.Put(key, nil)
			continue
		}
		b, _ := json.Marshal(encodePayments(ps))
		w.Put(key, b)
	}
	if t.meta || len(t.dirty) > 0 {
		w.Put([]byte("m"), []byte(fmt.Sprintf(`{"max_event":%d,"watermark":%d,"next_tick":%d}`, t.maxEvent, t.wm, t.nextTick)))
	}
	clear(t.dirty)
	t.meta = false
}

// storedPayment is a payment in the changelog.
type storedPayment struct {
	ID       int64  `json:"id"`
	Amount   string `json:"amount"`
	Merchant string `json:"merchant"`
	Location string `json:"location"`
	At       int64  `json:"at"`
	Late     bool   `json:"late,omitempty"`
}

func encodePayments(ps []payment) []storedPayment {
	out := make([]storedPayment, len(ps))
	for i, p := range ps {
		out[i] = storedPayment{ID: p.ID, Amount: p.Amount.String(), Merchant: p.Merchant, Location: p.Location, At: p.At, Late: p.Late}
	}
	return out
}

func (t *alertsTask) Restore(key, value []byte) error {
	switch {
	case string(key) == "m":
		var m struct {
			MaxEvent  int64 `json:"max_event"`
			Watermark int64 `json:"watermark"`
			NextTick  int64 `json:"next_tick"`
		}
		if err := json.Unmarshal(value, &m); err != nil {
			return fmt.Errorf("alert state: %w", err)
		}
		t.maxEvent, t.wm, t.nextTick = m.MaxEvent, m.Watermark, m.NextTick
	case strings.HasPrefix(string(key), "c/"):
		card, ok := txpipe.ParseID(string(key[2:]))
		if !ok {
			return fmt.Errorf("alert state key %q is not a card", key)
		}
		if value == nil {
			delete(t.cards, card)
			return nil
		}
		var sp []storedPayment
		if err := json.Unmarshal(value, &sp); err != nil {
			return fmt.Errorf("alert state of card %d: %w", card, err)
		}
		ps := make([]payment, len(sp))
		for i, s := range sp {
			m, err := txpipe.ParseMoney(s.Amount)
			if err != nil {
				return fmt.Errorf("alert state of card %d: %w", card, err)
			}
			ps[i] = payment{ID: s.ID, Amount: m, Merchant: s.Merchant, Location: s.Location, At: s.At, Late: s.Late}
		}
		t.cards[card] = ps
	default:
		return fmt.Errorf("unknown alert state key %q", key)
	}
	return nil
}

// Restored starts the idle clock afresh.
func (t *alertsTask) Restored(context.Context, StateReader) error {
	t.quiet = t.op.cfg.Clock.Now()
	return nil
}

// alertRecord is the value of an alert record.
type alertRecord struct {
	EventType   string          `json:"event_type"`
	CardID      int64           `json:"card_id"`
	From        string          `json:"from"`
	To          string          `json:"to"`
	Late        bool            `json:"late"`
	Count       int64           `json:"count"`
	Total       json.RawMessage `json:"total"`
	FirstSeen   string          `json:"first_seen"`
	LastSeen    string          `json:"last_seen"`
	Merchants   []string        `json:"merchants,omitempty"`
	Locations   []string        `json:"locations,omitempty"`
	Payments    []alertPayment  `json:"payments,omitempty"`
	EventOrigin string          `json:"event_date_origin"`
}

type alertPayment struct {
	ID       int64           `json:"transaction_id"`
	Amount   json.RawMessage `json:"amount"`
	Merchant string          `json:"merchant_name"`
	Location string          `json:"location"`
	Origin   string          `json:"event_date_origin"`
}

func msTime(m int64) string { return time.UnixMilli(m).UTC().Format(txpipe.OriginLayout) }

func (t *alertsTask) emitAlert(out *Emitter, card, from, to int64, ps []payment, late bool) {
	rec := alertRecord{EventType: txpipe.EventAlert, CardID: card, From: msTime(from), To: msTime(to), Late: late}
	var total txpipe.Money
	for _, p := range ps {
		total += p.Amount
		rec.Payments = append(rec.Payments, alertPayment{ID: p.ID, Amount: json.RawMessage(p.Amount.String()), Merchant: p.Merchant, Location: p.Location, Origin: msTime(p.At)})
	}
	rec.Count, rec.Total = int64(len(ps)), json.RawMessage(total.String())
	rec.FirstSeen, rec.LastSeen = msTime(ps[0].At), msTime(ps[len(ps)-1].At)
	rec.EventOrigin = rec.LastSeen
	t.send(out, card, txpipe.EventAlert, rec)
}

func (t *alertsTask) emitSummary(out *Emitter, card, tick int64, ps []payment) {
	span := t.op.cfg.SummarySpan.Milliseconds()
	rec := alertRecord{EventType: txpipe.EventAlertSummary, CardID: card, From: msTime(tick - span), To: msTime(tick)}
	var total txpipe.Money
	merchants, locations := map[string]bool{}, map[string]bool{}
	first, last := ps[0].At, ps[0].At
	for _, p := range ps {
		total += p.Amount
		merchants[p.Merchant], locations[p.Location] = true, true
		first, last = min(first, p.At), max(last, p.At)
	}
	rec.Count, rec.Total = int64(len(ps)), json.RawMessage(total.String())
	rec.FirstSeen, rec.LastSeen = msTime(first), msTime(last)
	rec.Merchants, rec.Locations = slices.Sorted(maps.Keys(merchants)), slices.Sorted(maps.Keys(locations))
	rec.EventOrigin = msTime(tick)
	t.send(out, card, txpipe.EventAlertSummary, rec)
}

var alertHeaders = map[string][]kgo.RecordHeader{
	txpipe.EventAlert:        {{Key: HeaderEventType, Value: []byte(txpipe.EventAlert)}},
	txpipe.EventAlertSummary: {{Key: HeaderEventType, Value: []byte(txpipe.EventAlertSummary)}},
}

func (t *alertsTask) send(out *Emitter, card int64, typ string, v alertRecord) {
	b, err := json.Marshal(v)
	if err != nil { // strings, numbers and money: it cannot happen, but never send an empty value
		b = fmt.Appendf(nil, `{"event_type":%q,"card_id":%d,"error":%q}`, typ, card, err.Error())
	}
	rec := out.Record()
	rec.Topic, rec.Headers = t.op.cfg.Topic, alertHeaders[typ]
	rec.Key = strconv.AppendInt(nil, card, 10)
	rec.Value = b
	out.Send(rec, false)
}

// DecodeAlert reads a record of the alerts topic.
func DecodeAlert(b []byte) (txpipe.Alert, error) {
	var r alertRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return txpipe.Alert{}, fmt.Errorf("alert record: %w", err)
	}
	a := txpipe.Alert{Type: r.EventType, CardID: r.CardID, Late: r.Late, Count: r.Count, JSON: string(b)}
	if a.Type != txpipe.EventAlert && a.Type != txpipe.EventAlertSummary {
		return a, fmt.Errorf("alert record: event_type %q is not an alert", a.Type)
	}
	var err error
	if a.Total, err = txpipe.ParseMoney(string(r.Total)); err != nil {
		return a, fmt.Errorf("alert record: total: %w", err)
	}
	for _, f := range []struct {
		name string
		s    string
		t    *time.Time
	}{{"from", r.From, &a.From}, {"to", r.To, &a.To}, {"first_seen", r.FirstSeen, &a.First}, {"last_seen", r.LastSeen, &a.Last}, {"event_date_origin", r.EventOrigin, &a.Origin}} {
		if *f.t, err = time.Parse(time.RFC3339Nano, f.s); err != nil {
			return a, fmt.Errorf("alert record: %s %q: %w", f.name, f.s, err)
		}
	}
	return a, nil
}
