package batch

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/txpipe/txpipe/internal/reftest"
)

// TestManifest: a successful run writes the manifest last, naming its
// run, its cut-offs and each view file's size and SHA-256; a run that
// fails after committing its files (at "manifest") leaves the previous
// manifest, which then no longer matches the files.
func TestManifest(t *testing.T) {
	dir := t.TempDir()
	s := runStream(t, reftest.Data(t), dir)
	if _, err := ReadManifest(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("manifest before any run: %v", err)
	}
	o := Options{DataDir: reftest.Data(t), ResultsDir: dir, Log: quiet, Now: fixedClock()}
	sum, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.RunID != 1 || m.Topic != DefaultTopic || len(m.Files) != len(ManifestFiles) {
		t.Fatalf("manifest %+v", m)
	}
	for _, name := range []string{ManifestFile, ManifestFiles[0]} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, %v; want 0644 as the view files", name, fi.Mode(), err)
		}
	}
	want := s.wantCutoffs()
	if len(m.Cutoffs) != len(want) {
		t.Fatalf("manifest cut-offs %v, want %v", m.Cutoffs, want)
	}
	for p, off := range want {
		if m.Cutoffs[p] != off || sum.Cutoffs[p] != off {
			t.Errorf("partition %d: manifest cut-off %d, summary %d, want %d", p, m.Cutoffs[p], sum.Cutoffs[p], off)
		}
	}
	matches := func(m Manifest) bool {
		for _, e := range m.Files {
			f, err := os.Open(filepath.Join(dir, e.Name))
			if err != nil {
				t.Fatal(err)
			}
			size, sum, err := HashFile(f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			if size != e.Size || sum != e.SHA256 {
				return false
			}
		}
		return true
	}
	if !matches(m) {
		t.Fatal("the files do not match the manifest of the run that wrote them")
	}

	// Another run over one more stream row fails between its files and
	// its manifest.
	reftest.WriteResults(t, filepath.Join(dir, "stream_transactions.csv"), s.results[:len(s.results)-1])
	o.TestHook = func(point string, _ int64) error {
		if point == "manifest" {
			return errors.New("stopped before the manifest")
		}
		return nil
	}
	if _, err := Run(context.Background(), o); err == nil {
		t.Fatal("the run stopped at its manifest succeeded")
	}
	m2, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m2.RunID != m.RunID || matches(m2) {
		t.Fatalf("after a run that failed before its manifest: run %d, files match %v", m2.RunID, matches(m2))
	}
	assertNoTemp(t, dir)
}
