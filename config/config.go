// Package config reads txpipe's settings: flags win over the environment,
// the environment over a .env file, and that over the defaults.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
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
	// KafkaCardsTopic and KafkaCustomersTopic are the master-data topics.
	KafkaCardsTopic     string
	KafkaCustomersTopic string
	// KafkaCompression is the producers' codec: one of Compressions.
	KafkaCompression string
	ConsumerTimeout  time.Duration // 0: run until stopped
	DBHost           string
	DBPort           int
	DBUser           string
	DBPassword       string // environment only: never a flag
	DBName           string
	Results          string
	Data             string
}

type setting struct {
	env, flag, def, usage string
	secret                bool
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
	{env: "KAFKA_CARDS_TOPIC", flag: "kafka-cards-topic", def: "txpipe.cards", usage: "compacted topic of the cards and their limits"},
	{env: "KAFKA_CUSTOMERS_TOPIC", flag: "kafka-customers-topic", def: "txpipe.customers", usage: "compacted topic of the customers and their addresses"},
	{env: "KAFKA_COMPRESSION", flag: "kafka-compression", def: DefaultCompression, usage: "compression of every record txpipe produces: " + strings.Join(Compressions, ", ")},
	{env: "CONSUMER_TIMEOUT_MS", flag: "consumer-timeout-ms", def: "0", usage: "consume exits after this many ms without records (0: never)"},
	{env: "DB_HOST", flag: "db-host", def: "", usage: "MySQL host; empty runs without a database (Kafka and CSV only)"},
	{env: "DB_PORT", flag: "db-port", def: "3306", usage: "MySQL port"},
	{env: "DB_USER", flag: "db-user", def: "root", usage: "MySQL user"},
	{env: "DB_PASSWORD", def: "", secret: true},
	{env: "DB_NAME", flag: "db-name", def: "txpipe", usage: "MySQL database (created when missing)"},
	{env: "TXPIPE_RESULTS", flag: "results", def: "results", usage: "directory of the result CSV files"},
	{env: "TXPIPE_DATA", flag: "data", def: "dataset", usage: "dataset directory (customers, credit_card_types, cards, transactions CSV)"},
}

// Flags registers a flag for every setting that is not a secret.
func Flags(flags *pflag.FlagSet) {
	flags.String("env-file", "", "read settings from this file (default: .env when present)")
	for _, s := range settings {
		if s.flag != "" {
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
		KafkaCompression:    strings.ToLower(v["KAFKA_COMPRESSION"]),
		DBHost:              v["DB_HOST"],
		DBUser:              v["DB_USER"],
		DBPassword:          os.Getenv("DB_PASSWORD"),
		DBName:              v["DB_NAME"],
		Results:             v["TXPIPE_RESULTS"],
		Data:                v["TXPIPE_DATA"],
	}
	ms, err := strconv.ParseInt(v["CONSUMER_TIMEOUT_MS"], 10, 64)
	if err != nil || ms < 0 {
		return nil, fmt.Errorf("CONSUMER_TIMEOUT_MS %q: not a non-negative integer", v["CONSUMER_TIMEOUT_MS"])
	}
	c.ConsumerTimeout = time.Duration(ms) * time.Millisecond
	if c.DBPort, err = strconv.Atoi(v["DB_PORT"]); err != nil || c.DBPort <= 0 || c.DBPort > 65535 {
		return nil, fmt.Errorf("DB_PORT %q: not a port number", v["DB_PORT"])
	}
	if c.KafkaTopic == "" {
		return nil, errors.New("KAFKA_TOPIC is empty")
	}
	if c.KafkaCardsTopic == "" || c.KafkaCustomersTopic == "" {
		return nil, errors.New("KAFKA_CARDS_TOPIC and KAFKA_CUSTOMERS_TOPIC must not be empty")
	}
	if !slices.Contains(Compressions, c.KafkaCompression) {
		return nil, fmt.Errorf("KAFKA_COMPRESSION %q: not one of %s", v["KAFKA_COMPRESSION"], strings.Join(Compressions, ", "))
	}
	return c, nil
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
