package batch

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/txpipe/txpipe/serving/csvfile"
)

// ManifestFile names the manifest of the view files, in the results
// directory. Each view file is replaced atomically on its own, but not as
// a set: a run writes the manifest last, after every file is in place, and
// a reader that needs one run's files (serve without a database) takes a
// set only when every file matches the manifest.
const ManifestFile = "batch_manifest.json"

// ManifestFiles are the view files a manifest lists.
var ManifestFiles = []string{csvfile.BatchFile, csvfile.CardsUpdatedFile, csvfile.CustomersUpdFile, csvfile.CutoffsFile}

// Manifest describes the view files of one successful run.
type Manifest struct {
	RunID       int64     `json:"run_id"`
	CommittedAt time.Time `json:"committed_at"`
	// Topic and Cutoffs are the run's cut-off: per partition of the
	// validated topic, the offset after the last stream row in the views.
	Topic   string          `json:"topic"`
	Cutoffs map[int32]int64 `json:"cutoffs"`
	Files   []ManifestEntry `json:"files"`
}

// ManifestEntry is a view file as the run wrote it.
type ManifestEntry struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Entry returns the entry of the file name.
func (m Manifest) Entry(name string) (ManifestEntry, bool) {
	for _, e := range m.Files {
		if e.Name == name {
			return e, true
		}
	}
	return ManifestEntry{}, false
}

// ReadManifest reads the manifest in dir; fs.ErrNotExist when no run
// wrote one.
func ReadManifest(dir string) (Manifest, error) {
	var m Manifest
	path := filepath.Join(dir, ManifestFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return m, fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("read %s: %w", path, err)
	}
	if m.RunID <= 0 || len(m.Files) == 0 {
		return m, fmt.Errorf("read %s: no run id or no files", path)
	}
	return m, nil
}

// HashFile returns the size and SHA-256 (hex) of what r reads.
func HashFile(r io.Reader) (int64, string, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return n, hex.EncodeToString(h.Sum(nil)), err
}

// writeManifest writes the manifest of the run's committed view files,
// last, atomically.
func (r *run) writeManifest() error {
	if r.o.hook != nil {
		if err := r.o.hook("manifest", r.sum.Transactions); err != nil {
			return err
		}
	}
	m := Manifest{RunID: r.id, CommittedAt: r.o.Now().UTC(), Topic: r.o.Topic, Cutoffs: r.sum.Cutoffs}
	if m.Cutoffs == nil {
		m.Cutoffs = map[int32]int64{}
	}
	for _, name := range ManifestFiles {
		f, err := os.Open(r.path(name))
		if err != nil {
			return fmt.Errorf("manifest: %w", err)
		}
		size, sum, err := HashFile(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("manifest: read %s: %w", r.path(name), err)
		}
		m.Files = append(m.Files, ManifestEntry{Name: name, Size: size, SHA256: sum})
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	path := r.path(ManifestFile)
	tmp, err := os.CreateTemp(r.o.ResultsDir, "."+ManifestFile+".*.tmp")
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Chmod(0o644) // as the view files
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("manifest: write %s: %w", path, err)
	}
	return nil
}
