package csvfile

import (
	"bytes"
	"encoding/csv"
	"os"
	"path/filepath"
	"testing"
)

// encodeCSV is what encoding/csv writes for one row.
func encodeCSV(t testing.TB, fields []string) []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	if err := w.Write(fields); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	return b.Bytes()
}

func appendRow(fields []string) []byte {
	var b []byte
	for i, f := range fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendField(b, f)
	}
	return append(b, '\n')
}

func TestAppendFieldAgreesWithEncodingCSV(t *testing.T) {
	for _, f := range []string{"", "plain", "a,b", `say "hi"`, `"`, `""`, "line\nbreak", "cr\rhere", "crlf\r\n", ` lead`, "\tlead",
		"\vlead", "\flead", "\u0085nel", "\u00a0nbsp", "\u2003em space", `\.`, `\..`, `.\`, "Café Ñandú", "\xff\xfe", "trail ", "x\x00y"} {
		fields := []string{f, "b", f}
		if got, want := appendRow(fields), encodeCSV(t, fields); !bytes.Equal(got, want) {
			t.Errorf("%q: AppendField %q, encoding/csv %q", f, got, want)
		}
	}
}

func FuzzAppendField(f *testing.F) {
	for _, s := range []string{"", "a,b", `a"b`, " x", "\u00a0", `\.`, "a\r\nb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fields := []string{s, s}
		if got, want := appendRow(fields), encodeCSV(t, fields); !bytes.Equal(got, want) {
			t.Errorf("%q: AppendField %q, encoding/csv %q", s, got, want)
		}
	})
}

func TestWriteEncodedAndSync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.csv")
	w, err := Create(path, []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write([]string{"1", "x,y"}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteEncoded(appendRow([]string{"2", `q"`})); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := w.Write([]string{"3", ""}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the file is in place before Commit: %v", err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if want := "a,b\n1,\"x,y\"\n2,\"q\"\"\"\n3,\n"; string(got) != want {
		t.Errorf("file %q, want %q", got, want)
	}
}
