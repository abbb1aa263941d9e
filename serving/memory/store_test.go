package memory

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/batch"
	"github.com/txpipe/txpipe/internal/reftest"
	"github.com/txpipe/txpipe/serving/csvfile"
	"github.com/txpipe/txpipe/stream"
	"github.com/txpipe/txpipe/stream/embedded"
)

var quiet = slog.New(slog.DiscardHandler)

// runBatch judges the first n transactions of the reference dataset into
// dir's stream file and runs the CSV-mode batch over them.
func runBatch(t *testing.T, dir string, results []txpipe.Result, n int) {
	t.Helper()
	reftest.WriteResults(t, filepath.Join(dir, csvfile.StreamFile), results[:n])
	if _, err := batch.Run(context.Background(), batch.Options{DataDir: reftest.Data(t), ResultsDir: dir, Log: quiet}); err != nil {
		t.Fatal(err)
	}
}

func openStore(t *testing.T, dir string) *Store {
	t.Helper()
	b, err := embedded.Start(0, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	s, err := Open(context.Background(), Config{ResultsDir: dir, DataDir: reftest.Data(t), Brokers: b.Addrs(),
		Topics: stream.TopicsFor("memtest"), Reload: time.Hour, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func runID(s *Store) int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.set == nil {
		return 0
	}
	return s.set.m.RunID
}

// TestBatchSetFollowsManifest: the store takes a set of files only when
// they match the manifest; files replaced one by one (a batch
// committing) leave the set in use, and the next manifest is taken.
func TestBatchSetFollowsManifest(t *testing.T) {
	dir := t.TempDir()
	_, results := reftest.Judge(t, reftest.Data(t))
	runBatch(t, dir, results, 200)
	s := openStore(t, dir)
	if got := runID(s); got != 1 {
		t.Fatalf("run %d in use after Open, want 1", got)
	}
	v, info, err := s.Card(context.Background(), results[0].CardID)
	if err != nil {
		t.Fatal(err)
	}
	settled := v.SettledCounts[txpipe.StatusApproved] + v.SettledCounts[txpipe.StatusDeclined]
	if !info.Cutoffs.Batch || info.RunID != 1 || settled == 0 {
		t.Fatalf("card %d: %+v, batch %+v", results[0].CardID, v, info)
	}

	// A second run's files, but the first run's manifest: as when a batch
	// has replaced some files and not yet written its manifest.
	m1, err := os.ReadFile(filepath.Join(dir, batch.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	runBatch(t, dir, results, 300)
	m2, err := os.ReadFile(filepath.Join(dir, batch.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, batch.ManifestFile), m1, 0o644); err != nil {
		t.Fatal(err)
	}
	s.reload(context.Background())
	if got := runID(s); got != 1 {
		t.Fatalf("run %d in use with files that do not match the manifest, want 1 kept", got)
	}
	if _, info, _ := s.Card(context.Background(), results[0].CardID); info.RunID != 1 || !info.Cutoffs.Batch {
		t.Fatalf("answers after a mismatch: %+v", info)
	}
	// The manifest of the files arrives.
	if err := os.WriteFile(filepath.Join(dir, batch.ManifestFile), m2, 0o644); err != nil {
		t.Fatal(err)
	}
	s.reload(context.Background())
	if got := runID(s); got != 2 {
		t.Fatalf("run %d in use once the manifest matches, want 2", got)
	}

	// A store opened while the files do not match its manifest has no
	// batch set (every stream row pending) until they do.
	if err := os.WriteFile(filepath.Join(dir, batch.ManifestFile), m1, 0o644); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, dir)
	if got := runID(s2); got != 0 {
		t.Fatalf("a store opened on mismatched files uses run %d", got)
	}
	if _, info, _ := s2.Card(context.Background(), results[0].CardID); info.Cutoffs.Batch {
		t.Fatal("a batch view without a matching set")
	}
}
