package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/batch/analytics"
	"github.com/txpipe/txpipe/config"
	"github.com/txpipe/txpipe/internal/metrics"
	"github.com/txpipe/txpipe/serving/api"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/serving/memory"
)

func newServe() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the query API: the last batch view merged with the stream after its cut-off",
		Long: `serve answers questions about cards, customers, merchants, rejected rows and
batch runs over HTTP (JSON; the OpenAPI document is at /api/openapi.json),
and the analytics views of the last batch run (GET /api/analytics lists
them; GET /api/analytics/{view}?from=&to=&limit= returns one, as CSV with
"Accept: text/csv"), and the stream's stolen-card alerts and latency
(GET /api/alerts?card=&type=&from=&to=, GET /api/latency?from=&to=).
Every answer is the last batch view up to its cut-off (per partition of the
validated topic) plus the stream's results after it: a transaction is
settled or pending, never both, never neither, also while a batch swaps its
views in.

With DB_HOST it reads MySQL. Without, it reads the batch views from the
results folder (a set of files taken only when it matches the batch's
manifest) and the stream's results and dead letters from the broker's
topics, which it follows, holding them in memory.

It listens on --addr (TXPIPE_API_ADDR, default 127.0.0.1:8080). Any address
other than loopback needs TXPIPE_API_TOKEN (environment only); every /api
request then carries "Authorization: Bearer <token>". /healthz, /readyz
and /metrics are served on the same address, without the token. Card
numbers are shown with their last four digits only.`,
		Example: `  txpipe serve
  curl -s localhost:8080/api/cards/46 | jq
  curl -s 'localhost:8080/api/cards/46/transactions?from=2025-04-01%2000:00:00&limit=20'
  curl -s localhost:8080/api/analytics/daily?from=2025-04-01 | jq
  curl -s -H 'Accept: text/csv' localhost:8080/api/analytics/regions
  curl -s 'localhost:8080/api/alerts?card=46&type=PAYMENT_ALERT' | jq
  curl -s localhost:8080/api/latency | jq
  TXPIPE_API_TOKEN=$(openssl rand -hex 32) txpipe serve --addr 0.0.0.0:8080
  DB_HOST=127.0.0.1 txpipe serve`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			srv, closeStore, err := openServe(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer closeStore()
			fmt.Fprintf(cmd.OutOrStdout(), "serve: listening on %s\n", srv.URL())
			<-cmd.Context().Done()
			slog.Info("serve: stopping")
			return srv.Close()
		},
	}
	config.CommandFlags(cmd.Flags(), "serve")
	return cmd
}

// openServe opens the store of the configured mode and starts the API on
// it; closeStore closes the store once the server is closed.
func openServe(ctx context.Context, cfg *config.Config) (*api.Server, func(), error) {
	var store txpipe.QueryStore
	var checks []metrics.Check
	var closeStore func()
	var views analytics.Source
	var events txpipe.EventStore
	if cfg.HasDB() {
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		db, err := openDB(octx, cfg)
		cancel()
		if err != nil {
			return nil, nil, err
		}
		db.SQL.SetMaxOpenConns(64)
		store, closeStore = db.Queries(), func() { db.Close() }
		views, events = analytics.MySQL(db.SQL), db.Queries()
		checks = append(checks, metrics.Check{Name: "database", Check: func(ctx context.Context) error {
			if err := db.SQL.PingContext(ctx); err != nil {
				return fmt.Errorf("database %s:%d/%s: %w", cfg.DBHost, cfg.DBPort, cfg.DBName, err)
			}
			return nil
		}})
	} else {
		opts, err := clientOpts(cfg)
		if err != nil {
			return nil, nil, err
		}
		m, err := memory.Open(ctx, memory.Config{
			ResultsDir: cfg.Results, DataDir: cfg.Data, Brokers: cfg.Brokers(), Topics: topicsOf(cfg),
			ClientOpts: append(opts, metrics.KafkaOpts("serve")...), Log: slog.Default(),
		})
		if err != nil {
			return nil, nil, err
		}
		store, closeStore = m, m.Close
		views, events = analytics.Files(cfg.Results), csvfile.Events{Dir: cfg.Results}
		checks = append(checks,
			metrics.Check{Name: "broker", Check: func(ctx context.Context) error {
				if err := m.Ping(ctx); err != nil {
					return fmt.Errorf("brokers %s: %w", cfg.KafkaBootstrap, err)
				}
				return nil
			}},
			metrics.Check{Name: "stream", Check: m.CaughtUp},
		)
	}
	srv := &api.Server{Addr: cfg.APIAddr, Token: cfg.APIToken, Store: store, Checks: checks, Log: slog.Default(), Analytics: views, Events: events}
	if err := srv.Open(); err != nil {
		closeStore()
		return nil, nil, err
	}
	return srv, closeStore, nil
}
