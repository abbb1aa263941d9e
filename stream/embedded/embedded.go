// Package embedded runs a Kafka-protocol broker inside the txpipe process,
// for machines without Kafka: franz-go's kfake, on loopback, with an
// optional data directory so topics survive a restart.
package embedded

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/txpipe/txpipe/stream"
)

// Broker is a running embedded broker.
type Broker struct {
	c *kfake.Cluster
}

// Start listens on 127.0.0.1:port (0 picks a free port). With dataDir the
// broker persists its topics, offsets and transactions there; without, it
// keeps everything in memory.
func Start(port int, dataDir string) (*Broker, error) {
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.ClusterID(stream.EmbeddedClusterID),
	}
	if dataDir != "" {
		opts = append(opts, kfake.DataDir(dataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded broker on 127.0.0.1:%d: %w", port, err)
	}
	return &Broker{c: c}, nil
}

// Addrs are the broker's listen addresses.
func (b *Broker) Addrs() []string { return b.c.ListenAddrs() }

// Close stops the broker, flushing its data directory.
func (b *Broker) Close() { b.c.Close() }
