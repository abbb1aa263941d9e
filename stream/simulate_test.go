package stream_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/dataset"
	"github.com/txpipe/txpipe/internal/kafkatest"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/stream"
)

// simPayment is a simulated payment read back from the input topic.
type simPayment struct {
	raw    txpipe.RawTransaction
	origin time.Time // event_date_origin
	sent   time.Time // the record's timestamp: when the producer sent it
}

// readPayments reads every record of the input topic.
func readPayments(t *testing.T, brokers []string, topic string) []simPayment {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []simPayment
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			raw, err := stream.DecodeTransaction(r.Value)
			if err != nil {
				t.Fatalf("%s/%d/%d: %v", r.Topic, r.Partition, r.Offset, err)
			}
			if string(r.Key) != raw.CardID {
				t.Fatalf("record keyed %q for card %s", r.Key, raw.CardID)
			}
			hs := map[string]string{}
			for _, h := range r.Headers {
				hs[h.Key] = string(h.Value)
			}
			if hs[stream.HeaderEventType] != stream.EventPayment || hs[stream.HeaderSource] != "simulate:"+hs[stream.HeaderSeq] || hs[stream.HeaderSeq] == "" {
				t.Fatalf("headers %v", hs)
			}
			var originText, eventType string
			if err := jsonFields(r.Value, map[string]*string{"event_date_origin": &originText, "event_type": &eventType}); err != nil {
				t.Fatal(err)
			}
			origin, err := time.Parse("2006-01-02T15:04:05.000Z07:00", originText)
			if err != nil || eventType != stream.EventPayment {
				t.Fatalf("event_date_origin %q (%v), event_type %q", originText, err, eventType)
			}
			if want := origin.UTC().Format(txpipe.TimestampLayout); raw.Timestamp != want {
				t.Fatalf("timestamp %s, event_date_origin %s", raw.Timestamp, originText)
			}
			out = append(out, simPayment{raw: raw, origin: origin, sent: r.Timestamp})
			if r.Offset >= left[r.Partition]-1 {
				delete(left, r.Partition)
			}
		})
	}
	return out
}

// jsonFields reads string fields of a flat JSON object.
func jsonFields(b []byte, fields map[string]*string) error {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	for k, dst := range fields {
		if s, ok := m[k].(string); ok {
			*dst = s
		}
	}
	return nil
}

// TestSimulate publishes exactly --count payments with unique ids, the
// producer's headers, an event_date_origin and a share of late ones; the
// validator judges every one (no unknown card, no duplicate id), most of
// them pending; a second run's ids are new.
func TestSimulate(t *testing.T) {
	kafkatest.EachConcurrent(t, func(t *testing.T, k kafkatest.Broker) {
		brokers := k.Addrs
		data := t.TempDir()
		if _, err := dataset.Generate(context.Background(), data, dataset.Options{Customers: 30, Cards: 50, Transactions: 10, Seed: 8}); err != nil {
			t.Fatal(err)
		}
		m, err := csvfile.ReadMaster(data)
		if err != nil {
			t.Fatal(err)
		}
		topics := k.Topics(t, "sim")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := stream.PublishMaster(ctx, brokers, topics, m.Cards, m.Customers); err != nil {
			t.Fatal(err)
		}
		zip := map[int64]string{}
		for _, c := range m.Customers {
			zip[c.ID] = txpipe.ZIP(c.Address)
		}
		var cards []stream.SimCard
		for _, c := range m.Cards {
			cards = append(cards, stream.SimCard{ID: c.ID, ZIP: zip[c.CustomerID], Limit: c.CreditLimit})
		}
		const count, late = 2000, 0.1
		cfg := stream.SimulateConfig{
			Brokers: brokers, Topics: topics, Cards: cards, Rate: 20000, Count: count,
			Late: late, LateBy: time.Hour, Jitter: 300 * time.Millisecond, Seed: 11,
		}
		st, err := stream.Simulate(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("simulate: %s", st)
		if st.Sent != count || st.Acked != count || st.Failed != 0 {
			t.Fatalf("stats %+v: want %d sent and acknowledged", st, count)
		}
		pays := readPayments(t, brokers, topics.Input)
		if len(pays) != count {
			t.Fatalf("%d records on the topic, want %d", len(pays), count)
		}
		ids := map[int64]bool{}
		lateSeen := 0
		for _, p := range pays {
			id, ok := txpipe.ParseID(p.raw.TransactionID)
			if !ok || ids[id] {
				t.Fatalf("transaction id %q repeated or bad", p.raw.TransactionID)
			}
			ids[id] = true
			if id < st.FirstID || id > st.LastID {
				t.Fatalf("id %d outside the run's %d..%d", id, st.FirstID, st.LastID)
			}
			switch lag := p.sent.Sub(p.origin); {
			case lag >= time.Hour-time.Second: // late: its event time lags by --late-by (plus jitter)
				lateSeen++
			case lag < -time.Second || lag > time.Hour/2:
				t.Fatalf("payment %s happened %s before it was sent", p.raw.TransactionID, lag)
			}
		}
		// The late share: exactly what the run counted, and within five
		// standard deviations of --late (a fixed seed: the count is fixed).
		sd := math.Sqrt(count * late * (1 - late))
		if int64(lateSeen) != st.Late || math.Abs(float64(lateSeen)-count*late) > 5*sd {
			t.Fatalf("%d late payments (the run counted %d), want about %v", lateSeen, st.Late, count*late)
		}

		results := t.TempDir()
		consume := func(want int64) stream.ConsumeStats {
			t.Helper()
			cs, err := stream.Consume(ctx, stream.ConsumeConfig{
				Brokers: brokers, Topics: topics, Group: topics.Input, Instance: "sim-1", ResultsDir: results, StatusEvery: -1,
				Done: func(s stream.ConsumeStats) bool { return s.Written >= want },
			})
			if err != nil {
				t.Fatal(err)
			}
			return cs
		}
		if cs := consume(count); cs.Judged != count || cs.Rejected != 0 {
			t.Fatalf("consume: %+v: want all %d judged", cs, count)
		}
		statuses := resultStatuses(t, filepath.Join(results, csvfile.StreamFile))
		if statuses[string(txpipe.StatusPending)] < count*9/10 {
			t.Fatalf("statuses %v: most payments should be accepted", statuses)
		}

		// A second run: new ids only, none a duplicate for the validator.
		cfg.Count, cfg.Seed = 300, 12
		st2, err := stream.Simulate(ctx, cfg)
		if err != nil || st2.Acked != 300 {
			t.Fatalf("second run: %+v, %v", st2, err)
		}
		if st2.Slot == st.Slot || st2.FirstID <= st.LastID {
			t.Fatalf("second run: slot %d ids %d..%d; first: slot %d ids %d..%d", st2.Slot, st2.FirstID, st2.LastID, st.Slot, st.FirstID, st.LastID)
		}
		if cs := consume(300); cs.Judged != 300 || cs.Rejected != 0 {
			t.Fatalf("consume after the second run: %+v", cs)
		}
		all := readPayments(t, brokers, topics.Input)
		seen := map[string]bool{}
		for _, p := range all {
			if seen[p.raw.TransactionID] {
				t.Fatalf("id %s in both runs", p.raw.TransactionID)
			}
			seen[p.raw.TransactionID] = true
		}
		if len(seen) != count+300 {
			t.Fatalf("%d distinct ids on the topic", len(seen))
		}
	})
}

func resultStatuses(t *testing.T, path string) map[string]int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := slices.Index(rows[0], "status")
	out := map[string]int{}
	for _, r := range rows[1:] {
		out[r[col]]++
	}
	return out
}

func TestSimulateConfigErrors(t *testing.T) {
	ok := stream.SimulateConfig{Cards: []stream.SimCard{{ID: 1, ZIP: "10001"}}, Rate: 10}
	for name, mod := range map[string]func(*stream.SimulateConfig){
		"no cards":  func(c *stream.SimulateConfig) { c.Cards = nil },
		"zero rate": func(c *stream.SimulateConfig) { c.Rate = 0 },
		"NaN rate":  func(c *stream.SimulateConfig) { c.Rate = math.NaN() },
		"late":      func(c *stream.SimulateConfig) { c.Late = 2 },
		"late-by":   func(c *stream.SimulateConfig) { c.LateBy = -time.Second },
		"count":     func(c *stream.SimulateConfig) { c.Count = -1 },
		"card id":   func(c *stream.SimulateConfig) { c.Cards = []stream.SimCard{{ID: 0}} },
	} {
		c := ok
		mod(&c)
		if _, err := stream.Simulate(context.Background(), c); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
