package metrics

import (
	"net"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
)

// kafkaClients holds one kprom collector per client role.
var (
	kafkaMu      sync.Mutex
	kafkaClients = map[string]*kafkaHooks{}
)

// KafkaOpts returns the options that give a franz-go client the client
// metrics of github.com/twmb/franz-go/plugin/kprom on Registry, as
// txpipe_kafka_* with a const label client=role (consume, produce, serve,
// ...). Every client of a command may share them: a command creates many
// clients (validator, sink, master-data follower, admin clients), and
// their connection, byte and request counters add up under its role.
func KafkaOpts(role string) []kgo.Opt {
	kafkaMu.Lock()
	defer kafkaMu.Unlock()
	h := kafkaClients[role]
	if h == nil {
		h = &kafkaHooks{m: kprom.NewMetrics("txpipe",
			kprom.Subsystem("kafka"),
			kprom.Registry(nil), // collected through kafkaHooks: see there
			kprom.WithStaticLabel(prometheus.Labels{"client": role}),
			kprom.FetchAndProduceDetail(kprom.Batches, kprom.Records, kprom.ConsistentNaming),
			kprom.Histograms(kprom.RequestDurationE2E),
		)}
		kafkaClients[role] = h
	}
	return []kgo.Opt{kgo.WithHooks(h)}
}

// kafkaHooks shares one kprom.Metrics between every client of a role.
// kprom builds its metrics in OnNewClient, once per Metrics: here that
// happens for the first client only, and the collector joins Registry
// then; later clients record into the same counters. kprom's gauges of
// buffered records bind to a single client and are named *_total, which
// Prometheus reserves for counters: they are left out.
type kafkaHooks struct {
	m    *kprom.Metrics
	once sync.Once
}

var (
	_ kgo.HookNewClient           = (*kafkaHooks)(nil)
	_ kgo.HookBrokerConnect       = (*kafkaHooks)(nil)
	_ kgo.HookBrokerDisconnect    = (*kafkaHooks)(nil)
	_ kgo.HookBrokerThrottle      = (*kafkaHooks)(nil)
	_ kgo.HookBrokerE2E           = (*kafkaHooks)(nil)
	_ kgo.HookProduceBatchWritten = (*kafkaHooks)(nil)
	_ kgo.HookFetchBatchRead      = (*kafkaHooks)(nil)
)

func (h *kafkaHooks) OnNewClient(cl *kgo.Client) {
	h.once.Do(func() {
		h.m.OnNewClient(cl)
		Registry.MustRegister(h)
	})
}

func (h *kafkaHooks) OnBrokerConnect(meta kgo.BrokerMetadata, d time.Duration, c net.Conn, err error) {
	h.m.OnBrokerConnect(meta, d, c, err)
}

func (h *kafkaHooks) OnBrokerDisconnect(meta kgo.BrokerMetadata, c net.Conn) {
	h.m.OnBrokerDisconnect(meta, c)
}

func (h *kafkaHooks) OnBrokerThrottle(meta kgo.BrokerMetadata, d time.Duration, after bool) {
	h.m.OnBrokerThrottle(meta, d, after)
}

func (h *kafkaHooks) OnBrokerE2E(meta kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	h.m.OnBrokerE2E(meta, key, e2e)
}

func (h *kafkaHooks) OnProduceBatchWritten(meta kgo.BrokerMetadata, topic string, p int32, m kgo.ProduceBatchMetrics) {
	h.m.OnProduceBatchWritten(meta, topic, p, m)
}

func (h *kafkaHooks) OnFetchBatchRead(meta kgo.BrokerMetadata, topic string, p int32, m kgo.FetchBatchMetrics) {
	h.m.OnFetchBatchRead(meta, topic, p, m)
}

// Describe and Collect make the hooks the registered collector.
func (h *kafkaHooks) Describe(ch chan<- *prometheus.Desc) {
	inner := make(chan *prometheus.Desc)
	go func() { h.m.Describe(inner); close(inner) }()
	for d := range inner {
		if !skippedKafkaMetric(d) {
			ch <- d
		}
	}
}

func (h *kafkaHooks) Collect(ch chan<- prometheus.Metric) {
	inner := make(chan prometheus.Metric)
	go func() { h.m.Collect(inner); close(inner) }()
	for m := range inner {
		if !skippedKafkaMetric(m.Desc()) {
			ch <- m
		}
	}
}

// skippedKafkaMetric reports whether d is one of kprom's buffered-record
// gauges. A Desc does not export its name; its String form starts with it.
func skippedKafkaMetric(d *prometheus.Desc) bool {
	s := d.String()
	return strings.Contains(s, `fqName: "txpipe_kafka_buffered_`)
}

// ProducedHook counts, in RecordsProduced, every record a client's
// brokers acknowledged, by topic. Give it to producers whose records
// are final once acknowledged (not to transactional clients, whose
// records may be aborted).
func ProducedHook() kgo.Opt { return kgo.WithHooks(producedHook{}) }

type producedHook struct{}

var producedCounters sync.Map // topic → prometheus.Counter

func (producedHook) OnProduceRecordUnbuffered(r *kgo.Record, err error) {
	if err != nil {
		return
	}
	c, ok := producedCounters.Load(r.Topic)
	if !ok {
		c, _ = producedCounters.LoadOrStore(r.Topic, RecordsProduced.WithLabelValues(r.Topic))
	}
	c.(prometheus.Counter).Inc()
}
