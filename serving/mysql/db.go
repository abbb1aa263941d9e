// Package mysqlstore is the MySQL side of the serving layer: it opens and
// migrates the database, bulk-loads the dataset and result files, feeds the
// producer from the transactions table and writes the stream sink's rows
// together with its Kafka offsets, exactly once.
//
// Every statement runs on MySQL 8 and MariaDB 10.11 alike and is
// parameterised; identifiers that cannot be parameters (table and column
// names) are checked against a strict pattern and quoted.
package mysqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// DB is an open, migrated txpipe database.
type DB struct {
	SQL *sql.DB

	log  *slog.Logger
	opts options

	// noLoadData is set once the server refused LOAD DATA LOCAL INFILE:
	// every later bulk load goes straight to multi-row INSERT.
	noLoadData   atomic.Bool
	refusedOnce  sync.Once
	stmtMu       sync.Mutex
	stmts        map[string]*sql.Stmt
	testHookRows func(n int) // called after each bulk batch; tests cancel contexts with it
	testRefuse   bool        // tests: act as if the server refused LOAD DATA LOCAL
}

type options struct {
	loadData    bool // try LOAD DATA LOCAL INFILE for bulk loads
	streamBatch int  // rows per INSERT statement of WriteStream
	insertBatch int  // rows per INSERT statement of the bulk fallback
	migrate     bool
}

// Option tunes Open.
type Option func(*options)

// WithLoadData says whether bulk loads may use LOAD DATA LOCAL INFILE
// (default true). With false they always use multi-row INSERT, as they do
// anyway once the server refused local infile.
func WithLoadData(enabled bool) Option { return func(o *options) { o.loadData = enabled } }

// WithMigrations says whether Open applies the migrations (default true).
func WithMigrations(enabled bool) Option { return func(o *options) { o.migrate = enabled } }

// WithBatchRows sets how many rows go into one multi-row INSERT statement
// of WriteStream and of the bulk loads' INSERT fallback (default 1000).
func WithBatchRows(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.streamBatch, o.insertBatch = n, n
		}
	}
}

// defaultSQLMode is the session sql_mode unless the DSN sets one: strict,
// so that a value that does not fit is an error rather than a silent
// truncation, and without NO_BACKSLASH_ESCAPES, which LOAD DATA's ESCAPED
// BY '\\' relies on. Every mode exists in MySQL 8 and MariaDB 10.11.
const defaultSQLMode = "'STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'"

// Open connects to the database of cfg, creating it when it does not exist,
// waits for the server with exponential backoff (100 ms up to 5 s) until
// ctx ends, and applies the migrations. Each change between reachable and
// unreachable is logged once.
func Open(ctx context.Context, cfg *mysql.Config, log *slog.Logger, opts ...Option) (*DB, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o := options{loadData: true, streamBatch: 1000, insertBatch: 1000, migrate: true}
	for _, opt := range opts {
		opt(&o)
	}
	if cfg.DBName == "" {
		return nil, errors.New("mysql: no database name in the configuration")
	}
	c := cfg.Clone()
	c.ParseTime = true
	c.InterpolateParams = true // one round trip per parameterised statement
	c.MultiStatements = false
	c.Loc = time.UTC // DATETIME values are wall-clock times: never shift them
	// LOAD DATA LOCAL only ever reads our own registered readers
	// (Reader::name), never files: AllowAllFiles stays off.
	c.AllowAllFiles = false
	if c.Params == nil {
		c.Params = map[string]string{}
	}
	if _, ok := c.Params["sql_mode"]; !ok {
		c.Params["sql_mode"] = defaultSQLMode
	}
	conn, err := mysql.NewConnector(c)
	if err != nil {
		return nil, fmt.Errorf("mysql: %w", err)
	}
	sqlDB := sql.OpenDB(conn)
	sqlDB.SetMaxIdleConns(8)
	sqlDB.SetConnMaxLifetime(10 * time.Minute)
	db := &DB{SQL: sqlDB, log: log.With("db", c.DBName, "addr", c.Addr), opts: o, stmts: map[string]*sql.Stmt{}}
	if err := db.wait(ctx, c); err != nil {
		sqlDB.Close()
		return nil, err
	}
	if o.migrate {
		if err := migrate(ctx, sqlDB, db.log); err != nil {
			sqlDB.Close()
			return nil, err
		}
	}
	return db, nil
}

// wait pings the server until it answers, creating the database when the
// server says it does not exist.
func (db *DB) wait(ctx context.Context, cfg *mysql.Config) error {
	const (
		firstDelay = 100 * time.Millisecond
		maxDelay   = 5 * time.Second
	)
	delay := firstDelay
	unreachable := false
	created := false
	for {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := db.SQL.PingContext(pctx)
		cancel()
		if err == nil {
			if unreachable {
				db.log.Info("database reachable")
			} else {
				db.log.Debug("database reachable")
			}
			return nil
		}
		if mysqlErrNo(err) == 1049 && !created { // unknown database
			if err = createDatabase(ctx, cfg); err == nil {
				db.log.Info("database created")
				created = true
				continue
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("mysql %s: database unreachable: %w (last error: %v)", cfg.Addr, ctx.Err(), err)
		}
		switch mysqlErrNo(err) {
		case 1044, 1045, 1698, 1049: // access denied, unknown database: waiting will not help
			return fmt.Errorf("mysql %s: %w", cfg.Addr, err)
		}
		if !unreachable {
			unreachable = true
			db.log.Warn("database unreachable, retrying", "err", err, "next_retry", delay)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("mysql %s: database unreachable: %w (last error: %v)", cfg.Addr, ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, maxDelay)
	}
}

// createDatabase creates cfg.DBName, connecting without a database.
func createDatabase(ctx context.Context, cfg *mysql.Config) error {
	c := cfg.Clone()
	c.DBName = ""
	conn, err := mysql.NewConnector(c)
	if err != nil {
		return err
	}
	admin := sql.OpenDB(conn)
	defer admin.Close()
	name, err := quoteIdent(cfg.DBName)
	if err != nil {
		return err
	}
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS "+name+" CHARACTER SET utf8mb4"); err != nil {
		return fmt.Errorf("create database %s: %w", cfg.DBName, err)
	}
	return nil
}

// Close closes the connection pool.
func (db *DB) Close() error {
	db.stmtMu.Lock()
	for k, s := range db.stmts {
		s.Close()
		delete(db.stmts, k)
	}
	db.stmtMu.Unlock()
	return db.SQL.Close()
}

// CountRows counts the rows of a table.
func (db *DB) CountRows(ctx context.Context, table string) (int64, error) {
	t, err := quoteIdent(table)
	if err != nil {
		return 0, err
	}
	var n int64
	if err := db.SQL.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+t).Scan(&n); err != nil {
		return 0, fmt.Errorf("count %s: %w", table, err)
	}
	return n, nil
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]{0,63}$`)

// quoteIdent checks and backtick-quotes a table or column name.
func quoteIdent(name string) (string, error) {
	if !identRE.MatchString(name) {
		return "", fmt.Errorf("invalid SQL identifier %q", name)
	}
	return "`" + name + "`", nil
}

func mysqlErrNo(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// IsTransient reports whether err is worth retrying with backoff: the
// connection was refused, reset or lost, the server went away or is
// shutting down, or the transaction lost a lock wait or a deadlock.
// A cancelled context is not transient.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, errRaced) {
		return true
	}
	switch mysqlErrNo(err) {
	case 1040, // too many connections
		1053, // server shutdown in progress
		1205, // lock wait timeout
		1213, // deadlock
		1927, // MariaDB: connection killed
		2006, // server has gone away
		2013, // lost connection during query
		4031: // MySQL: disconnected by the server because of inactivity
		return true
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ETIMEDOUT) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe)
}
