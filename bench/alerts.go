package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/stream"
)

// StolenShare is the share of the cards the alerts stage reports stolen.
const StolenShare = 10 // per cent

// alertRounds is how many times the alerts stage runs the validator
// without and with the alerts operator, alternated.
const alertRounds = 2

// LiveRate is the pace of the alerts stage's event times: payments as the
// simulator publishes them (txpipe simulate --rate 5000).
const LiveRate = 5000

// alertsStage measures what stolen-card alerting costs the validator: the
// same input judged with every tenth card reported stolen (from before
// any payment, on a stolen-cards topic of the run's own), without the
// alerts operator and with it, alternated; the fastest run of each. The
// stage's raw side is the validator without alerts, so its ratio is the
// share of the throughput alerting keeps.
//
// The payments carry event times (event_date_origin) LiveRate a second
// apart, as a live stream from the simulator would: alerting is about
// now. (Replayed at full speed, the dataset's month of event time would
// pass in seconds, and every 10 s of it brings a summary of each stolen
// card seen in the hour before: hundreds per payment.)
func (b *bencher) alertsStage(ctx context.Context, rep *Report) error {
	live, err := b.liveEncoded()
	if err != nil {
		return err
	}
	stolenTopic := b.topic("stolen")
	b.topics = append(b.topics, stolenTopic)
	var stolen []txpipe.StolenCard
	for i, c := range b.master.Cards {
		if i%(100/StolenShare) == 0 {
			stolen = append(stolen, txpipe.StolenCard{CardID: c.ID, ReportedAt: time.Unix(0, 0).UTC()})
		}
	}
	var best [2]time.Duration // without, with
	var alerts int64
	for round := range alertRounds {
		for _, on := range []bool{false, true} {
			profile := ""
			if on && round == 0 {
				profile = "validate-alerts"
			}
			took, n, err := b.validateOnce(ctx, rep, fmt.Sprintf("alerts-%v-%d", on, round), profile, live, stolenTopic, stolen, on)
			if err != nil {
				return err
			}
			i := 0
			if on {
				i, alerts = 1, n
			}
			if best[i] == 0 || took < best[i] {
				best[i] = took
			}
			b.log.Info("bench: alerts, validator run", "alerts", on, "round", round+1, "seconds", took.Seconds(), "alert_records", n)
		}
	}
	rep.Alerts.finish(b.rows, best[0], b.rows, best[1])
	rep.AlertRecords, rep.StolenCards = alerts, len(stolen)
	b.logStage(rep.Alerts)
	return nil
}

// validateOnce judges a fresh copy of the input with the stolen cards
// published, with or without the alerts operator, and returns how long it
// took and how many records (and markers) the alerts topic holds; with a
// profile name (and Options.Profile) it writes a CPU profile of the run.
func (b *bencher) validateOnce(ctx context.Context, rep *Report, name, profile string, input *encoded, stolenTopic string, stolen []txpipe.StolenCard, alerts bool) (time.Duration, int64, error) {
	topics, err := b.ensureInput(ctx, b.topic(name))
	if err != nil {
		return 0, 0, err
	}
	if _, err := b.produceEncoded(ctx, topics.Input, input); err != nil {
		return 0, 0, err
	}
	topics.Stolen = stolenTopic
	b.topics = append(b.topics, topics.Alerts)
	if err := stream.PublishMaster(ctx, b.brokers, topics, b.master.Cards, b.master.Customers, b.opts...); err != nil {
		return 0, 0, err
	}
	if err := stream.PublishStolen(ctx, b.brokers, topics, stolen, b.opts...); err != nil {
		return 0, 0, err
	}
	if err := b.ensureTopic(ctx, topics.Alerts); err != nil {
		return 0, 0, err
	}
	cfg := stream.ValidatorConfig{
		Brokers: b.brokers, Topics: topics, Group: b.topic(name), Instance: "bench",
		MaxBatch: eosBatch, Log: b.log, ClientOpts: b.opts,
	}
	if alerts {
		cfg.Operators = []stream.Operator{stream.NewAlerts(stream.AlertsConfig{Topic: topics.Alerts})}
	}
	v, err := stream.NewValidator(ctx, cfg)
	if err != nil {
		return 0, 0, err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopProfile := func() {}
	if profile != "" {
		if stopProfile, err = b.startProfile(profile, rep); err != nil {
			v.Close()
			return 0, 0, err
		}
	}
	begin := time.Now()
	run := start(func() error { return v.Run(rctx) })
	err = waitFor(ctx, run, func() bool { s := v.Stats(); return s.Processed+s.Rejected >= b.rows })
	took := time.Since(begin)
	stopProfile()
	cancel()
	if rerr := run.wait(); err == nil && rerr != nil {
		err = rerr
	}
	st := v.Stats()
	v.Close()
	if err != nil {
		return 0, 0, fmt.Errorf("validator (alerts %v): %w", alerts, err)
	}
	if st.Processed+st.Rejected != b.rows {
		return 0, 0, fmt.Errorf("the validator (alerts %v) decided %d records, want %d", alerts, st.Processed+st.Rejected, b.rows)
	}
	var n int64
	if cl, err := b.client(); err == nil {
		if ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topics.Alerts); err == nil {
			ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
		}
		cl.Close()
	}
	b.deleteTopics(ctx, topics.Input, topics.Validated, topics.DLQ, topics.State, topics.Alerts)
	return took, n, nil
}

// liveEncoded encodes the transactions again with event times LiveRate a
// second apart (spread over a minute at least, so that a small run closes
// windows too), from a fixed start, in input order.
func (b *bencher) liveEncoded() (*encoded, error) {
	src, err := stream.CSVRows(filepath.Join(b.data, csvfile.TransactionsFile))
	if err != nil {
		return nil, err
	}
	start := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	out := &encoded{keys: b.enc.keys, headers: b.enc.headers}
	step := max(time.Second/LiveRate, time.Minute/time.Duration(max(b.rows, 1)))
	i := 0
	err = src.Rows("", func(r stream.Row) error {
		r.Raw.Origin = start.Add(time.Duration(i) * step).Format(txpipe.OriginLayout)
		out.values = append(out.values, stream.EncodeTransaction(nil, r.Raw))
		i++
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out.values) != len(b.enc.values) {
		return nil, fmt.Errorf("the transactions file has %d rows, %d were encoded", len(out.values), len(b.enc.values))
	}
	return out, nil
}
