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

	"github.com/txpipe/txpipe/internal/retry"
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
	loadData       bool // try LOAD DATA LOCAL INFILE for bulk loads
	streamBatch    int  // rows per INSERT statement of WriteStream
	insertBatch    int  // rows per INSERT statement of the bulk fallback
	migrate        bool
	connectTimeout time.Duration
}

// DefaultConnectTimeout is how long Open waits for a server that does not
// answer, unless told otherwise (WithConnectTimeout).
const DefaultConnectTimeout = time.Minute

// pingTimeout bounds one attempt to reach the server: a server that
// accepts connections and never answers costs at most this per attempt.
const pingTimeout = 10 * time.Second

// WithConnectTimeout bounds how long Open waits for the server to answer
// (default DefaultConnectTimeout); after it, Open fails with an error that
// wraps retry.ErrBound and names the address.
func WithConnectTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.connectTimeout = d
		}
	}
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
// waits for the server with exponential backoff (100 ms up to 5 s) at most
// the connect timeout (WithConnectTimeout) or until ctx ends, and applies
// the migrations. The first failure and the recovery are logged once.
//
// Errors that waiting cannot cure fail at once, and IsPermanent reports
// them: access denied (wrong user or password, no privileges on the
// database or a table), a database name MySQL cannot take, a database
// that does not exist and cannot be created. Every error names the
// address and the database.
func Open(ctx context.Context, cfg *mysql.Config, log *slog.Logger, opts ...Option) (*DB, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o := options{loadData: true, streamBatch: 1000, insertBatch: 1000, migrate: true, connectTimeout: DefaultConnectTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	where := cfg.Addr + "/" + cfg.DBName
	if err := CheckDatabaseName(cfg.DBName); err != nil {
		return nil, retry.Permanent(fmt.Errorf("mysql %s: %w", where, err))
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
			if IsPermanent(err) {
				return nil, retry.Permanent(fmt.Errorf("mysql %s: %s: %w", where, hint(err), err))
			}
			return nil, fmt.Errorf("mysql %s: %w", where, err)
		}
	}
	return db, nil
}

// wait pings the server until it answers, creating the database when the
// server says it does not exist.
func (db *DB) wait(ctx context.Context, cfg *mysql.Config) error {
	bound := db.opts.connectTimeout
	start := time.Now()
	created := false
	attempt := func(ctx context.Context) error {
		// Never past the bound: a server that accepts connections and
		// never answers must not hold the wait beyond it.
		pctx, cancel := context.WithTimeout(ctx, max(min(pingTimeout, bound-time.Since(start)), 50*time.Millisecond))
		defer cancel()
		err := db.SQL.PingContext(pctx)
		if mysqlErrNo(err) == 1049 && !created { // unknown database
			if err = createDatabase(ctx, cfg); err == nil {
				db.log.Info("database created")
				created = true
				err = db.SQL.PingContext(pctx)
			}
		}
		switch {
		case err == nil:
			return nil
		case IsPermanent(err):
			return retry.Permanent(fmt.Errorf("%s: %w", hint(err), err))
		case pctx.Err() != nil && ctx.Err() == nil:
			return fmt.Errorf("no answer within %s: %w", time.Since(start).Round(time.Millisecond), err)
		}
		return err
	}
	err := retry.Do(ctx, retry.Policy{
		What:  "mysql " + cfg.Addr + "/" + cfg.DBName,
		Bound: bound,
		Log:   db.log,
	}, attempt)
	if err != nil {
		return err
	}
	db.log.Debug("database reachable")
	return nil
}

// hint says in words what a permanent error means for the user.
func hint(err error) string {
	switch n := mysqlErrNo(err); {
	case n == 1045 || n == 1698:
		return "access denied: check DB_USER and DB_PASSWORD"
	case n == 1044:
		return "access denied to the database: grant the user its privileges on it, or set another DB_NAME"
	case n == 1049:
		return "the database does not exist and cannot be created"
	case n == 1102 || n == 1103 || errors.Is(err, ErrInvalidName):
		return "invalid database name: check DB_NAME"
	case n == 1130:
		return "this host may not connect to the server"
	case n == 1142 || n == 1143 || n == 1227 || n == 1370:
		return "missing privileges: grant the user all privileges on the database (txpipe creates and alters its tables)"
	case n != 0:
		return "the server refuses (missing privileges or account settings)"
	}
	return "the server refuses the connection"
}

// ErrInvalidName is wrapped by the error of a database name that txpipe
// does not take.
var ErrInvalidName = errors.New("invalid database name")

var dbNameRE = regexp.MustCompile(`^[A-Za-z0-9_$-]{1,64}$`)

// CheckDatabaseName checks a database name: 1 to 64 ASCII letters,
// digits, '_', '$' or '-' (names MySQL and MariaDB take on every file
// system; '-' is quoted).
func CheckDatabaseName(name string) error {
	if !dbNameRE.MatchString(name) {
		return fmt.Errorf("%w %q: use 1 to 64 letters, digits, '_', '$' or '-'", ErrInvalidName, name)
	}
	return nil
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
	if err := CheckDatabaseName(cfg.DBName); err != nil {
		return err
	}
	name := "`" + cfg.DBName + "`"
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

// IsPermanent reports whether err is one that waiting cannot cure, so a
// caller should fail at once instead of retrying: access denied (wrong
// user or password, an account that may not connect from here, missing
// privileges on the database, a table or a command), a database name
// MySQL refuses or that does not exist, an authentication method the
// driver does not support, or an error marked retry.Permanent.
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	if retry.IsPermanent(err) || errors.Is(err, ErrInvalidName) {
		return true
	}
	switch mysqlErrNo(err) {
	case 1044, // access denied for user to database
		1045, // access denied for user (wrong password)
		1049, // unknown database
		1102, // incorrect database name
		1103, // incorrect table name
		1130, // host is not allowed to connect
		1142, // command denied to user for table
		1143, // column command denied
		1227, // access denied: needs a privilege
		1251, // client does not support the authentication protocol
		1370, // routine command denied
		1698, // access denied (auth_socket)
		1820, // must reset the password first
		1862, // password expired
		3118, // MySQL: account locked
		4151: // MariaDB: account locked
		return true
	}
	return errors.Is(err, mysql.ErrNativePassword) || errors.Is(err, mysql.ErrOldPassword) ||
		errors.Is(err, mysql.ErrCleartextPassword) || errors.Is(err, mysql.ErrUnknownPlugin)
}

// IsTransient reports whether err is worth retrying with backoff: the
// connection was refused, reset or lost, the server went away or is
// shutting down, or the transaction lost a lock wait or a deadlock.
// A cancelled context is not transient.
func IsTransient(err error) bool {
	if err == nil || IsPermanent(err) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
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
