package api_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/txpipe/txpipe/batch"
)

// hold is a batch test hook that stops a run at one point until released.
type hold struct {
	point    string
	reached  chan struct{}
	release  chan struct{}
	once     sync.Once
	released sync.Once
}

func newHold(point string) *hold {
	return &hold{point: point, reached: make(chan struct{}), release: make(chan struct{})}
}

func (h *hold) hook(point string, _ int64) error {
	if point == h.point {
		h.once.Do(func() { close(h.reached) })
		<-h.release
	}
	return nil
}

func (h *hold) let() { h.released.Do(func() { close(h.release) }) }

// TestMergeRule checks, in both modes, that every transaction is settled
// or pending, never both and never neither: before any batch, while a
// batch is held before it commits (with the stream moving on meanwhile),
// while it is held between its files (and tables) and its manifest, after
// it, and at every answer read while a second batch runs unheld.
func TestMergeRule(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline")
	}
	for _, mode := range []string{modeMemory, modeMySQL} {
		t.Run(mode, func(t *testing.T) {
			p := newPipeline(t, "merge-"+mode, 3000, 0)
			p.step(t, 1500)
			srv := p.serve(t, mode, "")
			c := newClient(t, srv, "")
			// checkAll checks every card; wantRun is the run the answers
			// name (0: none, -1: a batch view whose run has not recorded
			// its end yet).
			checkAll := func(what string, strict bool, wantRun int64) {
				t.Helper()
				tr := p.truth(t)
				caughtUp(t, c, tr)
				for _, card := range p.master.Cards {
					run, hasBatch := checkCard(t, c, p.master, tr, card.ID, strict)
					if wantRun == -1 && (!hasBatch || run != 0) || wantRun != -1 && run != wantRun {
						t.Fatalf("%s: card %d answered from run %d (batch view %v), want %d", what, card.ID, run, hasBatch, wantRun)
					}
				}
				if t.Failed() {
					t.Fatalf("%s: the merge rule does not hold", what)
				}
			}

			// Before any batch: everything pending.
			checkAll("before a batch", true, 0)

			// A batch held before it commits; the stream moves on.
			commit, manifest := newHold("commit"), newHold("manifest")
			o := p.batchOptions(mode)
			o.TestHook = func(point string, rows int64) error {
				commit.hook(point, rows)
				return manifest.hook(point, rows)
			}
			done := make(chan error, 1)
			go func() {
				_, err := batch.Run(context.Background(), o)
				done <- err
			}()
			defer func() {
				commit.let()
				manifest.let()
			}()
			select {
			case <-commit.reached:
			case err := <-done:
				t.Fatalf("the batch ended before its commit: %v", err)
			}
			p.step(t, 700)
			checkAll("a batch held before its commit", true, 0)

			// Held after its files (MySQL: its tables too) and before its
			// manifest: MySQL answers from the new views (their run records
			// its end after the manifest), the memory mode from the set of
			// the last manifest.
			commit.let()
			select {
			case <-manifest.reached:
			case err := <-done:
				t.Fatalf("the batch ended before its manifest: %v", err)
			}
			want := int64(0)
			if mode == modeMySQL {
				want = -1
			}
			checkAll("a batch held before its manifest", true, want)
			manifest.let()
			if err := <-done; err != nil {
				t.Fatal(err)
			}

			// After: the memory mode loads the new set when it sees the
			// manifest.
			waitFor(t, "serve to load run 1", func() bool {
				var card cardJSON
				return c.get("/api/cards/1", &card) && card.LastBatch != nil && card.LastBatch.RunID == 1
			})
			checkAll("after a batch", true, 1)

			// More stream, then a second batch, unheld, while readers check
			// the rule at every answer.
			p.step(t, 800)
			tr := p.truth(t)
			caughtUp(t, c, tr)
			stop := make(chan struct{})
			var checks atomic.Int64
			var wg sync.WaitGroup
			for w := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						checkCard(t, c, p.master, tr, p.master.Cards[i%len(p.master.Cards)].ID, false)
						checks.Add(1)
					}
				}()
			}
			_, err := batch.Run(context.Background(), p.batchOptions(mode))
			if err == nil {
				waitFor(t, "serve to load run 2", func() bool {
					var card cardJSON
					return c.get("/api/cards/1", &card) && card.LastBatch != nil && card.LastBatch.RunID == 2
				})
			}
			close(stop)
			wg.Wait()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d answers checked while the second batch ran", checks.Load())
			checkAll("after the second batch", true, 2)
		})
	}
}
