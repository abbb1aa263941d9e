// Package embedded runs a Kafka-protocol broker inside the txpipe process,
// for machines without Kafka: franz-go's kfake, on loopback, with an
// optional data directory so topics survive a restart, and retention so
// that an endless stream keeps it bounded (see Retention).
package embedded

import (
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe/stream"
)

// Broker is a running embedded broker.
type Broker struct {
	c     *kfake.Cluster
	ret   Retention
	log   *slog.Logger
	admin *kgo.Client // the janitor's

	retainMu sync.Mutex
	logs     map[string]map[int32]*keyLog // trimmed topics: what was read of them

	stopJanitor chan struct{}
	janitorDone chan struct{}
	closeOnce   sync.Once
}

type options struct {
	ret Retention
	log *slog.Logger
}

// Option tunes Start.
type Option func(*options)

// WithRetention sets the broker's retention (DefaultRetention otherwise).
func WithRetention(r Retention) Option { return func(o *options) { o.ret = r } }

// WithLogger sets where the broker logs what retention does.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// Start listens on 127.0.0.1:port (0 picks a free port). With dataDir the
// broker persists its topics, offsets and transactions there; without, it
// keeps everything in memory. Retention (DefaultRetention unless an
// option says otherwise) keeps its topics bounded.
func Start(port int, dataDir string, opts ...Option) (*Broker, error) {
	o := options{ret: DefaultRetention(), log: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	// Nothing is deleted by a broker default: the janitor gives the
	// topics that may lose old records their retention (see Retention).
	bcfg := map[string]string{"log.retention.ms": "-1", "log.retention.bytes": "-1"}
	if o.ret.SegmentBytes > 0 {
		bcfg["log.segment.bytes"] = strconv.FormatInt(o.ret.SegmentBytes, 10)
	}
	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.ClusterID(stream.EmbeddedClusterID),
		kfake.BrokerConfigs(bcfg),
	}
	if dataDir != "" {
		kopts = append(kopts, kfake.DataDir(dataDir))
	}
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded broker on 127.0.0.1:%d: %w", port, err)
	}
	b := &Broker{c: c, ret: o.ret, log: o.log, logs: map[string]map[int32]*keyLog{}}
	b.admin, err = kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("embedded broker: kafka client: %w", err)
	}
	if o.ret.Every > 0 && (o.ret.Time > 0 || o.ret.Bytes > 0) {
		b.stopJanitor, b.janitorDone = make(chan struct{}), make(chan struct{})
		go b.janitor(b.stopJanitor)
	}
	return b, nil
}

// Addrs are the broker's listen addresses.
func (b *Broker) Addrs() []string { return b.c.ListenAddrs() }

// Retention is the broker's retention.
func (b *Broker) Retention() Retention { return b.ret }

// Close stops the janitor (a pass in flight is cut short: within
// closeBound) and the broker, flushing its data directory.
func (b *Broker) Close() {
	b.closeOnce.Do(func() {
		if b.stopJanitor != nil {
			close(b.stopJanitor)
			select {
			case <-b.janitorDone:
			case <-time.After(closeBound):
				b.log.Warn("embedded broker: the retention pass did not stop in time; closing anyway", "bound", closeBound)
			}
		}
		b.admin.Close()
		b.c.Close()
	})
}

// closeBound bounds how long Close waits for a retention pass to stop.
const closeBound = 10 * time.Second
