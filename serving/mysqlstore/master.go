package mysqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/serving/csvfile"
)

// LoadMaster replaces the customers, credit_card_types and cards tables
// with m in one transaction: readers see the old master data or the new,
// never a mix.
func (db *DB) LoadMaster(ctx context.Context, m *txpipe.Master) error {
	return db.inTx(ctx, func(tx *sql.Tx) error { return db.loadMaster(ctx, tx, m) })
}

// LoadInitial replaces the master data with m and the transactions table
// with the rows of a transactions.csv, all in one transaction: a failure
// anywhere leaves every table as it was. It returns what
// LoadTransactions returns.
func (db *DB) LoadInitial(ctx context.Context, m *txpipe.Master, transactions string) (loaded int, rejected []txpipe.Rejected, err error) {
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		if err := db.loadMaster(ctx, tx, m); err != nil {
			return err
		}
		loaded, rejected, err = db.loadTransactions(ctx, tx, transactions)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	return loaded, rejected, nil
}

func (db *DB) loadMaster(ctx context.Context, tx *sql.Tx, m *txpipe.Master) error {
	for _, t := range []string{"cards", "credit_card_types", "customers"} {
		if _, err := tx.ExecContext(ctx, "DELETE FROM `"+t+"`"); err != nil {
			return fmt.Errorf("load master data: empty %s: %w", t, err)
		}
	}
	steps := []struct {
		table string
		cols  []string
		src   rowSource
	}{
		{"customers", csvfile.CustomerColumns, sliceSource(len(m.Customers), func(i int, r []any) []any {
			c := &m.Customers[i]
			return append(r, c.ID, c.Name, c.Phone, c.Address, c.Email, c.CreditScore, c.AnnualIncome)
		})},
		{"credit_card_types", csvfile.CardTypeColumns, sliceSource(len(m.CardTypes), func(i int, r []any) []any {
			c := &m.CardTypes[i]
			return append(r, c.ID, c.Name, c.ScoreMin, c.ScoreMax, c.LimitMin, c.LimitMax, c.AnnualFee, c.RewardsRate)
		})},
		{"cards", csvfile.CardColumns, sliceSource(len(m.Cards), func(i int, r []any) []any {
			c := &m.Cards[i]
			return append(r, c.ID, c.CustomerID, c.CardTypeID, c.Number, c.Expiration, c.CreditLimit, c.CurrentBalance, c.IssueDate)
		})},
	}
	for _, s := range steps {
		if _, err := db.load(ctx, tx, bulkTable{name: s.table, cols: s.cols}, s.src); err != nil {
			return fmt.Errorf("load master data into %s: %w", s.table, err)
		}
	}
	return nil
}

// inTx runs fn in a transaction, committing when it returns nil.
func (db *DB) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.SQL.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
