package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kslog"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/config"
	"github.com/txpipe/txpipe/internal/metrics"
	"github.com/txpipe/txpipe/internal/retry"
	"github.com/txpipe/txpipe/serving/mysqlstore"
	"github.com/txpipe/txpipe/stream"
)

// loadConfig resolves the settings of a command.
func loadConfig(cmd *cobra.Command) (*config.Config, error) {
	return config.Load(cmd.Flags())
}

// kafkaReady checks that the configured brokers answer, within
// KAFKA_CONNECT_TIMEOUT: a wrong address fails at once with a message
// naming it, not after a wait without end.
func kafkaReady(ctx context.Context, cfg *config.Config) error {
	bound := cfg.KafkaConnectTimeout
	if bound <= 0 {
		bound = 30 * time.Second
	}
	return stream.Ping(ctx, cfg.Brokers(), bound)
}

// topicsOf names the speed layer's topics: those derived from KAFKA_TOPIC
// and the master-data topics of the settings.
func topicsOf(cfg *config.Config) stream.Topics {
	t := stream.TopicsFor(cfg.KafkaTopic)
	t.Cards, t.Customers, t.Stolen = cfg.KafkaCardsTopic, cfg.KafkaCustomersTopic, cfg.KafkaStolenTopic
	return t
}

// kafkaLevel is the level of franz-go's own logs: warn, debug with -v.
var kafkaLevel = func() *slog.LevelVar {
	l := new(slog.LevelVar)
	l.Set(slog.LevelWarn)
	return l
}()

// clientOpts are the options of every Kafka client a command creates: the
// producers' compression (KAFKA_COMPRESSION) and franz-go's logs through
// log/slog.
func clientOpts(cfg *config.Config) ([]kgo.Opt, error) {
	compression, err := config.ProducerCompression(cfg.KafkaCompression)
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: kafkaLevel})).With("component", "kafka-client")
	return []kgo.Opt{compression, kgo.WithLogger(kslog.New(log))}, nil
}

// openDB opens the configured database (migrated), or returns nil when
// none is configured.
func openDB(ctx context.Context, cfg *config.Config) (*mysqlstore.DB, error) {
	if !cfg.HasDB() {
		return nil, nil
	}
	db, err := mysqlstore.Open(ctx, cfg.MySQL(), slog.Default(), mysqlstore.WithConnectTimeout(cfg.DBConnectTimeout))
	if errors.Is(err, retry.ErrBound) {
		return nil, fmt.Errorf("the database did not answer within %s (DB_CONNECT_TIMEOUT, --db-connect-timeout): %w", cfg.DBConnectTimeout, err)
	}
	return db, err // the error names the address and the database
}

// brokerTimeout bounds a command's one-off wait on the broker (publishing
// master data).
const brokerTimeout = time.Minute

// instanceSlot picks this process's stable instance id: the host name and
// the first free slot number among the consumers of this group on this
// host. A consumer restarted after a crash gets its slot (and so its
// partitions and transactional id) back.
func instanceSlot(group string) (string, func(), error) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	dir := filepath.Join(os.TempDir(), "txpipe-instances")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, fmt.Errorf("instance lock directory: %w", err)
	}
	for slot := 0; slot < 1024; slot++ {
		path := filepath.Join(dir, group+"-"+strconv.Itoa(slot)+".lock")
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return "", nil, fmt.Errorf("instance lock: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				continue
			}
			return "", nil, fmt.Errorf("instance lock %s: %w", path, err)
		}
		return host + "-" + strconv.Itoa(slot), func() { f.Close() }, nil
	}
	return "", nil, errors.New("no free consumer slot on this host")
}

// errDatabaseDown says the database could not be reached (yet).
var errDatabaseDown = errors.New("database unreachable")

// lazyStore connects to the database on first use, so that a database that
// is down when consume starts does not hold up the validator: the sink
// retries its writes until the database answers. Each connection attempt
// is bounded (the Bound of mysqlstore.Open's retry policy); an error waiting
// cannot cure (wrong password, no privileges, bad database name) comes
// back marked retry.Permanent, and transient says not to retry it.
type lazyStore struct {
	cfg  *mysql.Config
	wait time.Duration // bound of one connection attempt (default 5 s)
	mu   sync.Mutex
	db   *mysqlstore.DB
}

func (l *lazyStore) get(ctx context.Context) (*mysqlstore.DB, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.db != nil {
		return l.db, nil
	}
	wait := l.wait
	if wait <= 0 {
		wait = 5 * time.Second
	}
	db, err := mysqlstore.Open(ctx, l.cfg, slog.Default(), mysqlstore.WithConnectTimeout(wait))
	switch {
	case err == nil:
		l.db = db
		return db, nil
	case mysqlstore.IsPermanent(err):
		return nil, retry.Permanent(err)
	case ctx.Err() == nil:
		return nil, fmt.Errorf("%w: %w", errDatabaseDown, err)
	}
	return nil, err
}

func (l *lazyStore) WriteViews(ctx context.Context, consumer string, b *txpipe.ViewBatch) error {
	db, err := l.get(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := db.WriteViews(ctx, consumer, b); err != nil {
		return err
	}
	metrics.ObserveMySQLWrite(metrics.OperationStream, time.Since(start)) // the sink counts the rows of every output
	return nil
}

func (l *lazyStore) Offsets(ctx context.Context, consumer, topic string) (map[int32]txpipe.Offset, error) {
	db, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return db.Offsets(ctx, consumer, topic)
}

func (l *lazyStore) ResetPartition(ctx context.Context, consumer, topic string, partition int32, streamRows bool) error {
	db, err := l.get(ctx)
	if err != nil {
		return err
	}
	return db.ResetPartition(ctx, consumer, topic, partition, streamRows)
}

func (l *lazyStore) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.db != nil {
		l.db.Close()
	}
}

// transient says which store errors the sink retries: never a permanent
// one.
func transient(err error) bool {
	return !mysqlstore.IsPermanent(err) && (errors.Is(err, errDatabaseDown) || mysqlstore.IsTransient(err))
}
