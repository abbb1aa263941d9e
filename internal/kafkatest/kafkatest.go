// Package kafkatest runs a test against both brokers txpipe is proven on:
// a fresh embedded broker (franz-go's kfake, see stream/embedded) and a
// real Apache Kafka. The real one is shared by every test of a run and
// named by the environment variable TXPIPE_TEST_KAFKA (bootstrap
// servers, as printed by `scripts/kafka start`); tests on it use topic,
// group and transactional names of their own, so they never collide.
//
//	func TestX(t *testing.T) {
//		kafkatest.Each(t, func(t *testing.T, b kafkatest.Broker) {
//			topics := b.Topics(t, "x")
//			// ... produce and consume on b.Addrs ...
//		})
//	}
//
// Without TXPIPE_TEST_KAFKA the kafka subtests are skipped, except under
// CI (the variable CI set), where they fail: CI must prove both brokers.
package kafkatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/txpipe/txpipe/stream"
	"github.com/txpipe/txpipe/stream/embedded"
)

// EnvBrokers names the real Kafka the kafka subtests run on.
const EnvBrokers = "TXPIPE_TEST_KAFKA"

// Kind says which broker a test runs on; it is also the subtest's name.
type Kind string

const (
	Embedded Kind = "embedded" // kfake inside the test process
	Kafka    Kind = "kafka"    // Apache Kafka, a separate JVM
)

// Broker is a running broker a test may use.
type Broker struct {
	Kind  Kind
	Addrs []string
}

// Real reports whether the broker is Apache Kafka.
func (b Broker) Real() bool { return b.Kind == Kafka }

// Bootstrap is the broker list as KAFKA_BOOTSTRAP_SERVERS takes it.
func (b Broker) Bootstrap() string { return strings.Join(b.Addrs, ",") }

// Each runs body as two subtests: "embedded" on a fresh embedded broker,
// and "kafka" on the shared real broker (see Shared).
func Each(t *testing.T, body func(t *testing.T, b Broker)) {
	t.Helper()
	t.Run(string(Embedded), func(t *testing.T) { body(t, StartEmbedded(t)) })
	t.Run(string(Kafka), func(t *testing.T) { body(t, Shared(t)) })
}

// EachConcurrent is Each with the two subtests running at the same time,
// for a body that changes nothing process-wide (the environment, the
// working directory, package variables): most of a broker test's time is
// spent waiting on the broker, so the two overlap well.
func EachConcurrent(t *testing.T, body func(t *testing.T, b Broker)) {
	t.Helper()
	var wg sync.WaitGroup
	for _, k := range []Kind{Embedded, Kafka} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(string(k), func(t *testing.T) {
				if k == Embedded {
					body(t, StartEmbedded(t))
				} else {
					body(t, Shared(t))
				}
			})
		}()
	}
	wg.Wait()
}

// StartEmbedded starts an in-memory embedded broker on a free loopback
// port for one test; it stops when the test ends.
func StartEmbedded(t testing.TB) Broker {
	t.Helper()
	b, err := embedded.Start(0, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return Broker{Kind: Embedded, Addrs: b.Addrs()}
}

// Shared returns the real broker named by TXPIPE_TEST_KAFKA. Without it
// the test is skipped, or fails under CI.
func Shared(t testing.TB) Broker {
	t.Helper()
	v := strings.TrimSpace(os.Getenv(EnvBrokers))
	if v == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set: CI must run every broker test on real Apache Kafka too (.ci/run starts one with scripts/kafka)", EnvBrokers)
		}
		t.Skipf("%s is not set: no real Kafka to run on (scripts/kafka start prints the address to export as %s)", EnvBrokers, EnvBrokers)
	}
	var addrs []string
	for _, a := range strings.Split(v, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	return Broker{Kind: Kafka, Addrs: addrs}
}

// Name returns prefix followed by a random suffix: a topic, group or
// instance name no other test, and no earlier run on the same broker,
// uses.
func Name(prefix string) string {
	var b [4]byte
	rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// Topics returns the speed layer's topics under a unique name made from
// prefix, master-data topics included (on a shared broker the default
// txpipe.cards would mix every test's cards). On the real broker the
// topics are deleted when the test passes.
func (b Broker) Topics(t testing.TB, prefix string) stream.Topics {
	t.Helper()
	name := Name(prefix)
	topics := stream.TopicsFor(name)
	topics.Cards, topics.Customers, topics.Stolen = name+".cards", name+".customers", name+".stolen-cards"
	if b.Real() {
		t.Cleanup(func() {
			if !t.Failed() {
				b.DeleteTopics(t, topics.Input, topics.Validated, topics.DLQ, topics.Repartition, topics.Alerts, topics.State,
					topics.Cards, topics.Customers, topics.Stolen)
			}
		})
	}
	return topics
}

// DeleteTopics deletes topics, reporting (not failing on) errors: a test's
// cleanup.
func (b Broker) DeleteTopics(t testing.TB, topics ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs...))
	if err != nil {
		t.Logf("delete topics: %v", err)
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resps, err := kadm.NewClient(cl).DeleteTopics(ctx, topics...)
	if err != nil {
		t.Logf("delete topics %v on %s: %v", topics, b.Bootstrap(), err)
		return
	}
	for _, r := range resps {
		if r.Err != nil && !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
			t.Logf("delete topic %s on %s: %v", r.Topic, b.Bootstrap(), r.Err)
		}
	}
	// Kafka deletes in the background: wait until the names are free, so
	// that a test may create them again.
	adm := kadm.NewClient(cl)
	for {
		td, err := adm.ListTopics(ctx, topics...)
		if err == nil {
			left := 0
			for _, d := range td {
				if d.Err == nil {
					left++
				}
			}
			if left == 0 {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Logf("topics %v on %s: still there after deleting them", topics, b.Bootstrap())
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// String names the broker in messages.
func (b Broker) String() string { return fmt.Sprintf("%s broker %s", b.Kind, b.Bootstrap()) }
