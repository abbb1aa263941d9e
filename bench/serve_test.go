package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/txpipe/txpipe/internal/mysqltest"
)

// TestRunServe runs the serve benchmark small: every phase answers every
// request, the answers hold rows, and the summary line is printed. It
// asserts no speed.
func TestRunServe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds txpipe and runs serve")
	}
	server := mysqltest.Server(t)
	bin := buildBinary(t)
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := RunServe(ctx, ServeOptions{Transactions: 4000, Cards: 200, Requests: 400, Clients: 4, MySQL: server, Binary: bin, Out: &out, Log: quietLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	for _, r := range []Rate{rep.Bare, rep.API, rep.ChildMySQL, rep.ChildMemory} {
		if r.Requests != 400 || r.Errors != 0 || r.PerSecond <= 0 || r.RowsPerAnswer <= 0 {
			t.Errorf("%s: %+v", r.Name, r)
		}
	}
	// The statements read one row more than a page, to know whether
	// there is a next one.
	if rep.API.RowsPerAnswer > rep.Bare.RowsPerAnswer || rep.API.RowsPerAnswer != rep.ChildMemory.RowsPerAnswer {
		t.Errorf("rows per answer: api %.2f, bare %.2f, serve without a database %.2f", rep.API.RowsPerAnswer, rep.Bare.RowsPerAnswer, rep.ChildMemory.RowsPerAnswer)
	}
	if rep.ChildMySQL.PeakRSSMiB <= 0 || rep.ChildMemory.PeakRSSMiB <= 0 {
		t.Errorf("peak RSS not measured: %v %v", rep.ChildMySQL.PeakRSSMiB, rep.ChildMemory.PeakRSSMiB)
	}
	if !strings.Contains(out.String(), "bench serve: api_vs_bare=") {
		t.Errorf("no summary line:\n%s", out.String())
	}
}
