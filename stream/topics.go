// Package stream is the speed layer: the producer that publishes
// transactions, the validator that judges them exactly once inside Kafka,
// and the sinks that write its results exactly once to MySQL and CSV.
package stream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe/internal/retry"
)

// EmbeddedClusterID is the cluster id of txpipe's embedded broker. On it the
// card-state topic is not compacted (the embedded broker may compact past
// an open transaction, which real Kafka never does).
const EmbeddedClusterID = "txpipe-embedded"

// Topics names every topic of the speed layer.
type Topics struct {
	Input     string // transactions, keyed by card id
	Validated string // judged transactions, same partition as their input
	DLQ       string // rows that could not be judged
	// Repartition holds records moved to their card's partition (a foreign
	// producer keyed them otherwise, or not at all).
	Repartition string
	// Alerts holds the stolen-card alerts, keyed by card.
	Alerts    string
	State     string // checkpoints of the card states, same partition as the card's input (compacted)
	Cards     string // master data: cards with their limits (compacted)
	Customers string // master data: customers with their addresses (compacted)
	Stolen    string // master data: stolen cards with when they were reported (compacted)
}

// TopicsFor derives every topic name from the input topic.
func TopicsFor(input string) Topics {
	return Topics{
		Input:       input,
		Validated:   input + ".validated",
		DLQ:         input + ".dlq",
		Repartition: input + ".repartition",
		Alerts:      input + ".alerts",
		State:       input + ".card-state",
		Cards:       "txpipe.cards",
		Customers:   "txpipe.customers",
		Stolen:      "txpipe.stolen-cards",
	}
}

// fetchMaxBytes bounds what one fetch of the validator or the sink
// brings in (the client buffers a fetch per broker): memory follows the
// batch size, not how far behind the consumer is.
const fetchMaxBytes = 8 << 20

// DefaultPartitions is the partition count of an input topic that txpipe
// creates itself.
const DefaultPartitions = 8

// EnsureMasterTopics creates the master-data topics when missing.
func EnsureMasterTopics(ctx context.Context, cl *kgo.Client, t Topics) error {
	adm := kadm.NewClient(cl)
	compact := map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}
	for _, name := range []string{t.Cards, t.Customers, t.Stolen} {
		if err := createTopic(ctx, adm, name, 1, compact); err != nil {
			return err
		}
	}
	return nil
}

// EnsureTopics creates the input topic (with partitions when it is missing)
// and the topics derived from it, with the input's partition count.
func EnsureTopics(ctx context.Context, cl *kgo.Client, t Topics, partitions int32) (int32, error) {
	if partitions <= 0 {
		partitions = DefaultPartitions
	}
	adm := kadm.NewClient(cl)
	if err := createTopic(ctx, adm, t.Input, partitions, nil); err != nil {
		return 0, err
	}
	n, err := partitionCount(ctx, adm, t.Input)
	if err != nil {
		return 0, err
	}
	stateCfg := map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}
	if embedded, err := isEmbedded(ctx, adm); err != nil {
		return 0, err
	} else if embedded {
		stateCfg = map[string]*string{"cleanup.policy": kadm.StringPtr("delete"), "retention.ms": kadm.StringPtr("-1")}
	}
	for _, tc := range []struct {
		name string
		cfg  map[string]*string
	}{{t.Validated, nil}, {t.DLQ, nil}, {t.Repartition, nil}, {t.State, stateCfg}} {
		if err := createTopic(ctx, adm, tc.name, n, tc.cfg); err != nil {
			return 0, err
		}
		if m, err := partitionCount(ctx, adm, tc.name); err != nil {
			return 0, err
		} else if m != n {
			return 0, fmt.Errorf("topic %s has %d partitions, its input %s has %d: they must match", tc.name, m, t.Input, n)
		}
	}
	if err := EnsureMasterTopics(ctx, cl, t); err != nil {
		return 0, err
	}
	return n, nil
}

func isEmbedded(ctx context.Context, adm *kadm.Client) (bool, error) {
	m, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return false, fmt.Errorf("describe cluster: %w", err)
	}
	return m.Cluster == EmbeddedClusterID, nil
}

// topicWait bounds how long creating or describing a topic is retried (a
// broker still starting, a topic still being created).
const topicWait = 15 * time.Second

func createTopic(ctx context.Context, adm *kadm.Client, name string, partitions int32, cfg map[string]*string) error {
	return retry.Do(ctx, retry.Policy{What: "create topic " + name, Initial: 250 * time.Millisecond, Max: time.Second, Bound: topicWait,
		Transient: func(err error) bool {
			return !errors.Is(err, kerr.InvalidTopicException) && !errors.Is(err, kerr.TopicAuthorizationFailed)
		}},
		func(ctx context.Context) error {
			resp, err := adm.CreateTopic(ctx, partitions, -1, cfg, name)
			if err == nil {
				err = resp.Err
			}
			if errors.Is(err, kerr.TopicAlreadyExists) {
				return nil
			}
			return err
		})
}

func partitionCount(ctx context.Context, adm *kadm.Client, topic string) (int32, error) {
	var n int32
	err := retry.Do(ctx, retry.Policy{What: "describe topic " + topic, Initial: 250 * time.Millisecond, Max: time.Second, Bound: topicWait,
		Transient: func(err error) bool { return !errors.Is(err, kerr.TopicAuthorizationFailed) }},
		func(ctx context.Context) error {
			td, err := adm.ListTopics(ctx, topic)
			if err != nil {
				return err
			}
			d, ok := td[topic]
			switch {
			case ok && d.Err != nil:
				return d.Err
			case !ok || len(d.Partitions) == 0:
				return errors.New("no partitions yet")
			}
			n = int32(len(d.Partitions))
			return nil
		})
	return n, err
}

// Ping checks that brokers answer as a Kafka cluster within bound: a
// wrong address, a service that is not Kafka, or a broker that does not
// answer is an error naming the addresses, not a wait without end.
func Ping(ctx context.Context, brokers []string, bound time.Duration, opts ...kgo.Opt) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.DialTimeout(min(bound, 10*time.Second))}, opts...)...)
	if err != nil {
		return fmt.Errorf("kafka %v: %w", brokers, err)
	}
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	// The client may go on dialing past ctx (a peer that accepts nothing):
	// the answer is awaited only until the bound, and the client closed
	// in the background, which ends with its dial.
	answer := make(chan error, 1)
	go func() {
		_, err := kadm.NewClient(cl).BrokerMetadata(ctx)
		answer <- err
	}()
	select {
	case err = <-answer:
		cl.Close()
	case <-ctx.Done():
		go func() { <-answer; cl.Close() }()
		err = ctx.Err()
	}
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		return fmt.Errorf("kafka %v did not answer as a Kafka broker within %s (KAFKA_CONNECT_TIMEOUT; is KAFKA_BOOTSTRAP_SERVERS right, and the broker up?)", brokers, bound)
	}
	return fmt.Errorf("kafka %v: %w", brokers, err)
}
