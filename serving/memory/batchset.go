package memory

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/batch"
	"github.com/txpipe/txpipe/serving/csvfile"
)

// batchSet is one run's batch views, read from files that matched its
// manifest. It does not change once loaded.
type batchSet struct {
	m        batch.Manifest
	cut      txpipe.Cutoffs
	txs      *view
	cards    map[int64]txpipe.Card // cards_updated
	scores   map[int64]int64       // customers_updated: the new credit scores
	finished time.Time
}

// errMismatch says a file is not the one the manifest describes.
var errMismatch = errors.New("does not match the manifest")

// loadSet reads every file of the manifest, checking each one's size and
// SHA-256 in the same pass that parses it.
func loadSet(ctx context.Context, dir string, m batch.Manifest) (*batchSet, error) {
	set := &batchSet{m: m, txs: newView(), cards: map[int64]txpipe.Card{}, scores: map[int64]int64{},
		cut: txpipe.Cutoffs{Batch: true, Topic: m.Topic, Next: m.Cutoffs}}
	if set.cut.Next == nil {
		set.cut.Next = map[int32]int64{}
	}
	for _, name := range []string{csvfile.BatchFile, csvfile.CardsUpdatedFile, csvfile.CustomersUpdFile} {
		if _, ok := m.Entry(name); !ok {
			return nil, fmt.Errorf("the manifest of run %d does not list %s", m.RunID, name)
		}
	}
	for _, e := range m.Files {
		var parse func(rec []string) error
		var header []string
		switch e.Name {
		case csvfile.BatchFile:
			header, parse = csvfile.ResultColumns, set.addTx
		case csvfile.CardsUpdatedFile:
			header, parse = csvfile.CardColumns, set.addCard
		case csvfile.CustomersUpdFile:
			header, parse = csvfile.CustomerColumns, set.addCustomer
		}
		if err := readVerified(ctx, filepath.Join(dir, e.Name), e, header, parse); err != nil {
			return nil, err
		}
	}
	return set, nil
}

// countingHash hashes and counts what goes through it.
type countingHash struct {
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}

// readVerified parses a CSV file with parse (nil: only checks it) and
// checks it against its manifest entry. It stops when ctx ends.
func readVerified(ctx context.Context, path string, e batch.ManifestEntry, header []string, parse func([]string) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Size() != e.Size {
		return fmt.Errorf("%s: %w (size)", path, errMismatch)
	}
	sum := &countingHash{h: sha256.New()}
	r := io.TeeReader(bufio.NewReaderSize(f, 1<<20), sum)
	if parse != nil {
		cr := csv.NewReader(r)
		cr.ReuseRecord = true
		cr.FieldsPerRecord = -1
		line := 0
		for {
			rec, err := cr.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			line++
			if err != nil {
				return fmt.Errorf("%s:%d: %w", path, line, err)
			}
			if line == 1 {
				if len(rec) < len(header) || !slices.Equal(rec[:len(header)], header) {
					return fmt.Errorf("%s: header %q, want %q", path, rec, header)
				}
				continue
			}
			if len(rec) < len(header) {
				return fmt.Errorf("%s:%d: %d fields, want %d", path, line, len(rec), len(header))
			}
			if err := parse(rec); err != nil {
				return fmt.Errorf("%s:%d: %w", path, line, err)
			}
			if line%65536 == 0 && ctx.Err() != nil {
				return fmt.Errorf("read %s: %w", path, ctx.Err())
			}
		}
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if sum.n != e.Size || hex.EncodeToString(sum.h.Sum(nil)) != e.SHA256 {
		return fmt.Errorf("%s: %w (content)", path, errMismatch)
	}
	return nil
}

// addTx adds a row of batch_transactions.csv (csvfile.ResultColumns).
func (set *batchSet) addTx(rec []string) error {
	raw := txpipe.RawTransaction{TransactionID: rec[0], CardID: rec[1], Merchant: rec[2], Timestamp: rec[3], Amount: rec[4],
		Location: rec[5], Type: rec[6], RelatedID: rec[7]}
	tx, reason, detail := txpipe.ParseTransaction(raw)
	if reason != "" {
		return fmt.Errorf("%s: %s", reason, detail)
	}
	r := txpipe.Result{Transaction: tx, Status: txpipe.Status(rec[8]), DeclineReason: txpipe.DeclineReason(rec[10]), Pos: txpipe.Unpositioned}
	var err error
	if r.PendingBalance, err = txpipe.ParseMoney(rec[9]); err != nil {
		return fmt.Errorf("pending_balance: %w", err)
	}
	set.txs.add(&r)
	return nil
}

func parseInt(field, s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s %q: not an integer", field, s)
	}
	return n, nil
}

// addCard adds a row of cards_updated.csv (csvfile.CardColumns).
func (set *batchSet) addCard(rec []string) error {
	var c txpipe.Card
	var err error
	if c.ID, err = parseInt("card_id", rec[0]); err != nil {
		return err
	}
	if c.CreditLimit, err = txpipe.ParseMoney(rec[5]); err != nil {
		return fmt.Errorf("credit_limit: %w", err)
	}
	if c.CurrentBalance, err = txpipe.ParseMoney(rec[6]); err != nil {
		return fmt.Errorf("current_balance: %w", err)
	}
	set.cards[c.ID] = c
	return nil
}

// addCustomer adds a row of customers_updated.csv (csvfile.CustomerColumns).
func (set *batchSet) addCustomer(rec []string) error {
	id, err := parseInt("customer_id", rec[0])
	if err != nil {
		return err
	}
	score, err := parseInt("credit_score", rec[5])
	if err != nil {
		return err
	}
	set.scores[id] = score
	return nil
}

// readRuns reads the runs record of CSV mode, newest first (none when
// there is no file yet).
func readRuns(path string) ([]txpipe.BatchRun, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	cr := csv.NewReader(f)
	cr.FieldsPerRecord = -1
	recs, err := cr.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var out []txpipe.BatchRun
	for i, rec := range recs {
		if i == 0 {
			continue // header
		}
		for len(rec) < len(batch.RunColumns) {
			rec = append(rec, "")
		}
		r := txpipe.BatchRun{Cutoff: rec[4], Status: rec[5], Error: rec[6], Cutoffs: map[int32]int64{}}
		if r.ID, err = parseInt("run_id", rec[0]); err != nil {
			return nil, fmt.Errorf("read %s:%d: %w", path, i+1, err)
		}
		r.StartedAt, _ = time.Parse(runTimeLayout, rec[1])
		r.FinishedAt, _ = time.Parse(runTimeLayout, rec[2])
		r.RowsRead, _ = strconv.ParseInt(rec[3], 10, 64)
		// cutoff_offsets: "topic p:o p:o ..."
		if f := strings.Fields(rec[7]); len(f) > 0 {
			r.Topic = f[0]
			for _, po := range f[1:] {
				p, o, ok := strings.Cut(po, ":")
				pn, err1 := strconv.ParseInt(p, 10, 32)
				on, err2 := strconv.ParseInt(o, 10, 64)
				if ok && err1 == nil && err2 == nil {
					r.Cutoffs[int32(pn)] = on
				}
			}
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID > out[j].ID })
	return out, nil
}

// runTimeLayout is the time layout of batch_runs.csv.
const runTimeLayout = "2006-01-02 15:04:05.000000"

// runFinished is when the manifest's run ended, from the runs record
// (the manifest's commit time when the record does not say yet).
func runFinished(path string, m batch.Manifest) time.Time {
	runs, err := readRuns(path)
	if err == nil {
		for _, r := range runs {
			if r.ID == m.RunID && !r.FinishedAt.IsZero() {
				return r.FinishedAt
			}
		}
	}
	return m.CommittedAt
}
