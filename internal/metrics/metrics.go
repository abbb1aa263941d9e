// Package metrics holds txpipe's Prometheus registry and every metric the
// commands expose on /metrics: names txpipe_*, base units (seconds,
// records, rows), counters ending in _total, latencies as _seconds
// histograms, and no label that grows with the data (no card, no
// transaction, no merchant).
//
// The stream layer, the sink, the batch, the API and the Kafka clients
// record into the variables and functions here; Handler serves them, and
// Server serves them with /healthz and /readyz on a command's
// --metrics-addr.
package metrics

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/txpipe/txpipe"
)

// Registry is the registry of every txpipe metric, the Go runtime's and
// the process's included.
var Registry = prometheus.NewRegistry()

func init() {
	Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	Registry.MustRegister(c)
	return c
}

func histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	Registry.MustRegister(h)
	return h
}

func gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	Registry.MustRegister(g)
	return g
}

// latencyBuckets cover 0.5 ms to 10 s.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// The metrics. The stream layer records the first seven; see the
// functions below for where each call belongs.
var (
	// RecordsProduced counts records the brokers acknowledged, by topic:
	// the producer's transactions and dead letters (ProducedHook).
	RecordsProduced = counterVec("txpipe_records_produced_total",
		"Records produced and acknowledged by the brokers, by topic.", "topic")
	// RecordsJudged counts transactions the validator judged, in committed
	// Kafka transactions only, by status and decline reason ("" when not
	// declined).
	RecordsJudged = counterVec("txpipe_records_judged_total",
		"Transactions judged by the validator (committed Kafka transactions), by status and decline reason.", "status", "decline_reason")
	// RecordsRejected counts rows that could not be judged, by reason.
	RecordsRejected = counterVec("txpipe_records_rejected_total",
		"Transaction rows that could not be judged (dead letters), by reason.", "reason")
	// KafkaTransactionCommit is how long ending a Kafka transaction took,
	// by outcome (committed, aborted).
	KafkaTransactionCommit = histogramVec("txpipe_kafka_transaction_commit_seconds",
		"Time to end a Kafka transaction of the validator (flush, offsets, EndTxn), by outcome.", latencyBuckets, "outcome")
	// MySQLWrite is how long a MySQL write transaction took, by operation
	// (stream: the sink's rows and offsets in one transaction).
	MySQLWrite = histogramVec("txpipe_mysql_write_seconds",
		"Time of a MySQL write transaction, by operation.", latencyBuckets, "operation")
	// ConsumerLag is how many records a consumer group has not yet
	// processed, per topic partition.
	ConsumerLag = gaugeVec("txpipe_consumer_lag_records",
		"Records of a topic partition not yet processed by a consumer group.", "group", "topic", "partition")
	// SinkRowsWritten counts rows the sinks wrote, by sink (csv, mysql)
	// and table (stream_transactions, rejected_transactions).
	SinkRowsWritten = counterVec("txpipe_sink_rows_written_total",
		"Rows written by the stream sinks, by sink and table.", "sink", "table")

	// EventLatency is how long after an event happened (event_date_origin)
	// the sink took it (event_dw_regdate), by event type.
	EventLatency = histogramVec("txpipe_event_latency_seconds",
		"Time from when an event happened (event_date_origin) to when the sink took it (event_dw_regdate), by event type.",
		[]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 3600}, "event_type")

	// BatchDuration is how long batch runs took, by result (ok, failed).
	BatchDuration = histogramVec("txpipe_batch_duration_seconds",
		"Duration of batch runs, by result.", []float64{1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}, "result")
	// BatchRows counts the stream rows batch runs settled, by the status
	// they settled to (approved, declined).
	BatchRows = counterVec("txpipe_batch_rows_total",
		"Stream rows read and settled by successful batch runs, by settled status.", "status")
	// BatchLastSuccess is when the last successful batch run of this
	// process ended.
	BatchLastSuccess = prometheus.NewGauge(prometheus.GaugeOpts{Name: "txpipe_batch_last_success_timestamp_seconds",
		Help: "Unix time at which the last successful batch run of this process ended."})

	// HTTPRequests counts API requests by route pattern and status code.
	HTTPRequests = counterVec("txpipe_http_requests_total",
		"HTTP requests served, by route pattern and status code.", "route", "code")
	// HTTPDuration is how long API requests took, by route pattern.
	HTTPDuration = histogramVec("txpipe_http_request_duration_seconds",
		"Time to serve an HTTP request, by route pattern.", latencyBuckets, "route")

	// ServeRows is how many rows the serve command holds in memory (the
	// mode without a database), by view (batch, stream, rejected).
	ServeRows = gaugeVec("txpipe_serve_rows",
		"Rows held in memory by serve without a database, by view.", "view")
	// ServeBatchRun is the run id of the batch views serve answers from
	// (0: none yet).
	ServeBatchRun = prometheus.NewGauge(prometheus.GaugeOpts{Name: "txpipe_serve_batch_run",
		Help: "Run id of the batch views serve answers from (0: none)."})
)

func init() {
	Registry.MustRegister(BatchLastSuccess, ServeBatchRun)
}

// judgedCounters caches the counters of RecordsJudged by label values:
// the validator counts every batch it commits.
var judgedCounters sync.Map // [2]string → prometheus.Counter

// ObserveJudged adds n transactions judged with status and reason. The
// validator calls it once per status and reason of a batch, after the
// batch's Kafka transaction committed (an aborted batch is judged again).
func ObserveJudged(status txpipe.Status, reason txpipe.DeclineReason, n int) {
	if n <= 0 {
		return
	}
	key := [2]string{string(status), string(reason)}
	c, ok := judgedCounters.Load(key)
	if !ok {
		c, _ = judgedCounters.LoadOrStore(key, RecordsJudged.WithLabelValues(key[0], key[1]))
	}
	c.(prometheus.Counter).Add(float64(n))
}

// ObserveRejected adds n rows that could not be judged with reason. The
// validator calls it after the batch that dead-lettered them committed;
// the producer for the rows it sends straight to the dead-letter topic.
func ObserveRejected(reason txpipe.RejectReason, n int) {
	if n > 0 {
		RecordsRejected.WithLabelValues(string(reason)).Add(float64(n))
	}
}

// ObserveTransactionEnd records how long ending a Kafka transaction took
// (from the start of the flush to the end of EndTxn), and whether it
// committed.
func ObserveTransactionEnd(d time.Duration, committed bool) {
	outcome := "committed"
	if !committed {
		outcome = "aborted"
	}
	KafkaTransactionCommit.WithLabelValues(outcome).Observe(d.Seconds())
}

// ObserveMySQLWrite records the duration of one MySQL write transaction
// of an operation (stream for the sink's rows and offsets).
func ObserveMySQLWrite(operation string, d time.Duration) {
	MySQLWrite.WithLabelValues(operation).Observe(d.Seconds())
}

// Sinks and tables of SinkRowsWritten.
const (
	SinkCSV         = "csv"
	SinkMySQL       = "mysql"
	TableStream     = "stream_transactions"
	TableRejected   = "rejected_transactions"
	TableAlerts     = "alerts"
	TableStaging    = "event_staging"
	OperationStream = "stream"
)

// ObserveSinkRows adds rows a sink wrote to a table, once they are
// durable (the CSV segment synced, the MySQL transaction committed).
func ObserveSinkRows(sink, table string, n int) {
	if n > 0 {
		SinkRowsWritten.WithLabelValues(sink, table).Add(float64(n))
	}
}

// ObserveEventLatency records how long after it happened the sink took
// an event.
func ObserveEventLatency(eventType string, d time.Duration) {
	o, ok := latencyObservers.Load(eventType)
	if !ok {
		o, _ = latencyObservers.LoadOrStore(eventType, EventLatency.WithLabelValues(eventType))
	}
	o.(prometheus.Observer).Observe(max(d, 0).Seconds())
}

// latencyObservers caches EventLatency's observers by event type: the sink
// observes every record.
var latencyObservers sync.Map // string → prometheus.Observer

// SetLag sets how many records of a partition a group has not processed.
func SetLag(group, topic string, partition int32, lag int64) {
	ConsumerLag.WithLabelValues(group, topic, strconv.Itoa(int(partition))).Set(float64(max(lag, 0)))
}

// ObserveBatch records a batch run: its duration by result, and for a
// successful run the rows it settled and the time it ended.
func ObserveBatch(elapsed time.Duration, approved, declined int64, err error) {
	if err != nil {
		BatchDuration.WithLabelValues("failed").Observe(elapsed.Seconds())
		return
	}
	BatchDuration.WithLabelValues("ok").Observe(elapsed.Seconds())
	BatchRows.WithLabelValues(string(txpipe.StatusApproved)).Add(float64(approved))
	BatchRows.WithLabelValues(string(txpipe.StatusDeclined)).Add(float64(declined))
	BatchLastSuccess.SetToCurrentTime()
}
