package main

import (
	"context"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/internal/kafkatest"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/stream"
)

// TestConsumerAdoptsBatchLimits runs the batch while a consumer runs: the
// limits the batch cuts reach the running validator through the cards
// topic and judge the next transactions.
func TestConsumerAdoptsBatchLimits(t *testing.T) {
	kafkatest.EachConcurrent(t, func(t *testing.T, b kafkatest.Broker) {
		data, err := filepath.Abs(filepath.Join("..", "..", "dataset"))
		if err != nil {
			t.Fatal(err)
		}
		cfg := demoConfig(t, data)
		topics := b.Topics(t, "adopt")
		cfg.KafkaBootstrap, cfg.KafkaTopic, cfg.KafkaGroupID = b.Bootstrap(), topics.Input, kafkatest.Name("adopt")
		cfg.KafkaCardsTopic, cfg.KafkaCustomersTopic, cfg.KafkaStolenTopic = topics.Cards, topics.Customers, topics.Stolen
		ctx := context.Background()
		m, err := csvfile.ReadMaster(data)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.PublishMaster(ctx, cfg.Brokers(), topics, m.Cards, m.Customers); err != nil {
			t.Fatal(err)
		}
		src, err := stream.CSVRows(filepath.Join(data, csvfile.TransactionsFile))
		if err != nil {
			t.Fatal(err)
		}
		ps, err := stream.Produce(ctx, stream.ProducerConfig{Brokers: cfg.Brokers(), Topics: topics}, src)
		if err != nil {
			t.Fatal(err)
		}
		var written, applied atomic.Int64
		cctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := stream.Consume(cctx, stream.ConsumeConfig{
				Brokers: cfg.Brokers(), Topics: topics, Group: cfg.KafkaGroupID, Instance: "adopt", ResultsDir: cfg.Results,
				Done: func(s stream.ConsumeStats) bool {
					written.Store(s.Written)
					applied.Store(s.MasterApplied)
					return false
				},
			})
			done <- err
		}()
		defer func() {
			stop()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}()
		waitFor := func(what string, cond func() bool) {
			t.Helper()
			for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("timed out waiting for %s", what)
				}
			}
		}
		streamRows := func() int {
			n := 0
			csvfile.ReadColumns(filepath.Join(cfg.Results, csvfile.StreamFile), []string{"status"}, func([]string) { n++ })
			return n
		}
		waitFor("the stream", func() bool { return written.Load() == ps.Records && streamRows() == int(ps.Records) })

		// The nightly batch, while the consumer runs: it republishes cut limits.
		sum, err := runBatch(ctx, cfg, false, true)
		if err != nil {
			t.Fatal(err)
		}
		if sum.CardsRelimited == 0 {
			t.Fatal("the dataset should have cards whose limit the batch cuts")
		}
		updated, err := csvfile.ReadCards(filepath.Join(cfg.Results, csvfile.CardsUpdatedFile), m.Customers, m.CardTypes)
		if err != nil {
			t.Fatal(err)
		}
		var card, old txpipe.Card
		for i, c := range updated {
			if c.CreditLimit < m.Cards[i].CreditLimit {
				card, old = c, m.Cards[i]
				break
			}
		}
		// Exactly half the new limit: declined as over half under the new
		// limit, below half of the old one.
		amount := card.CreditLimit / 2
		if 2*amount >= old.CreditLimit {
			t.Fatalf("test setup: %s is not below half of the old limit %s", amount, old.CreditLimit)
		}
		var home string
		for _, c := range m.Customers {
			if c.ID == card.CustomerID {
				home = c.Address
			}
		}
		// The running validator follows the cards topic: wait until it has
		// applied all of it.
		masterEnd, err := stream.MasterEnd(ctx, cfg.Brokers(), topics)
		if err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(time.Minute); applied.Load() < masterEnd; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the validator applied the master data up to %d of %d in a minute", applied.Load(), masterEnd)
			}
		}
		tx := txpipe.RawTransaction{TransactionID: "1000001", CardID: strconv.FormatInt(card.ID, 10), Merchant: "After Batch LLC",
			Timestamp: "2025-04-09 12:00:00", Amount: amount.String(), Location: home, Type: "purchase"}
		if _, err := stream.Produce(ctx, stream.ProducerConfig{Brokers: cfg.Brokers(), Topics: topics}, stream.RowsOf("test", func(yield func(stream.Row) error) error {
			return yield(stream.Row{Raw: tx, Seq: 1000001, Source: "test", FieldsOK: true})
		})); err != nil {
			t.Fatal(err)
		}
		waitFor("the new transaction", func() bool { return written.Load() == ps.Records+1 && streamRows() == int(ps.Records)+1 })
		var got txpipe.Result
		if err := csvfile.ReadResults(filepath.Join(cfg.Results, csvfile.StreamFile), func(r txpipe.Result, _ int) error {
			if r.ID == 1000001 {
				got = r
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if got.Status != txpipe.StatusDeclined || got.DeclineReason != txpipe.DeclineOverHalf {
			t.Fatalf("card %d (limit %s → %s), amount %s: %s %q; want declined as over half the new limit", card.ID, old.CreditLimit, card.CreditLimit, amount, got.Status, got.DeclineReason)
		}
	})
}
