package kafkatest

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/txpipe/txpipe/stream/embedded"
)

// Restartable is a broker of one test's own that the test can stop and
// start again on the same address and data: an embedded broker with a
// data directory, or a private Apache Kafka (its own JVM, data directory
// and port, run by scripts/kafka). Stop and Start are for the test's
// goroutine; Addrs stays the same across restarts.
type Restartable struct {
	Broker
	port int
	dir  string

	mu  sync.Mutex
	emb *embedded.Broker // the running embedded broker; nil while stopped
	up  bool
}

// EachRestartable runs body as the subtests "embedded" and "kafka", each
// with a restartable broker of its own. The kafka subtest needs what
// Shared needs (TXPIPE_TEST_KAFKA, which says a real Kafka can run here)
// and starts a second Kafka next to it.
//
// The two subtests run at the same time (each broker is the test's own):
// body must change nothing process-wide.
func EachRestartable(t *testing.T, body func(t *testing.T, b *Restartable)) {
	t.Helper()
	var wg sync.WaitGroup
	for _, k := range []Kind{Embedded, Kafka} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(string(k), func(t *testing.T) {
				if k == Kafka {
					Shared(t) // skips (or fails under CI) without a real Kafka
				}
				body(t, StartRestartable(t, k))
			})
		}()
	}
	wg.Wait()
}

// StartRestartable starts a restartable broker of the given kind on a
// free loopback port; it stops when the test ends.
func StartRestartable(t testing.TB, kind Kind) *Restartable {
	t.Helper()
	r := &Restartable{port: freePort(t), dir: t.TempDir()}
	r.Kind = kind
	r.Addrs = []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port))}
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("stop the %s broker: %v", kind, err)
		}
	})
	r.Start(t)
	return r
}

// Start starts the broker again (or the first time) on its port and data.
func (r *Restartable) Start(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.up {
		t.Fatalf("start the %s broker: it is running", r.Kind)
	}
	if r.Kind == Embedded {
		b, err := embedded.Start(r.port, r.dir)
		if err != nil {
			t.Fatalf("start the embedded broker on port %d: %v", r.port, err)
		}
		r.emb, r.up = b, true
		return
	}
	out, err := r.script("start", "--port", strconv.Itoa(r.port))
	if err != nil {
		t.Fatalf("start a private Kafka on port %d: %v\n%s", r.port, err, out)
	}
	r.up = true
}

// Stop stops the broker cleanly (a controlled shutdown on Kafka), keeping
// its data for Start.
func (r *Restartable) Stop(t testing.TB) {
	t.Helper()
	if err := r.stop(); err != nil {
		t.Fatalf("stop the %s broker: %v", r.Kind, err)
	}
}

func (r *Restartable) stop() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.up {
		return nil
	}
	r.up = false
	if r.Kind == Embedded {
		r.emb.Close()
		r.emb = nil
		return nil
	}
	if out, err := r.script("stop"); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	return nil
}

// script runs scripts/kafka on the broker's data directory, with a bound.
func (r *Restartable) script(args ...string) (string, error) {
	path, err := scriptPath()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, append(args, "--data", r.dir)...)
	// A private broker: a smaller heap than the shared one.
	cmd.Env = append(os.Environ(), "KAFKA_HEAP_OPTS=-Xmx512m -Xms128m")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w", path, strings.Join(args, " "), err)
	}
	return string(out), nil
}

// scriptPath is the path of scripts/kafka in the module the test runs in.
func scriptPath() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			path := filepath.Join(dir, "scripts", "kafka")
			if _, err := os.Stat(path); err != nil {
				return "", fmt.Errorf("scripts/kafka next to go.mod: %w", err)
			}
			return path, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// freePort picks a loopback port that is free now, so that a restarted
// broker listens on the same address. It is below the kernel's ephemeral
// range (the local ports of outgoing connections): no client of the
// test run can take it while the broker is stopped.
func freePort(t testing.TB) int {
	t.Helper()
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 12000 {
				lo = n
			}
		}
	}
	for range 200 {
		port := 10000 + mrand.IntN(lo-10000)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatalf("no free loopback port below %d", lo)
	return 0
}
