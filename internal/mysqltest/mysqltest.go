// Package mysqltest gives tests a fresh database on a real MySQL or MariaDB
// server and drops it when the test ends.
package mysqltest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// DefaultDSN is the server tests use unless TXPIPE_TEST_MYSQL_DSN says
// otherwise: the local MariaDB of the development machines and CI.
const DefaultDSN = "root@tcp(127.0.0.1:3306)/"

// Server returns the parsed DSN of the test server. Where it cannot be
// reached the test is skipped, or fails when CI is set (CI must test SQL).
func Server(tb testing.TB) *mysql.Config {
	tb.Helper()
	dsn := os.Getenv("TXPIPE_TEST_MYSQL_DSN")
	if dsn == "" {
		dsn = DefaultDSN
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		tb.Fatalf("TXPIPE_TEST_MYSQL_DSN: %v", err)
	}
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = db.PingContext(ctx)
		cancel()
		db.Close()
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("MySQL/MariaDB test server %s unreachable: %v", cfg.Addr, err)
		}
		tb.Skipf("MySQL/MariaDB test server %s unreachable (set TXPIPE_TEST_MYSQL_DSN): %v", cfg.Addr, err)
	}
	return cfg
}

// NewDatabase creates an empty database with a unique name on the test
// server and drops it when the test ends. It returns the DSN's config with
// DBName set to it.
func NewDatabase(tb testing.TB) *mysql.Config {
	tb.Helper()
	cfg := Server(tb)
	var b [6]byte
	rand.Read(b[:])
	name := "txpipe_test_" + hex.EncodeToString(b[:])
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := admin.Exec("CREATE DATABASE `" + name + "`"); err != nil {
		admin.Close()
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() {
		if _, err := admin.Exec("DROP DATABASE IF EXISTS `" + name + "`"); err != nil {
			tb.Errorf("drop test database %s: %v", name, err)
		}
		admin.Close()
	})
	c := cfg.Clone()
	c.DBName = name
	return c
}

// NewUser creates a user with a random name and password on the test
// server, for 'localhost' and '%' alike, and drops it when the test ends.
// Each grant is a privilege list and its object, such as
// "SELECT ON `db`.*"; without grants the user may only connect.
func NewUser(tb testing.TB, grants ...string) (user, password string) {
	tb.Helper()
	cfg := Server(tb)
	var b [6]byte
	rand.Read(b[:])
	user = "txpipe_u_" + hex.EncodeToString(b[:])
	rand.Read(b[:])
	password = "pw-" + hex.EncodeToString(b[:])
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		tb.Fatal(err)
	}
	hosts := []string{"localhost", "%"}
	tb.Cleanup(func() {
		for _, h := range hosts {
			if _, err := admin.Exec("DROP USER IF EXISTS '" + user + "'@'" + h + "'"); err != nil {
				tb.Errorf("drop test user %s: %v", user, err)
			}
		}
		admin.Close()
	})
	for _, h := range hosts {
		account := "'" + user + "'@'" + h + "'"
		if _, err := admin.Exec("CREATE USER " + account + " IDENTIFIED BY '" + password + "'"); err != nil {
			tb.Fatalf("create test user: %v", err)
		}
		for _, g := range grants {
			if _, err := admin.Exec("GRANT " + g + " TO " + account); err != nil {
				tb.Fatalf("grant %s: %v", g, err)
			}
		}
	}
	return user, password
}
