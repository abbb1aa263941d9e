package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func load(t *testing.T, args ...string) (*Config, error) {
	t.Helper()
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	Flags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return Load(fs)
}

// clearEnv unsets every setting for the test.
func clearEnv(t *testing.T) {
	for _, s := range settings {
		if v, ok := os.LookupEnv(s.env); ok {
			t.Setenv(s.env, v) // restored after the test
			os.Unsetenv(s.env)
		}
	}
}

func TestPrecedence(t *testing.T) {
	clearEnv(t)
	t.Chdir(t.TempDir())
	// defaults
	c, err := load(t)
	if err != nil {
		t.Fatal(err)
	}
	if c.KafkaBootstrap != "localhost:9092" || c.KafkaTopic != "transactions" || c.HasDB() || c.DBPort != 3306 || c.ConsumerTimeout != 0 || c.KafkaSet {
		t.Fatalf("defaults: %+v", c)
	}
	// .env over the defaults
	if err := os.WriteFile(".env", []byte("KAFKA_TOPIC=from-file\nDB_HOST=db.example\nDB_PASSWORD=s3cret\nCONSUMER_TIMEOUT_MS=1500\nKAFKA_BOOTSTRAP_SERVERS=a:1, b:2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, k := range []string{"KAFKA_TOPIC", "DB_HOST", "DB_PASSWORD", "CONSUMER_TIMEOUT_MS", "KAFKA_BOOTSTRAP_SERVERS"} {
			os.Unsetenv(k) // godotenv sets the process environment
		}
	})
	t.Setenv("KAFKA_GROUP_ID", "from-env")
	c, err = load(t, "--db-host", "from-flag")
	if err != nil {
		t.Fatal(err)
	}
	if c.KafkaTopic != "from-file" || c.DBHost != "from-flag" || c.KafkaGroupID != "from-env" || c.DBPassword != "s3cret" || c.ConsumerTimeout != 1500*time.Millisecond {
		t.Fatalf("precedence: %+v", c)
	}
	if got := c.Brokers(); len(got) != 2 || got[1] != "b:2" || !c.KafkaSet {
		t.Fatalf("brokers %v (set %v)", got, c.KafkaSet)
	}
	if dsn := c.MySQL(); dsn.Addr != "from-flag:3306" || dsn.Passwd != "s3cret" || dsn.DBName != "txpipe" {
		t.Fatalf("mysql config %+v", dsn)
	}
}

func TestRealEnvironmentWinsOverDotEnv(t *testing.T) {
	clearEnv(t)
	t.Chdir(t.TempDir())
	if err := os.WriteFile(".env", []byte("KAFKA_TOPIC=from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KAFKA_TOPIC", "from-env")
	c, err := load(t)
	if err != nil {
		t.Fatal(err)
	}
	if c.KafkaTopic != "from-env" {
		t.Fatalf("topic %q", c.KafkaTopic)
	}
}

func TestEnvFile(t *testing.T) {
	clearEnv(t)
	t.Chdir(t.TempDir())
	if _, err := load(t, "--env-file", "missing.env"); err == nil || !strings.Contains(err.Error(), "missing.env") {
		t.Fatalf("a named env file that does not exist must fail: %v", err)
	}
	path := filepath.Join(t.TempDir(), "prod.env")
	os.WriteFile(path, []byte("DB_NAME=prod\n"), 0o600)
	t.Cleanup(func() { os.Unsetenv("DB_NAME") })
	c, err := load(t, "--env-file", path)
	if err != nil || c.DBName != "prod" {
		t.Fatalf("--env-file: %+v, %v", c, err)
	}
}

func TestBadValues(t *testing.T) {
	clearEnv(t)
	t.Chdir(t.TempDir())
	for _, args := range [][]string{{"--db-port", "x"}, {"--db-port", "70000"}, {"--consumer-timeout-ms", "-1"}, {"--kafka-topic", " "},
		{"--kafka-compression", "brotli"}, {"--kafka-cards-topic", ""}} {
		if _, err := load(t, args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

func TestNoPasswordFlag(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	Flags(fs)
	if fs.Lookup("db-password") != nil {
		t.Fatal("DB_PASSWORD must come from the environment only, never a flag")
	}
}

// TestTopicNames: a topic name Kafka would refuse is a configuration
// error at startup naming KAFKA_TOPIC, even where an embedded broker
// would take it.
func TestTopicNames(t *testing.T) {
	clearEnv(t)
	t.Chdir(t.TempDir())
	for _, ok := range []string{"transactions", "tx.v2", "a_b-C9", strings.Repeat("t", 249-len(".repartition"))} {
		if _, err := load(t, "--kafka-topic", ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"a/b", ".", "..", "tx topic", "tëx", "tx:1", strings.Repeat("t", 249-len(".repartition")+1), "a\x00b"} {
		_, err := load(t, "--kafka-topic", bad)
		if err == nil || !strings.HasPrefix(err.Error(), "KAFKA_TOPIC: ") {
			t.Errorf("%q: %v, want an error naming KAFKA_TOPIC", bad, err)
		}
	}
	t.Setenv("KAFKA_TOPIC", "")
	if _, err := load(t); err == nil || !strings.Contains(err.Error(), "KAFKA_TOPIC") {
		t.Errorf("empty topic: %v", err)
	}
}

func TestDBConnectTimeout(t *testing.T) {
	clearEnv(t)
	t.Chdir(t.TempDir())
	c, err := load(t)
	if err != nil || c.DBConnectTimeout != time.Minute {
		t.Fatalf("default: %v, %v", c.DBConnectTimeout, err)
	}
	for in, want := range map[string]time.Duration{"90s": 90 * time.Second, "2m": 2 * time.Minute, "5": 5 * time.Second, "0.5": 500 * time.Millisecond} {
		c, err := load(t, "--db-connect-timeout", in)
		if err != nil || c.DBConnectTimeout != want {
			t.Errorf("%q: %v, %v; want %v", in, c.DBConnectTimeout, err, want)
		}
	}
	t.Setenv("DB_CONNECT_TIMEOUT", "3s")
	if c, err := load(t); err != nil || c.DBConnectTimeout != 3*time.Second {
		t.Errorf("from the environment: %v, %v", c.DBConnectTimeout, err)
	}
	for _, bad := range []string{"0", "-1s", "soon", "NaN", "1e300"} {
		if _, err := load(t, "--db-connect-timeout", bad); err == nil || !strings.Contains(err.Error(), "DB_CONNECT_TIMEOUT") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// FuzzCheckTopic: every name CheckTopic takes is one Kafka takes, with
// room for the suffixes txpipe appends.
func FuzzCheckTopic(f *testing.F) {
	for _, s := range []string{"transactions", "a/b", ".", "..", "tx.v2", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if CheckTopic(name) != nil {
			return
		}
		if name == "" || name == "." || name == ".." || len(name)+len(".card-state") > 249 {
			t.Fatalf("accepted %q", name)
		}
		for _, r := range name {
			if !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", r) {
				t.Fatalf("accepted %q with %q", name, r)
			}
		}
	})
}

// FuzzParseDuration: what DB_CONNECT_TIMEOUT takes is a positive duration.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"60s", "2m", "5", "0.5", "-1", "NaN", "1e300", "soon"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := parseDuration(s); err == nil && d <= 0 {
			t.Fatalf("%q: %v", s, d)
		}
	})
}

func TestCompression(t *testing.T) {
	clearEnv(t)
	t.Chdir(t.TempDir())
	c, err := load(t)
	if err != nil || c.KafkaCompression != DefaultCompression {
		t.Fatalf("default compression: %+v, %v", c, err)
	}
	for _, name := range Compressions {
		t.Setenv("KAFKA_COMPRESSION", strings.ToUpper(name))
		c, err := load(t)
		if err != nil || c.KafkaCompression != name {
			t.Fatalf("KAFKA_COMPRESSION=%s: %+v, %v", strings.ToUpper(name), c, err)
		}
		if got := Codec(name); name != "none" && got == Codec("none") {
			t.Errorf("%s has no codec", name)
		}
	}
	c, err = load(t, "--kafka-compression", "zstd")
	if err != nil || c.KafkaCompression != "zstd" {
		t.Fatalf("--kafka-compression zstd over the environment: %+v, %v", c, err)
	}
	if c.KafkaCardsTopic != "txpipe.cards" || c.KafkaCustomersTopic != "txpipe.customers" {
		t.Fatalf("master-data topics %q, %q", c.KafkaCardsTopic, c.KafkaCustomersTopic)
	}
}
