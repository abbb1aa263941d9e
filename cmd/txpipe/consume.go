package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/internal/metrics"
	"github.com/txpipe/txpipe/serving/mysqlstore"
	"github.com/txpipe/txpipe/stream"
)

func newConsume() *cobra.Command {
	var (
		untilIdle       time.Duration
		instance        string
		maxBatch        int
		checkpointEvery int
		memLimitMiB     int64
		dedupHorizon    time.Duration
		alerts, staging bool
		stopTimeout     time.Duration
		metricsAddr     string
	)
	cmd := &cobra.Command{
		Use:   "consume",
		Short: "Run the stream layer: validate transactions exactly once and write the results",
		Long: `consume joins the consumer group KAFKA_GROUP_ID on KAFKA_TOPIC and judges every
transaction with the shared rules. Results, the cards' pending balances and
the consumed offsets commit in one Kafka transaction. In the same process a
sink writes the results exactly once to results/stream_transactions.csv and
results/rejected_transactions.csv and, when DB_HOST is set, to MySQL (the
offsets are stored with the rows). Start several consume processes to split
the partitions; kill one at any moment and restart it: nothing is lost or
counted twice. It runs until SIGINT/SIGTERM, or with --until-idle (or
CONSUMER_TIMEOUT_MS) until no record came for that long; either way it
commits what is in flight (a database that does not answer is given up
after --stop-timeout: its rows are written on the next start) and rewrites
the CSV files in event order.

A transaction id is a payment's idempotency key: a repeat on the same card
within --dedup-horizon of event time is rejected as duplicate_transaction_id.
Records on the wrong partition (a producer that keys them otherwise, or not
at all) first move to their card's partition.

While it runs, a status line every 10 s on stderr says what was judged,
rejected and written, the rate, and how far behind the validators and the
sink are. results/stream_transactions.csv and rejected_transactions.csv
are rewritten in event order whenever the stream rests for a second, and at
the end: while records keep coming they lag behind (the MySQL tables do
not; txpipe serve answers from the live stream).`,
		Example: `  txpipe consume
  txpipe consume --until-idle 10s
  DB_HOST=127.0.0.1 txpipe consume`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if os.Getenv("GOMEMLIMIT") == "" && memLimitMiB > 0 {
				// A soft limit: the garbage collector works harder near it
				// instead of letting the heap double.
				debug.SetMemoryLimit(memLimitMiB << 20)
			}
			if untilIdle == 0 {
				untilIdle = cfg.ConsumerTimeout
			}
			if err := kafkaReady(ctx, cfg); err != nil {
				return err
			}
			if instance == "" {
				id, release, err := instanceSlot(cfg.KafkaGroupID)
				if err != nil {
					return err
				}
				defer release()
				instance = id
			}
			opts, err := clientOpts(cfg)
			if err != nil {
				return err
			}
			cc := stream.ConsumeConfig{
				Brokers: cfg.Brokers(), Topics: topicsOf(cfg), Group: cfg.KafkaGroupID, ClientOpts: append(opts, metrics.KafkaOpts("consume")...),
				Instance: instance, ResultsDir: cfg.Results, UntilIdle: untilIdle, MaxBatch: maxBatch,
				CheckpointEvery: checkpointEvery, DedupHorizon: dedupHorizon, StopTimeout: stopTimeout,
				Alerts: alerts, Staging: staging,
			}
			obs, cl, err := observe(metricsAddr, cfg, true, true)
			if err != nil {
				return err
			}
			defer obs.close()
			obs.pollLag(cl, cfg.KafkaGroupID, cfg.KafkaTopic)
			if cfg.HasDB() {
				// Connected on first use: judging never waits for MySQL.
				store := &lazyStore{cfg: cfg.MySQL()}
				defer store.Close()
				cc.Store, cc.Transient = store, transient
				// A database error that waiting cannot cure (wrong
				// password, no privileges, bad DB_NAME) stops consume at
				// once; a database that is down only delays the sink.
				var cancel context.CancelCauseFunc
				ctx, cancel = context.WithCancelCause(ctx)
				checked := make(chan struct{})
				defer func() { cancel(nil); <-checked }()
				go func() {
					defer close(checked)
					if _, err := store.get(ctx); mysqlstore.IsPermanent(err) {
						cancel(err)
					}
				}()
			}
			slog.Info("consuming", "topic", cfg.KafkaTopic, "group", cfg.KafkaGroupID, "instance", instance, "database", cfg.HasDB())
			st, err := stream.Consume(ctx, cc)
			fmt.Fprintf(cmd.OutOrStdout(), "consume: %d judged, %d rejected, %d written in %.2f s\n", st.Judged, st.Rejected, st.Written, st.Elapsed.Seconds())
			if cause := context.Cause(ctx); mysqlstore.IsPermanent(cause) {
				return cause
			}
			return err
		},
	}
	f := cmd.Flags()
	f.DurationVar(&untilIdle, "until-idle", 0, "exit after this long without records (default CONSUMER_TIMEOUT_MS; 0: run until stopped)")
	f.StringVar(&instance, "instance", "", "stable member id of this process (default: host name and a free slot)")
	f.IntVar(&maxBatch, "batch", stream.DefaultMaxBatch, "records per Kafka transaction")
	f.IntVar(&checkpointEvery, "checkpoint-every", stream.DefaultCheckpointEvery, "results per partition between two checkpoints of its card states (a restart replays at most about this many)")
	f.DurationVar(&dedupHorizon, "dedup-horizon", txpipe.DefaultDedupHorizon, "how long, in event time, a card remembers the transaction ids it judged (memory grows with the ids judged in this span)")
	f.BoolVar(&alerts, "alerts", true, "alert on payments on stolen cards (the alerts topic, table and results/alerts.csv)")
	f.BoolVar(&staging, "staging", true, "write every payment and alert to the event staging view (event_staging, results/event_staging.csv)")
	f.DurationVar(&stopTimeout, "stop-timeout", stream.DefaultStopTimeout, "how long a stop waits for writes in flight")
	f.Int64Var(&memLimitMiB, "memory-limit", 192, "soft memory limit in MiB for the garbage collector (0: none; GOMEMLIMIT wins)")
	metricsFlag(cmd, &metricsAddr)
	return cmd
}
