package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/txpipe/txpipe/config"
	"github.com/txpipe/txpipe/stream/embedded"
)

func newDev() *cobra.Command {
	var (
		port               int
		dataDir            string
		retBytes, segBytes string
		ret                = embedded.DefaultRetention()
		addr               string
		memLimitMiB        int64
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run an embedded Kafka-protocol broker on 127.0.0.1:9092 until Ctrl-C",
		Long: `dev runs a Kafka-protocol broker inside txpipe for machines without Kafka or
Docker. Other terminals reach it with the default KAFKA_BOOTSTRAP_SERVERS.
Topics, offsets and transactions persist in --data-dir (default dev-data);
--data-dir "" keeps everything in memory. After changing the transaction
timeout of consumers, restart it.

Retention keeps it bounded under an endless stream: every --retention-check
the input, validated, dead-letter and repartition topics lose what is older
than --retention or beyond --retention-bytes per partition (space comes
back a --segment-bytes segment at a time); the card-state and producer
positions topics keep every record a restore needs and lose only those
superseded; master data (compacted) is never aged out. 0 turns a bound
off. With a data directory the broker keeps in memory a small index of
every batch it holds, bounded by the retention; --memory-limit keeps the
garbage collector close to it.`,
		Example: `  txpipe dev
  txpipe dev --port 19092 --data-dir /tmp/kafka
  txpipe dev --retention 2h --retention-bytes 256MiB`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if ret.Bytes, err = parseSize(retBytes); err != nil {
				return fmt.Errorf("--retention-bytes: %w", err)
			}
			if ret.SegmentBytes, err = parseSize(segBytes); err != nil {
				return fmt.Errorf("--segment-bytes: %w", err)
			}
			if ret.Time < 0 || ret.Every < 0 {
				return fmt.Errorf("--retention and --retention-check must not be negative")
			}
			if ret.SegmentBytes != 0 && ret.SegmentBytes < 1<<20 {
				return fmt.Errorf("--segment-bytes %s: at least 1MiB", segBytes)
			}
			if dataDir == "" && !cmd.Flags().Changed("memory-limit") {
				memLimitMiB = 0 // the records themselves are in memory
			}
			if os.Getenv("GOMEMLIMIT") == "" && memLimitMiB > 0 {
				// A soft limit: the garbage collector works harder near it
				// instead of letting the heap double.
				debug.SetMemoryLimit(memLimitMiB << 20)
			}
			b, err := embedded.Start(port, dataDir, embedded.WithRetention(ret))
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
			slog.Info("embedded broker running; Ctrl-C stops it", "addrs", b.Addrs(), "data_dir", dataDir,
				"retention", ret.Time, "retention_bytes_per_partition", ret.Bytes, "segment_bytes", ret.SegmentBytes)
			fmt.Fprintf(cmd.OutOrStdout(), "dev: broker listening on %v\n", b.Addrs())
			<-cmd.Context().Done()
			slog.Info("stopping the embedded broker")
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&port, "port", 9092, "port on 127.0.0.1")
	f.StringVar(&dataDir, "data-dir", "dev-data", "where topics persist (empty: in memory)")
	f.DurationVar(&ret.Time, "retention", ret.Time, "records older than this are deleted (0: no bound by age)")
	f.StringVar(&retBytes, "retention-bytes", formatSize(ret.Bytes), "most bytes kept per partition (0: no bound by size)")
	f.StringVar(&segBytes, "segment-bytes", formatSize(ret.SegmentBytes), "size of a log segment: space is freed a segment at a time")
	f.DurationVar(&ret.Every, "retention-check", ret.Every, "how often retention is applied (0: never)")
	metricsFlag(cmd, &addr)
	f.Int64Var(&memLimitMiB, "memory-limit", 256, "soft memory limit in MiB for the garbage collector (0: none; GOMEMLIMIT wins; none by default with --data-dir \"\", where the records themselves are in memory)")
	return cmd
}

// parseSize reads a byte size: a number with an optional KiB, MiB, GiB
// (or KB, MB, GB: powers of 1000) suffix.
func parseSize(in string) (int64, error) {
	s := strings.TrimSpace(in)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size such as 32MiB", in)
	}
	return n * mult, nil
}

// formatSize writes a byte size as parseSize reads it.
func formatSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GiB"
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	}
	return strconv.FormatInt(n, 10)
}
