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
