// Package config reads txpipe's settings: flags win over the environment,
// the environment over a .env file, and that over the defaults.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/joho/godotenv"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config is every setting shared by the subcommands.
type Config struct {
	KafkaBootstrap string
	KafkaSet       bool // KAFKA_BOOTSTRAP_SERVERS was given, not defaulted
	KafkaTopic     string
	KafkaGroupID   string
	// KafkaConnectTimeout bounds how long a command waits for the brokers
	// to answer before it fails naming them.
	KafkaConnectTimeout time.Duration
	// KafkaCardsTopic, KafkaCustomersTopic and KafkaStolenTopic are the
	// master-data topics.
	KafkaCardsTopic     string
	KafkaCustomersTopic string
	KafkaStolenTopic    string
	// KafkaCompression is the producers' codec: one of Compressions.
	KafkaCompression string
	ConsumerTimeout  time.Duration // 0: run until stopped
	DBHost           string
	DBPort           int
	DBUser           string
	DBPassword       string // environment only: never a flag
	DBName           string
	DBConnectTimeout time.Duration // how long to wait for a database that does not answer
	Results          string
	Data             string
	APIAddr          string // where serve listens
	APIToken         string // environment only: the bearer token of the API
}

type setting struct {
	env, flag, def, usage string
	secret                bool
	command               string // the only command with this flag (CommandFlags); empty: every command
}

// Compressions are the codecs KAFKA_COMPRESSION takes.
var Compressions = []string{"none", "gzip", "snappy", "lz4", "zstd"}

// DefaultCompression is the producers' codec unless KAFKA_COMPRESSION
// says otherwise.
const DefaultCompression = "lz4"

var settings = []setting{
	{env: "KAFKA_BOOTSTRAP_SERVERS", flag: "kafka-bootstrap-servers", def: "localhost:9092", usage: "Kafka brokers, comma-separated"},
	{env: "KAFKA_TOPIC", flag: "kafka-topic", def: "transactions", usage: "input topic of transactions"},
	{env: "KAFKA_GROUP_ID", flag: "kafka-group-id", def: "txpipe", usage: "consumer group of the validators (the sinks use <group>.sink)"},
	{env: "KAFKA_CONNECT_TIMEOUT", flag: "kafka-connect-timeout", def: "30s", usage: "how long a command waits for the brokers to answer before it fails"},
	{env: "KAFKA_CARDS_TOPIC", flag: "kafka-cards-topic", def: "txpipe.cards", usage: "compacted topic of the cards and their limits"},
	{env: "KAFKA_CUSTOMERS_TOPIC", flag: "kafka-customers-topic", def: "txpipe.customers", usage: "compacted topic of the customers and their addresses"},
	{env: "KAFKA_STOLEN_TOPIC", flag: "kafka-stolen-topic", def: "txpipe.stolen-cards", usage: "compacted topic of the cards reported stolen"},
	{env: "KAFKA_COMPRESSION", flag: "kafka-compression", def: DefaultCompression, usage: "compression of every record txpipe produces: " + strings.Join(Compressions, ", ")},
	{env: "CONSUMER_TIMEOUT_MS", flag: "consumer-timeout-ms", def: "0", usage: "consume exits after this many ms without records (0: never)"},
	{env: "DB_HOST", flag: "db-host", def: "", usage: "MySQL host; empty runs without a database (Kafka and CSV only)"},
	{env: "DB_PORT", flag: "db-port", def: "3306", usage: "MySQL port"},
	{env: "DB_USER", flag: "db-user", def: "root", usage: "MySQL user"},
	{env: "DB_PASSWORD", def: "", secret: true},
	{env: "DB_NAME", flag: "db-name", def: "txpipe", usage: "MySQL database (created when missing)"},
	{env: "DB_CONNECT_TIMEOUT", flag: "db-connect-timeout", def: "60s", usage: "how long to wait for a database that does not answer before giving up (a duration, or seconds)"},
	{env: "TXPIPE_RESULTS", flag: "results", def: "results", usage: "directory of the result CSV files"},
	{env: "TXPIPE_DATA", flag: "data", def: "dataset", usage: "dataset directory (customers, credit_card_types, cards, transactions CSV)"},
	{env: "TXPIPE_API_ADDR", flag: "addr", def: "127.0.0.1:8080", usage: "address the API listens on (any other than loopback needs TXPIPE_API_TOKEN)", command: "serve"},
	{env: "TXPIPE_API_TOKEN", def: "", secret: true},
}

// Flags registers a flag for every setting that is not a secret.
func Flags(flags *pflag.FlagSet) {
	flags.String("env-file", "", "read settings from this file (default: .env when present)")
	for _, s := range settings {
		if s.flag != "" && s.command == "" {
			flags.String(s.flag, "", fmt.Sprintf("%s (env %s, default %q)", s.usage, s.env, s.def))
		}
	}
}

// CommandFlags registers the flags of the settings only command has
// (serve's --addr).
func CommandFlags(flags *pflag.FlagSet, command string) {
	for _, s := range settings {
		if s.flag != "" && s.command == command {
			flags.String(s.flag, "", fmt.Sprintf("%s (env %s, default %q)", s.usage, s.env, s.def))
		}
	}
}

// Load resolves the settings for a command whose flags are parsed.
func Load(flags *pflag.FlagSet) (*Config, error) {
	envFile, _ := flags.GetString("env-file")
	if envFile != "" {
		if err := godotenv.Load(envFile); err != nil {
			return nil, fmt.Errorf("read --env-file %s: %w", envFile, err)
		}
	} else if err := godotenv.Load(".env"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read .env: %w", err)
	}
	given := map[string]bool{}
	get := func(s setting) string {
		if s.flag != "" {
			if f := flags.Lookup(s.flag); f != nil && f.Changed {
				given[s.env] = true
				return f.Value.String()
			}
		}
		if v, ok := os.LookupEnv(s.env); ok {
			given[s.env] = true
			return v
		}
		return s.def
	}
	v := map[string]string{}
	for _, s := range settings {
		v[s.env] = strings.TrimSpace(get(s))
	}
	c := &Config{
		KafkaBootstrap:      v["KAFKA_BOOTSTRAP_SERVERS"],
		KafkaSet:            given["KAFKA_BOOTSTRAP_SERVERS"] && v["KAFKA_BOOTSTRAP_SERVERS"] != "",
		KafkaTopic:          v["KAFKA_TOPIC"],
		KafkaGroupID:        v["KAFKA_GROUP_ID"],
		KafkaCardsTopic:     v["KAFKA_CARDS_TOPIC"],
		KafkaCustomersTopic: v["KAFKA_CUSTOMERS_TOPIC"],
		KafkaStolenTopic:    v["KAFKA_STOLEN_TOPIC"],
		KafkaCompression:    strings.ToLower(v["KAFKA_COMPRESSION"]),
		DBHost:              v["DB_HOST"],
		DBUser:              v["DB_USER"],
		DBPassword:          os.Getenv("DB_PASSWORD"),
		DBName:              v["DB_NAME"],
		Results:             v["TXPIPE_RESULTS"],
		Data:                v["TXPIPE_DATA"],
		APIAddr:             v["TXPIPE_API_ADDR"],
		APIToken:            strings.TrimSpace(os.Getenv("TXPIPE_API_TOKEN")),
	}
	ms, err := strconv.ParseInt(v["CONSUMER_TIMEOUT_MS"], 10, 64)
	if err != nil || ms < 0 {
		return nil, fmt.Errorf("CONSUMER_TIMEOUT_MS %q: not a non-negative integer", v["CONSUMER_TIMEOUT_MS"])
	}
	c.ConsumerTimeout = time.Duration(ms) * time.Millisecond
	if c.KafkaConnectTimeout, err = time.ParseDuration(v["KAFKA_CONNECT_TIMEOUT"]); err != nil || c.KafkaConnectTimeout <= 0 {
		return nil, fmt.Errorf("KAFKA_CONNECT_TIMEOUT %q: not a positive duration such as 30s", v["KAFKA_CONNECT_TIMEOUT"])
	}
	if c.DBPort, err = strconv.Atoi(v["DB_PORT"]); err != nil || c.DBPort <= 0 || c.DBPort > 65535 {
		return nil, fmt.Errorf("DB_PORT %q: not a port number", v["DB_PORT"])
	}
	if c.DBConnectTimeout, err = parseDuration(v["DB_CONNECT_TIMEOUT"]); err != nil {
		return nil, fmt.Errorf("DB_CONNECT_TIMEOUT %q: %w", v["DB_CONNECT_TIMEOUT"], err)
	}
	if err := CheckTopic(c.KafkaTopic); err != nil {
		return nil, fmt.Errorf("KAFKA_TOPIC: %w", err)
	}
	if c.KafkaCardsTopic == "" || c.KafkaCustomersTopic == "" {
		return nil, errors.New("KAFKA_CARDS_TOPIC and KAFKA_CUSTOMERS_TOPIC must not be empty")
	}
	if !slices.Contains(Compressions, c.KafkaCompression) {
		return nil, fmt.Errorf("KAFKA_COMPRESSION %q: not one of %s", v["KAFKA_COMPRESSION"], strings.Join(Compressions, ", "))
	}
	return c, nil
}

// parseDuration reads a positive duration: "90s", "2m", or a number of
// seconds.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		n, nerr := strconv.ParseFloat(s, 64)
		if nerr != nil || math.IsNaN(n) || math.IsInf(n, 0) || n > 1e9 {
			return 0, errors.New("not a duration such as 90s or 2m, nor a number of seconds")
		}
		d = time.Duration(n * float64(time.Second))
	}
	if d <= 0 {
		return 0, errors.New("must be above zero")
	}
	return d, nil
}

// TopicSuffixes are what txpipe appends to the input topic's name for
// its other topics (the longest decides how long the input's name may be).
var TopicSuffixes = []string{".validated", ".dlq", ".card-state", ".repartition", ".alerts"}

// CheckTopic checks an input topic name against Kafka's rule (1 to 249
// characters of a-z, A-Z, 0-9, '.', '_' and '-'; not "." or "..") for it
// and for the topics txpipe derives from it by appending a suffix. Kafka
// refuses any other name; an embedded broker might not, so it is checked
// here, before anything runs.
func CheckTopic(name string) error {
	longest := 0
	for _, s := range TopicSuffixes {
		longest = max(longest, len(s))
	}
	switch {
	case name == "":
		return errors.New("empty")
	case name == "." || name == "..":
		return fmt.Errorf("%q is not a topic name Kafka takes", name)
	case len(name) > 249-longest:
		return fmt.Errorf("%d characters, at most %d (Kafka takes 249, and txpipe appends up to %d for its other topics)", len(name), 249-longest, longest)
	}
	for i, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%q has %q at byte %d: Kafka topic names are letters a-z and A-Z, digits, '.', '_' and '-'", name, r, i)
		}
	}
	return nil
}

// Codec is the franz-go codec of a KAFKA_COMPRESSION value (one of
// Compressions; anything else is no compression).
func Codec(name string) kgo.CompressionCodec {
	switch name {
	case "gzip":
		return kgo.GzipCompression()
	case "snappy":
		return kgo.SnappyCompression()
	case "lz4":
		return kgo.Lz4Compression()
	case "zstd":
		return kgo.ZstdCompression()
	}
	return kgo.NoCompression()
}

// ProducerCompression is the client option that compresses what a client
// produces with the codec of a KAFKA_COMPRESSION value. One option may be
// given to many clients, also while they are being created at the same
// time (franz-go's ProducerBatchCompression option may not: each new
// client rewrites its list of codecs in place).
func ProducerCompression(name string) (kgo.Opt, error) {
	if Codec(name) == kgo.NoCompression() {
		return kgo.WithCompressor(noCompression{}), nil
	}
	c, err := kgo.DefaultCompressor(Codec(name))
	if err != nil {
		return nil, fmt.Errorf("compression %s: %w", name, err)
	}
	return kgo.WithCompressor(c), nil
}

// noCompression leaves every batch as it is (a nil compressor would make
// the client pick its default codec).
type noCompression struct{}

func (noCompression) Compress(*bytes.Buffer, []byte, ...kgo.CompressFlag) ([]byte, kgo.CompressionCodecType) {
	return nil, kgo.CodecNone
}

// Brokers splits KAFKA_BOOTSTRAP_SERVERS.
func (c *Config) Brokers() []string {
	var out []string
	for _, b := range strings.Split(c.KafkaBootstrap, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// HasDB reports whether a database is configured.
func (c *Config) HasDB() bool { return c.DBHost != "" }

// MySQL returns the driver configuration of the database.
func (c *Config) MySQL() *mysql.Config {
	m := mysql.NewConfig()
	m.Net = "tcp"
	m.Addr = fmt.Sprintf("%s:%d", c.DBHost, c.DBPort)
	m.User = c.DBUser
	m.Passwd = c.DBPassword
	m.DBName = c.DBName
	return m
}
