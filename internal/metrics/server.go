package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/txpipe/txpipe/internal/mask"
)

// Check is a readiness check: a dependency (database, broker) and how to
// tell that it answers.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// CheckTimeout bounds each readiness check.
const CheckTimeout = 2 * time.Second

// Handler serves Registry in the Prometheus text format.
func Handler() http.Handler {
	return promhttp.HandlerFor(Registry, promhttp.HandlerOpts{Registry: Registry, Timeout: 10 * time.Second})
}

// Register adds GET /healthz (the process is up), GET /readyz (every check
// passes: 200, else 503 naming what is not reachable) and GET /metrics to
// mux.
func Register(mux *http.ServeMux, checks []Check) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		code, body := Ready(r.Context(), checks)
		writeJSON(w, code, body)
	})
	mux.Handle("GET /metrics", Handler())
}

// Readiness is the body of /readyz: "ready" or "not ready", and each
// check's result ("ok" or what failed).
type Readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// Ready runs the checks concurrently, each within CheckTimeout, and
// returns the status code and body of /readyz.
func Ready(ctx context.Context, checks []Check) (int, Readiness) {
	out := Readiness{Status: "ready", Checks: map[string]string{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, CheckTimeout)
			defer cancel()
			err := c.Check(cctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				out.Status = "not ready"
				out.Checks[c.Name] = mask.Digits(err.Error())
			} else {
				out.Checks[c.Name] = "ok"
			}
		}()
	}
	wg.Wait()
	if out.Status != "ready" {
		return http.StatusServiceUnavailable, out
	}
	return http.StatusOK, out
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// CheckNames lists the names of checks, sorted (for logs).
func CheckNames(checks []Check) []string {
	var names []string
	for _, c := range checks {
		names = append(names, c.Name)
	}
	sort.Strings(names)
	return names
}

// Server serves /healthz, /readyz and /metrics for a long-running
// command on its own address (--metrics-addr).
type Server struct {
	Addr   string
	Checks []Check
	Log    *slog.Logger

	ln        net.Listener
	srv       *http.Server
	done      chan error
	closeOnce sync.Once
	closeErr  error
}

// Open listens on Addr (port 0 picks a free port) and serves in a
// goroutine of its own until Close.
func (s *Server) Open() error {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("metrics: listen on %s: %w", s.Addr, err)
	}
	mux := http.NewServeMux()
	Register(mux, s.Checks)
	s.ln = ln
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.Log.Handler(), slog.LevelDebug),
	}
	s.done = make(chan error, 1)
	go func() { s.done <- s.srv.Serve(ln) }()
	s.Log.Info("metrics and health listening", "addr", "http://"+ln.Addr().String(), "checks", CheckNames(s.Checks))
	return nil
}

// URL is the base URL of the running server.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops the server, letting requests in flight finish for up to 5 s.
// Closing again returns the first result.
func (s *Server) Close() error {
	if s.srv == nil {
		return nil
	}
	s.closeOnce.Do(func() { s.closeErr = s.shutdown() })
	return s.closeErr
}

func (s *Server) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		// Requests still running, or connections a client opened and
		// never used (the server waits 5 s for those): cut them.
		s.srv.Close()
	}
	if err := <-s.done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
