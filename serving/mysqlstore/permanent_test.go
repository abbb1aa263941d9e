package mysqlstore

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/txpipe/txpipe/internal/mysqltest"
	"github.com/txpipe/txpipe/internal/retry"
)

// generous bounds a call that must end: far above what it takes, so that
// a busy machine never fails the test, and far below "forever".
const generous = 45 * time.Second

// openWithin runs Open with a connect timeout and fails the test when it
// does not return within generous.
func openWithin(t *testing.T, cfg *mysql.Config, connect time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		db, err := Open(context.Background(), cfg, slog.New(slog.DiscardHandler), WithConnectTimeout(connect))
		if db != nil {
			db.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(generous):
		t.Fatalf("Open still waits after %s", generous)
		return nil
	}
}

// TestOpenPermanentErrors: errors that waiting cannot cure fail at once,
// even with a connect timeout far longer than the test's bound, with a
// message naming the address, the database and what to check.
func TestOpenPermanentErrors(t *testing.T) {
	db := mysqltest.NewDatabase(t)
	noGrants, noGrantsPW := mysqltest.NewUser(t)
	reader, readerPW := mysqltest.NewUser(t, "SELECT ON `"+db.DBName+"`.*")
	for _, tc := range []struct {
		name string
		cfg  func(c *mysql.Config)
		says string
	}{
		{"wrong password", func(c *mysql.Config) { c.User, c.Passwd = noGrants, "wrong" }, "access denied: check DB_USER and DB_PASSWORD: Error 1045"},
		{"unknown user", func(c *mysql.Config) { c.User, c.Passwd = "txpipe_nobody", "x" }, "Error 1045"},
		{"no privileges on the database", func(c *mysql.Config) { c.User, c.Passwd = noGrants, noGrantsPW }, "access denied to the database: grant the user its privileges on it, or set another DB_NAME: Error 1044"},
		{"a database the user cannot create", func(c *mysql.Config) { c.User, c.Passwd, c.DBName = noGrants, noGrantsPW, c.DBName+"_new" }, "Error 1044"},
		{"no privilege to migrate", func(c *mysql.Config) { c.User, c.Passwd = reader, readerPW }, "Error 1142"},
		{"invalid database name", func(c *mysql.Config) { c.DBName = "bad/name" }, `invalid database name "bad/name"`},
		{"database name with a space", func(c *mysql.Config) { c.DBName = "bad name" }, `invalid database name "bad name"`},
		{"database name too long", func(c *mysql.Config) { c.DBName = strings.Repeat("d", 65) }, "invalid database name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := db.Clone()
			tc.cfg(cfg)
			start := time.Now()
			err := openWithin(t, cfg, 10*time.Minute)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			if !IsPermanent(err) || !retry.IsPermanent(err) || IsTransient(err) {
				t.Errorf("%v: IsPermanent %v, retry.IsPermanent %v, IsTransient %v", err, IsPermanent(err), retry.IsPermanent(err), IsTransient(err))
			}
			if want := "mysql " + cfg.Addr + "/" + cfg.DBName + ": "; !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q; want it to start with %q and say %q", err, want, tc.says)
			}
			t.Logf("%v, after %s", err, time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestOpenGivesUpAtItsBound: a port where nothing listens and a listener
// that accepts and never answers both end the wait at the connect
// timeout, with an error that wraps retry.ErrBound and names the address.
func TestOpenGivesUpAtItsBound(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		var held []net.Conn // accepted and never answered
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	for _, tc := range []struct{ name, addr string }{{"nothing listens", closedAddr}, {"a listener that never answers", silent.Addr().String()}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mysql.NewConfig()
			cfg.User, cfg.Net, cfg.Addr, cfg.DBName = "root", "tcp", tc.addr, "txpipe"
			err := openWithin(t, cfg, 2*time.Second)
			if !errors.Is(err, retry.ErrBound) || IsPermanent(err) {
				t.Fatalf("Open = %v, want the bound (retry.ErrBound), not a permanent error", err)
			}
			if !strings.HasPrefix(err.Error(), "mysql "+tc.addr+"/txpipe: gave up after ") {
				t.Errorf("error %q does not name the address first", err)
			}
		})
	}
}

func TestCheckDatabaseName(t *testing.T) {
	for _, ok := range []string{"txpipe", "txpipe-prod", "t_1", "$x", strings.Repeat("d", 64)} {
		if err := CheckDatabaseName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a/b", "a.b", "a b", "a`b", "tëst", "a\x00", strings.Repeat("d", 65)} {
		if err := CheckDatabaseName(bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
