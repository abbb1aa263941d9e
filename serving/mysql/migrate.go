package mysqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path"

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

func migrate(ctx context.Context, db *sql.DB, log *slog.Logger) error {
	p, err := goose.NewProvider(goose.DialectMySQL, db, migrations.FS,
		goose.WithSessionLocker(advisoryLock{}),
		goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	results, err := p.Up(ctx)
	for _, r := range results {
		log.Info("migration applied", "migration", path.Base(r.Source.Path), "duration", r.Duration)
	}
	if err != nil {
		var pe *goose.PartialError
		if errors.As(err, &pe) && pe.Failed != nil && pe.Failed.Source != nil {
			return fmt.Errorf("migration %s failed: %w", path.Base(pe.Failed.Source.Path), pe.Err)
		}
		return fmt.Errorf("migrations: %w", err)
	}
	return nil
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
