package main

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/txpipe/txpipe/config"
	"github.com/txpipe/txpipe/stream/embedded"
)

func newDev() *cobra.Command {
	var (
		port    int
		dataDir string
		addr    string
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run an embedded Kafka-protocol broker on 127.0.0.1:9092 until Ctrl-C",
		Long: `dev runs a Kafka-protocol broker inside txpipe for machines without Kafka or
Docker. Other terminals reach it with the default KAFKA_BOOTSTRAP_SERVERS.
Topics, offsets and transactions persist in --data-dir (default dev-data);
--data-dir "" keeps everything in memory. After changing the transaction
timeout of consumers, restart it.`,
		Example: `  txpipe dev
  txpipe dev --port 19092 --data-dir /tmp/kafka`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := embedded.Start(port, dataDir)
			if err != nil {
				return err
			}
			defer b.Close()
			self := &config.Config{KafkaBootstrap: strings.Join(b.Addrs(), ",")}
			obs, _, err := observe(addr, self, true, false)
			if err != nil {
				return err
			}
			defer obs.close()
			slog.Info("embedded broker running; Ctrl-C stops it", "addrs", b.Addrs(), "data_dir", dataDir)
			fmt.Fprintf(cmd.OutOrStdout(), "dev: broker listening on %v\n", b.Addrs())
			<-cmd.Context().Done()
			slog.Info("stopping the embedded broker")
			return nil
		},
	}
	cmd.Flags().IntVar(&port, "port", 9092, "port on 127.0.0.1")
	cmd.Flags().StringVar(&dataDir, "data-dir", "dev-data", "where topics persist (empty: in memory)")
	metricsFlag(cmd, &addr)
	return cmd
}
