package config

import (
	"testing"

	"github.com/spf13/pflag"
)

// TestAPISettings: serve's --addr wins over TXPIPE_API_ADDR, which wins
// over the loopback default; the token comes from the environment only,
// and no other command has --addr.
func TestAPISettings(t *testing.T) {
	clearEnv(t)
	t.Chdir(t.TempDir())
	serve := func(args ...string) *Config {
		t.Helper()
		fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
		Flags(fs)
		CommandFlags(fs, "serve")
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		c, err := Load(fs)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := serve(); c.APIAddr != "127.0.0.1:8080" || c.APIToken != "" {
		t.Errorf("defaults: addr %q, token %q", c.APIAddr, c.APIToken)
	}
	t.Setenv("TXPIPE_API_ADDR", "127.0.0.1:9999")
	t.Setenv("TXPIPE_API_TOKEN", " secret\n")
	if c := serve(); c.APIAddr != "127.0.0.1:9999" || c.APIToken != "secret" {
		t.Errorf("environment: addr %q, token %q", c.APIAddr, c.APIToken)
	}
	if c := serve("--addr", "0.0.0.0:8081"); c.APIAddr != "0.0.0.0:8081" {
		t.Errorf("flag: addr %q", c.APIAddr)
	}
	other := pflag.NewFlagSet("consume", pflag.ContinueOnError)
	Flags(other)
	if other.Lookup("addr") != nil {
		t.Error("--addr is a flag of every command, want serve only")
	}
	if other.Lookup("api-token") != nil || other.Lookup("token") != nil {
		t.Error("the API token must not be a flag")
	}
}
