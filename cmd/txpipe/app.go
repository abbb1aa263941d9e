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
	mysqlstore "github.com/txpipe/txpipe/serving/mysql"
	"github.com/txpipe/txpipe/stream"
)

// loadConfig resolves the settings of a command.
func loadConfig(cmd *cobra.Command) (*config.Config, error) {
	return config.Load(cmd.Flags())
}

// topicsOf names the speed layer's topics: those derived from KAFKA_TOPIC
// and the master-data topics of the settings.
func topicsOf(cfg *config.Config) stream.Topics {
	t := stream.TopicsFor(cfg.KafkaTopic)
	t.Cards, t.Customers = cfg.KafkaCardsTopic, cfg.KafkaCustomersTopic
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
	db, err := mysqlstore.Open(ctx, cfg.MySQL(), slog.Default())
	if err != nil {
		return nil, fmt.Errorf("database %s:%d/%s: %w", cfg.DBHost, cfg.DBPort, cfg.DBName, err)
	}
	return db, nil
}

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
// retries its writes until the database answers.
type lazyStore struct {
	cfg *mysql.Config
	mu  sync.Mutex
	db  *mysqlstore.DB
}

func (l *lazyStore) get(ctx context.Context) (*mysqlstore.DB, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.db != nil {
		return l.db, nil
	}
	octx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	db, err := mysqlstore.Open(octx, l.cfg, slog.Default())
	if err != nil {
		if octx.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("%w: %s: %w", errDatabaseDown, l.cfg.Addr, err)
		}
		return nil, err
	}
	l.db = db
	return db, nil
}

func (l *lazyStore) WriteStream(ctx context.Context, consumer string, results []txpipe.Result, rejected []txpipe.Rejected, offsets []txpipe.Offset) error {
	db, err := l.get(ctx)
	if err != nil {
		return err
	}
	return db.WriteStream(ctx, consumer, results, rejected, offsets)
}

func (l *lazyStore) Offsets(ctx context.Context, consumer, topic string) (map[int32]txpipe.Offset, error) {
	db, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return db.Offsets(ctx, consumer, topic)
}

func (l *lazyStore) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.db != nil {
		l.db.Close()
	}
}

// transient says which store errors the sink retries.
func transient(err error) bool {
	return errors.Is(err, errDatabaseDown) || mysqlstore.IsTransient(err)
}
