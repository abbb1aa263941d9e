package batch

import (
	"bufio"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/serving/mysqlstore"
)

// The views the batch replaces, each built as <name>_next and swapped in.
const (
	batchTable     = "batch_transactions"
	cardsTable     = "cards_updated"
	customersTable = "customers_updated"
	cutoffsTable   = "batch_cutoffs"
)

// viewTables are swapped in together: a reader sees the views and the
// cut-off of one run.
var viewTables = []string{batchTable, cardsTable, customersTable, cutoffsTable}

const (
	cardColumnList     = "card_id, customer_id, card_type_id, card_number, expiration_date, credit_limit, current_balance, issue_date"
	customerColumnList = "customer_id, name, phone_number, address, email, credit_score, annual_income"
	cardTypeColumnList = "card_type_id, name, credit_score_min, credit_score_max, credit_limit_min, credit_limit_max, annual_fee, rewards_rate"
)

var (
	cardColumns     = strings.Split(cardColumnList, ", ")
	customerColumns = strings.Split(customerColumnList, ", ")
)

// lockExpr names the advisory lock that keeps two batch runs on one
// database apart. GET_LOCK is server-wide, hence the database's name.
const lockExpr = "CONCAT('txpipe_batch:', LEFT(SHA1(IFNULL(DATABASE(), '')), 40))"

func acquireLock(ctx context.Context, conn *sql.Conn) error {
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK("+lockExpr+", 0)").Scan(&got); err != nil {
		return fmt.Errorf("take the batch lock: %w", err)
	}
	if !got.Valid || got.Int64 != 1 {
		return errors.New("another batch run holds the batch lock on this database")
	}
	return nil
}

// releaseConn releases the batch lock and returns conn to the pool; when
// the lock cannot be released the connection is discarded (which releases
// it on the server).
func releaseConn(conn *sql.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := conn.ExecContext(ctx, "DO RELEASE_LOCK("+lockExpr+")"); err != nil {
		conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	conn.Close()
}

// prepareTables drops what a killed run may have left and creates the
// empty <view>_next tables of tables.
func prepareTables(ctx context.Context, conn *sql.Conn, tables []string) error {
	var drop []string
	for _, t := range tables {
		drop = append(drop, "`"+t+"_next`", "`"+t+"_old`")
	}
	if _, err := conn.ExecContext(ctx, "DROP TABLE IF EXISTS "+strings.Join(drop, ", ")); err != nil {
		return fmt.Errorf("drop leftover tables: %w", err)
	}
	for _, t := range tables {
		if _, err := conn.ExecContext(ctx, "CREATE TABLE `"+t+"_next` LIKE `"+t+"`"); err != nil {
			return fmt.Errorf("create %s_next (are the migrations applied?): %w", t, err)
		}
	}
	return nil
}

// dropNext drops the <view>_next tables of a failed run.
func dropNext(db *sql.DB, tables []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var drop []string
	for _, t := range tables {
		drop = append(drop, "`"+t+"_next`")
	}
	_, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS "+strings.Join(drop, ", "))
	return err
}

// swapTables puts the new views of tables in place with one atomic
// RENAME and drops the previous ones.
func swapTables(ctx context.Context, conn *sql.Conn, tables []string) (dropErr error, err error) {
	var ren, old []string
	for _, t := range tables {
		ren = append(ren, "`"+t+"` TO `"+t+"_old`", "`"+t+"_next` TO `"+t+"`")
		old = append(old, "`"+t+"_old`")
	}
	if _, err := conn.ExecContext(ctx, "RENAME TABLE "+strings.Join(ren, ", ")); err != nil {
		return nil, fmt.Errorf("swap in the new views: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "DROP TABLE IF EXISTS "+strings.Join(old, ", ")); err != nil {
		return fmt.Errorf("drop the previous views: %w", err), nil
	}
	return nil, nil
}

// readMasterMySQL reads customers and cards (sorted by id) and checks them
// as csvfile.ReadMaster does.
func readMasterMySQL(ctx context.Context, tx *sql.Tx) (*txpipe.Master, error) {
	var m txpipe.Master
	hasCustomer := map[int64]bool{}
	err := queryRows(ctx, tx, "customers", "SELECT "+customerColumnList+" FROM customers ORDER BY customer_id",
		func(rows *sql.Rows, n int) error {
			var c txpipe.Customer
			var income string
			if err := rows.Scan(&c.ID, &c.Name, &c.Phone, &c.Address, &c.Email, &c.CreditScore, &income); err != nil {
				return err
			}
			var err error
			if c.AnnualIncome, err = txpipe.ParseMoney(income); err != nil {
				return fmt.Errorf("customer_id %d: annual_income: %w", c.ID, err)
			}
			m.Customers = append(m.Customers, c)
			hasCustomer[c.ID] = true
			return nil
		})
	if err != nil {
		return nil, err
	}
	hasType := map[int64]bool{}
	err = queryRows(ctx, tx, "credit_card_types", "SELECT "+cardTypeColumnList+" FROM credit_card_types ORDER BY card_type_id",
		func(rows *sql.Rows, n int) error {
			var t txpipe.CardType
			var limitMin, limitMax, fee string
			if err := rows.Scan(&t.ID, &t.Name, &t.ScoreMin, &t.ScoreMax, &limitMin, &limitMax, &fee, &t.RewardsRate); err != nil {
				return err
			}
			var err error
			for _, f := range []struct {
				name string
				s    string
				m    *txpipe.Money
			}{{"credit_limit_min", limitMin, &t.LimitMin}, {"credit_limit_max", limitMax, &t.LimitMax}, {"annual_fee", fee, &t.AnnualFee}} {
				if *f.m, err = txpipe.ParseMoney(f.s); err != nil {
					return fmt.Errorf("card_type_id %d: %s: %w", t.ID, f.name, err)
				}
			}
			m.CardTypes = append(m.CardTypes, t)
			hasType[t.ID] = true
			return nil
		})
	if err != nil {
		return nil, err
	}
	err = queryRows(ctx, tx, "cards", "SELECT "+cardColumnList+" FROM cards ORDER BY card_id",
		func(rows *sql.Rows, n int) error {
			var c txpipe.Card
			var limit, balance string
			if err := rows.Scan(&c.ID, &c.CustomerID, &c.CardTypeID, &c.Number, &c.Expiration, &limit, &balance, &c.IssueDate); err != nil {
				return err
			}
			var err error
			switch {
			case !hasCustomer[c.CustomerID]:
				return fmt.Errorf("card_id %d: customer %d does not exist in customers", c.ID, c.CustomerID)
			case !hasType[c.CardTypeID]:
				return fmt.Errorf("card_id %d: card type %d does not exist in credit_card_types", c.ID, c.CardTypeID)
			}
			if c.CreditLimit, err = txpipe.ParseMoney(limit); err != nil {
				return fmt.Errorf("card_id %d: credit_limit: %w", c.ID, err)
			}
			if c.CreditLimit <= 0 {
				return fmt.Errorf("card_id %d: credit limit %s must be above zero", c.ID, c.CreditLimit)
			}
			if c.CurrentBalance, err = txpipe.ParseMoney(balance); err != nil {
				return fmt.Errorf("card_id %d: current_balance: %w", c.ID, err)
			}
			m.Cards = append(m.Cards, c)
			return nil
		})
	if err != nil {
		return nil, err
	}
	return &m, nil
}

func queryRows(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, table, query string, scan func(*sql.Rows, int) error) error {
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return fmt.Errorf("read %s: %w", table, err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
		if err := scan(rows, n); err != nil {
			return fmt.Errorf("read %s row %d: %w", table, n, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s after row %d: %w", table, n, err)
	}
	return nil
}

// writeMasterViews fills cards_updated_next and customers_updated_next in
// one transaction with the bulk loader.
func (r *run) writeMasterViews(ctx context.Context, conn *sql.Conn, cards []txpipe.Card, customers []txpipe.Customer) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("write %s: %w", cardsTable, err)
	}
	defer tx.Rollback()
	err = r.loadSlice(ctx, tx, cardsTable+"_next", cardColumns, len(cards), func(b []byte, i int) []byte {
		c := &cards[i]
		b = strconv.AppendInt(b, c.ID, 10)
		b = append(b, '\t')
		b = strconv.AppendInt(b, c.CustomerID, 10)
		b = append(b, '\t')
		b = strconv.AppendInt(b, c.CardTypeID, 10)
		b = append(b, '\t')
		b = mysqlstore.AppendLoadText(b, c.Number)
		b = append(b, '\t')
		b = mysqlstore.AppendLoadText(b, c.Expiration)
		b = append(b, '\t')
		b = c.CreditLimit.Append(b)
		b = append(b, '\t')
		b = c.CurrentBalance.Append(b)
		b = append(b, '\t')
		b = mysqlstore.AppendLoadText(b, c.IssueDate)
		return append(b, '\n')
	}, func(row []any, i int) []any {
		c := &cards[i]
		return append(row, c.ID, c.CustomerID, c.CardTypeID, c.Number, c.Expiration, c.CreditLimit, c.CurrentBalance, c.IssueDate)
	})
	if err != nil {
		return err
	}
	err = r.loadSlice(ctx, tx, customersTable+"_next", customerColumns, len(customers), func(b []byte, i int) []byte {
		c := &customers[i]
		b = strconv.AppendInt(b, c.ID, 10)
		for _, s := range []string{c.Name, c.Phone, c.Address, c.Email} {
			b = append(b, '\t')
			b = mysqlstore.AppendLoadText(b, s)
		}
		b = append(b, '\t')
		b = strconv.AppendInt(b, c.CreditScore, 10)
		b = append(b, '\t')
		b = c.AnnualIncome.Append(b)
		return append(b, '\n')
	}, func(row []any, i int) []any {
		c := &customers[i]
		return append(row, c.ID, c.Name, c.Phone, c.Address, c.Email, c.CreditScore, c.AnnualIncome)
	})
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("write %s and %s: commit: %w", cardsTable, customersTable, err)
	}
	return nil
}

// loadSlice writes n rows into table inside tx with the bulk loader: enc
// appends row i in LOAD DATA's text form, vals its values.
func (r *run) loadSlice(ctx context.Context, tx *sql.Tx, table string, cols []string, n int,
	enc func(b []byte, i int) []byte, vals func(row []any, i int) []any) error {
	text := func(w *bufio.Writer) (int64, error) {
		var buf []byte
		for i := range n {
			buf = enc(buf[:0], i)
			if _, err := w.Write(buf); err != nil {
				return int64(i), err
			}
		}
		return int64(n), nil
	}
	i := 0
	rows := func(row []any) ([]any, error) {
		if i >= n {
			return row, io.EOF
		}
		i++
		return vals(row, i-1), nil
	}
	_, refused, err := mysqlstore.BulkLoad(ctx, tx, table, cols, r.useLoad(), insertBatchRows, mysqlstore.BulkSource{Text: text, Rows: rows})
	r.noteRefused(refused)
	if err != nil {
		return fmt.Errorf("write %s: %w", table, err)
	}
	return nil
}

// writeCutoffs writes a run's cut-offs into table: batch_cutoffs_next
// (run 0: the view has no run id) or batch_run_cutoffs.
func writeCutoffs(ctx context.Context, q interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, table, topic string, run int64, cut cutoffs) error {
	if len(cut) == 0 {
		return nil
	}
	var b strings.Builder
	args := make([]any, 0, 4*len(cut))
	b.WriteString("INSERT INTO `" + table + "` (topic, `partition`, next_offset")
	if run > 0 {
		b.WriteString(", run_id")
	}
	b.WriteString(") VALUES ")
	for i, p := range slices.Sorted(maps.Keys(cut)) {
		if i > 0 {
			b.WriteString(", ")
		}
		args = append(args, topic, p, cut[p])
		if run > 0 {
			b.WriteString("(?, ?, ?, ?)")
			args = append(args, run)
		} else {
			b.WriteString("(?, ?, ?)")
		}
	}
	if _, err := q.ExecContext(ctx, b.String(), args...); err != nil {
		return fmt.Errorf("write %s: %w", table, err)
	}
	return nil
}

// mysqlRuns records runs in the batch_runs table.
type mysqlRuns struct{ db *sql.DB }

func (r mysqlRuns) start(ctx context.Context, at time.Time) (int64, error) {
	res, err := r.db.ExecContext(ctx, "INSERT INTO batch_runs (started_at, status) VALUES (?, 'running')", at.UTC())
	if err != nil {
		return 0, fmt.Errorf("record the run in batch_runs: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("record the run in batch_runs: %w", err)
	}
	return id, nil
}

func (r mysqlRuns) finish(ctx context.Context, run runRecord) error {
	var errText sql.NullString
	if run.Error != "" {
		errText = sql.NullString{String: run.Error, Valid: true}
	}
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record the end of run %d in batch_runs: %w", run.ID, err)
	}
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx, "UPDATE batch_runs SET finished_at = ?, rows_read = ?, cutoff = ?, status = ?, `error` = ? WHERE run_id = ?",
		run.FinishedAt.UTC(), run.Rows, run.Cutoff, run.Status, errText, run.ID)
	if err == nil {
		err = writeCutoffs(ctx, tx, "batch_run_cutoffs", run.Topic, run.ID, run.Cutoffs)
	}
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		return fmt.Errorf("record the end of run %d in batch_runs: %w", run.ID, err)
	}
	return nil
}
