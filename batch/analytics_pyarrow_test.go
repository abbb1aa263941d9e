package batch

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/txpipe/txpipe/batch/analytics"
)

// pyarrowCheck reads every analytics Parquet file with pyarrow and
// compares it, formatted as the CSV files are, with its CSV file.
const pyarrowCheck = `
import csv, sys
import pyarrow.parquet as pq

def text(name, v):
    if v is None:
        return ""
    if name.endswith("_cents"):
        sign = "-" if v < 0 else ""
        return "%s%d.%02d" % (sign, abs(v) // 100, abs(v) % 100)
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)

bad = 0
for name in sys.argv[2:]:
    table = pq.read_table("%s/analytics_%s.parquet" % (sys.argv[1], name))
    cols = table.column_names
    rows = [[text(c, v) for c, v in zip(cols, r)] for r in zip(*[table.column(c).to_pylist() for c in cols])]
    with open("%s/analytics_%s.csv" % (sys.argv[1], name), newline="") as f:
        want = list(csv.reader(f))[1:]
    if rows != want:
        bad += 1
        print("%s: pyarrow %r, csv %r" % (name, rows[:2], want[:2]))
print("checked", len(sys.argv) - 2 - bad, "of", len(sys.argv) - 2)
sys.exit(1 if bad else 0)
`

// TestParquetPyarrow reads the analytics Parquet files with pyarrow: the
// python of TXPIPE_TEST_PYTHON (scripts/python-kafka makes one with
// pyarrow; CI sets it), else python3. It is skipped where pyarrow is
// missing (pip install pyarrow), and fails under CI then.
func TestParquetPyarrow(t *testing.T) {
	py := os.Getenv("TXPIPE_TEST_PYTHON")
	if py == "" {
		var err error
		if py, err = exec.LookPath("python3"); err != nil {
			t.Skip("python3 not found: the pyarrow check of the Parquet files is skipped")
		}
	}
	if out, err := exec.Command(py, "-c", "import pyarrow.parquet").CombinedOutput(); err != nil {
		if os.Getenv("CI") != "" && os.Getenv("TXPIPE_TEST_PYTHON") != "" {
			t.Fatalf("%s has no pyarrow (scripts/python-kafka installs it): %s", py, strings.TrimSpace(string(out)))
		}
		t.Skipf("pyarrow is not installed (pip install pyarrow): the pyarrow check of the Parquet files is skipped: %s", strings.TrimSpace(string(out)))
	}
	p := newPatterns(t)
	mem := checkedAlloc(t)
	if _, err := Run(context.Background(), Options{DataDir: p.data, ResultsDir: p.results, Parquet: true, Analytics: true,
		Alloc: mem, Log: quiet}); err != nil {
		t.Fatal(err)
	}
	args := []string{"-c", pyarrowCheck, p.results}
	for _, v := range analytics.Views() {
		args = append(args, v.Name)
	}
	out, err := exec.Command(py, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("pyarrow: %v\n%s", err, out)
	}
	t.Log(strings.TrimSpace(string(out)))
}
