package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe/config"
	"github.com/txpipe/txpipe/internal/metrics"
)

// metricsFlag adds --metrics-addr to a long-running command.
func metricsFlag(cmd *cobra.Command, addr *string) {
	cmd.Flags().StringVar(addr, "metrics-addr", "", "serve /healthz, /readyz and /metrics on this address (e.g. 127.0.0.1:9100; empty: off)")
}

// observer is what a command exposes on --metrics-addr: the server and the
// clients of its readiness checks, closed together.
type observer struct {
	srv     *metrics.Server
	closers []func()
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// goroutine runs fn until close, which waits for it.
func (o *observer) goroutine(fn func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	prev := o.cancel
	o.cancel = func() {
		cancel()
		if prev != nil {
			prev()
		}
	}
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		fn(ctx)
	}()
}

func (o *observer) close() {
	if o.cancel != nil {
		o.cancel()
	}
	o.wg.Wait()
	if o.srv != nil {
		if err := o.srv.Close(); err != nil {
			slog.Warn("metrics server", "err", err)
		}
	}
	for _, c := range o.closers {
		c()
	}
}

// brokerCheck checks that a broker of the configured cluster answers,
// through a client of its own (created now, connected on first use).
func (o *observer) brokerCheck(cfg *config.Config) (metrics.Check, *kgo.Client, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers()...))
	if err != nil {
		return metrics.Check{}, nil, fmt.Errorf("kafka client for the readiness check: %w", err)
	}
	o.closers = append(o.closers, cl.Close)
	return metrics.Check{Name: "broker", Check: func(ctx context.Context) error {
		if err := cl.Ping(ctx); err != nil {
			return fmt.Errorf("brokers %s: %w", cfg.KafkaBootstrap, err)
		}
		return nil
	}}, cl, nil
}

// databaseCheck checks that the configured database answers, through a
// pool of its own (one connection).
func (o *observer) databaseCheck(cfg *config.Config) (metrics.Check, error) {
	m := cfg.MySQL()
	m.Timeout = metrics.CheckTimeout
	db, err := sql.Open("mysql", m.FormatDSN())
	if err != nil {
		return metrics.Check{}, fmt.Errorf("database for the readiness check: %w", err)
	}
	db.SetMaxOpenConns(1)
	o.closers = append(o.closers, func() { db.Close() })
	return metrics.Check{Name: "database", Check: func(ctx context.Context) error {
		if err := db.PingContext(ctx); err != nil {
			return fmt.Errorf("database %s/%s: %w", m.Addr, m.DBName, err)
		}
		return nil
	}}, nil
}

// observe starts the observer of a command that uses the broker, and the
// database when one is configured.
func observe(addr string, cfg *config.Config, broker, database bool) (*observer, *kgo.Client, error) {
	if addr == "" {
		return &observer{}, nil, nil
	}
	o := &observer{}
	var checks []metrics.Check
	var cl *kgo.Client
	if broker {
		c, client, err := o.brokerCheck(cfg)
		if err != nil {
			o.close()
			return nil, nil, err
		}
		checks, cl = append(checks, c), client
	}
	if database && cfg.HasDB() {
		c, err := o.databaseCheck(cfg)
		if err != nil {
			o.close()
			return nil, nil, err
		}
		checks = append(checks, c)
	}
	o.srv = &metrics.Server{Addr: addr, Checks: checks, Log: slog.Default()}
	if err := o.srv.Open(); err != nil {
		o.srv = nil
		o.close()
		return nil, nil, err
	}
	return o, cl, nil
}

// pollLag keeps txpipe_consumer_lag_records of group on topic up to date
// (every 5 s) until the observer closes.
func (o *observer) pollLag(cl *kgo.Client, group, topic string) {
	if cl == nil {
		return
	}
	adm := kadm.NewClient(cl)
	o.goroutine(func(ctx context.Context) { metrics.PollLag(ctx, adm, group, topic, 5*time.Second, slog.Default()) })
}
