package mysqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"strings"

	"github.com/pressly/goose/v3"
	"github.com/txpipe/txpipe/migrations"
)

// Migrate applies the pending migrations of migrations.FS. Processes that
// migrate the same database at the same time take turns on an advisory
// lock (GET_LOCK); the second one finds nothing left to do. An error names
// the migration that failed.
func Migrate(ctx context.Context, db *sql.DB) error {
	return migrate(ctx, db, slog.New(slog.DiscardHandler))
}

// NewMigrations returns the migrations of txpipe's schema (the SQL files of
// package migrations and the Go migrations here), for tools and tests that
// step through them. Out of order: a migration numbered below one already
// applied (whose version row an interrupted run did not write, say) is
// applied rather than refused.
func NewMigrations(db *sql.DB) (*goose.Provider, error) {
	return goose.NewProvider(goose.DialectMySQL, db, migrations.FS,
		goose.WithSessionLocker(advisoryLock{}),
		goose.WithDisableGlobalRegistry(true),
		goose.WithAllowOutofOrder(true),
		goose.WithGoMigrations(positionsMigration, serveMigration))
}

func migrate(ctx context.Context, db *sql.DB, log *slog.Logger) error {
	p, err := NewMigrations(db)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	results, err := p.Up(ctx)
	for _, r := range results {
		log.Info("migration applied", "migration", migrationName(r.Source), "duration", r.Duration)
	}
	if err != nil {
		var pe *goose.PartialError
		if errors.As(err, &pe) && pe.Failed != nil && pe.Failed.Source != nil {
			return fmt.Errorf("migration %s failed: %w", migrationName(pe.Failed.Source), pe.Err)
		}
		return fmt.Errorf("migrations: %w", err)
	}
	if err := verifySchema(ctx, db); err != nil {
		return err
	}
	return verifyIndexes(ctx, db)
}

// migrationName names a migration in logs and errors: its file, or its
// version for a Go migration.
func migrationName(s *goose.Source) string {
	if s.Path == "" {
		return fmt.Sprintf("version %d (Go)", s.Version)
	}
	return path.Base(s.Path)
}

// verifySchema checks that every table the migrations create has their
// columns. The migrations create tables IF NOT EXISTS (so one interrupted
// halfway can run again); this catches a table of the same name that was
// there before them.
func verifySchema(ctx context.Context, db *sql.DB) error {
	want, err := migrationColumns()
	if err != nil {
		return err
	}
	have := map[string]map[string]bool{}
	rows, err := db.QueryContext(ctx, "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()")
	if err != nil {
		return fmt.Errorf("migrations: read the schema: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var table, col string
		if err := rows.Scan(&table, &col); err != nil {
			return fmt.Errorf("migrations: read the schema: %w", err)
		}
		if have[strings.ToLower(table)] == nil {
			have[strings.ToLower(table)] = map[string]bool{}
		}
		have[strings.ToLower(table)][strings.ToLower(col)] = true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("migrations: read the schema: %w", err)
	}
	for _, t := range want {
		var missing []string
		for _, c := range t.cols {
			if !have[t.name][c] {
				missing = append(missing, c)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("migrations: table %s lacks the columns %s: a table of that name that txpipe did not create? Rename or drop it", t.name, strings.Join(missing, ", "))
		}
	}
	return nil
}

type migratedTable struct {
	name string
	cols []string
}

var createTable = regexp.MustCompile(`(?i)^CREATE TABLE IF NOT EXISTS\s+` + "`?" + `(\w+)` + "`?" + `\s*\(`)

// migrationColumns lists the tables the migrations create and their
// columns, read from the migrations themselves.
func migrationColumns() ([]migratedTable, error) {
	files, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return nil, err
	}
	var out []migratedTable
	for _, f := range files {
		b, err := fs.ReadFile(migrations.FS, f)
		if err != nil {
			return nil, err
		}
		var cur *migratedTable
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if m := createTable.FindStringSubmatch(line); m != nil {
				out = append(out, migratedTable{name: strings.ToLower(m[1])})
				cur = &out[len(out)-1]
				continue
			}
			if cur == nil || line == "" || strings.HasPrefix(line, "--") {
				continue
			}
			if strings.HasPrefix(line, ")") {
				cur = nil
				continue
			}
			word := strings.Trim(strings.Fields(line)[0], "`,")
			switch strings.ToUpper(word) {
			case "PRIMARY", "KEY", "UNIQUE", "INDEX", "CONSTRAINT", "FOREIGN", "CHECK":
				continue
			}
			cur.cols = append(cur.cols, strings.ToLower(word))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("migrations: no CREATE TABLE found")
	}
	// The columns Go migrations add.
	for _, add := range positionColumns {
		for i := range out {
			if out[i].name == add.name {
				out[i].cols = append(out[i].cols, add.cols...)
			}
		}
	}
	return out, nil
}

// advisoryLock serialises migrations of one database across processes with
// GET_LOCK, which MySQL and MariaDB both have. The lock is the session's:
// it goes away with the connection if the process dies.
type advisoryLock struct{}

// The name is at most 64 characters (MySQL's limit), whatever the
// database's name.
const lockName = "CONCAT('txpipe-migrate-', SHA1(DATABASE()))"

func (advisoryLock) SessionLock(ctx context.Context, conn *sql.Conn) error {
	for {
		var got sql.NullInt64
		if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK("+lockName+", 5)").Scan(&got); err != nil {
			return fmt.Errorf("migrations: take the migration lock: %w", err)
		}
		if got.Valid && got.Int64 == 1 {
			return nil
		}
		if !got.Valid {
			return errors.New("migrations: take the migration lock: GET_LOCK returned NULL (no database selected?)")
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("migrations: waiting for the migration lock: %w", err)
		}
	}
}

func (advisoryLock) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	var released sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT RELEASE_LOCK("+lockName+")").Scan(&released); err != nil {
		return fmt.Errorf("migrations: release the migration lock: %w", err)
	}
	return nil
}
