// Package api is the HTTP side of txpipe serve: a JSON API over a
// txpipe.QueryStore (MySQL, or the results folder and the broker), with
// /healthz, /readyz and /metrics beside it.
//
// Handlers return errors; Error turns them into status codes, in one
// place. Every route is declared once, in routes, with its parameters:
// the mux, the parameter check and the OpenAPI test read the same table.
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/batch/analytics"
	"github.com/txpipe/txpipe/internal/metrics"
)

// Route is an endpoint: its method and path pattern (Go's ServeMux
// syntax), the query parameters it takes, and its handler. Another
// package adds routes (/api/analytics, say) through Server.Routes; each
// must be in the OpenAPI document too.
type Route struct {
	Method string
	Path   string   // "/api/cards/{id}"
	Query  []string // accepted query parameters; any other is a 400
	// Handle answers the request; an error goes through Error.
	Handle func(w http.ResponseWriter, r *http.Request) error

	wild []string // the path's {wildcards}
	h    func(w http.ResponseWriter, r *http.Request, p *params) error
}

// Pattern is the route's ServeMux pattern.
func (rt *Route) Pattern() string { return rt.Method + " " + rt.Path }

// PathParams are the names of the path's {wildcards}.
func (rt *Route) PathParams() []string { return wildcards(rt.Path) }

// BadParam returns the error of a bad parameter, for handlers of other
// packages: it answers 400, naming the parameter.
func BadParam(param, format string, args ...any) error { return badParam(param, format, args...) }

// Server serves the API.
type Server struct {
	// Addr is where to listen ("127.0.0.1:8080"; port 0 picks a free one).
	Addr string
	// Token, when set, is required as "Authorization: Bearer <token>" on
	// every /api request. Open refuses an address other than loopback
	// without one.
	Token string
	Store txpipe.QueryStore
	// Checks are the readiness checks of /readyz.
	Checks []metrics.Check
	// Analytics, when set, serves the batch layer's analytics views:
	// GET /api/analytics and GET /api/analytics/{view}.
	Analytics analytics.Source
	// Events, when set, serves the stream's alerts and latency:
	// GET /api/alerts and GET /api/latency.
	Events txpipe.EventStore
	// Routes are more endpoints, served like the built-in ones.
	Routes []Route
	// QueryTimeout bounds each request's work on the store (10 s when
	// zero).
	QueryTimeout time.Duration
	Log          *slog.Logger

	routes    []*Route
	mux       *http.ServeMux
	paths     *http.ServeMux // the same paths without methods: 405 or 404
	ln        net.Listener
	srv       *http.Server
	done      chan error
	closeOnce sync.Once
	closeErr  error
	tokenSum  [32]byte
}

// Limits of a request.
const (
	maxHeaderBytes = 16 << 10
	maxBodyBytes   = 1 << 10 // the API only reads
)

// Open checks the settings, listens on Addr and serves in a goroutine of
// its own until Close.
func (s *Server) Open() error {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	if s.QueryTimeout <= 0 {
		s.QueryTimeout = 10 * time.Second
	}
	if s.Store == nil {
		return errors.New("api: no store")
	}
	loopback, err := IsLoopback(s.Addr)
	if err != nil {
		return err
	}
	if !loopback && s.Token == "" {
		return fmt.Errorf("api: %s is not a loopback address: set TXPIPE_API_TOKEN (environment only) to serve there", s.Addr)
	}
	s.tokenSum = sha256.Sum256([]byte(s.Token))
	if err := s.buildMux(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("api: listen on %s: %w", s.Addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      s.QueryTimeout + 20*time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.Log.Handler(), slog.LevelDebug),
	}
	s.done = make(chan error, 1)
	go func() { s.done <- s.srv.Serve(ln) }()
	s.Log.Info("api listening", "addr", s.URL(), "auth", s.Token != "")
	return nil
}

// URL is the base URL of the running server.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops the server, letting requests in flight finish for up to 5 s
// (then closing their connections). Closing again returns the first
// result.
func (s *Server) Close() error {
	if s.srv == nil {
		return nil
	}
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			// Requests still running, or connections a client opened and
			// never used (the server waits 5 s for those): cut them.
			s.srv.Close()
			s.Log.Info("api: connections still open at the end of the shutdown were closed")
		}
		if err := <-s.done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.closeErr = err
		}
	})
	return s.closeErr
}

// IsLoopback reports whether addr (host:port) binds loopback only: an IP
// in 127.0.0.0/8 or ::1, or "localhost". An empty host binds every
// interface.
func IsLoopback(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("api: address %q: %w", addr, err)
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}

func (s *Server) buildMux() error {
	s.mux, s.paths = http.NewServeMux(), http.NewServeMux()
	s.routes = nil
	all := builtinRoutes(s)
	if s.Analytics != nil {
		all = append(all, analyticsRoutes(s)...)
	}
	if s.Events != nil {
		all = append(all, eventRoutes(s)...)
	}
	all = append(all, s.Routes...)
	seenPath := map[string]bool{}
	for i := range all {
		rt := &all[i]
		if rt.h == nil {
			if rt.Handle == nil {
				return fmt.Errorf("api: route %s has no handler", rt.Pattern())
			}
			handle := rt.Handle
			rt.h = func(w http.ResponseWriter, r *http.Request, _ *params) error { return handle(w, r) }
		}
		rt.wild = wildcards(rt.Path)
		s.routes = append(s.routes, rt)
		s.mux.Handle(rt.Pattern(), s.handler(rt))
		if !seenPath[rt.Path] {
			seenPath[rt.Path] = true
			s.paths.Handle(rt.Path, http.NotFoundHandler())
		}
	}
	metrics.Register(s.mux, s.Checks)
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		s.paths.Handle(p, http.NotFoundHandler())
		s.routes = append(s.routes, &Route{Method: "GET", Path: p})
	}
	return nil
}

// wildcards lists the {names} of a path pattern.
func wildcards(path string) []string {
	var out []string
	for _, seg := range strings.Split(path, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			out = append(out, strings.TrimSuffix(strings.Trim(seg, "{}"), "..."))
		}
	}
	return out
}

// RouteTable returns the routes the server serves (after Open), for the
// OpenAPI test.
func (s *Server) RouteTable() []Route {
	out := make([]Route, len(s.routes))
	for i, rt := range s.routes {
		out[i] = *rt
	}
	return out
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// ServeHTTP is the server's one entry: limits, the route lookup (JSON 404
// and 405), authentication for /api, metrics by route, and a panic guard.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	_, pattern := s.mux.Handler(r)
	route := pattern
	if route == "" {
		route = "unmatched"
	}
	defer func() {
		if p := recover(); p != nil {
			s.Log.Error("api: panic", "route", route, "panic", fmt.Sprint(p))
			if sw.code == 0 {
				Error(sw, r, s.Log, fmt.Errorf("panic: %v", p))
			}
		}
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		metrics.HTTPRequests.WithLabelValues(route, strconv.Itoa(code)).Inc()
		metrics.HTTPDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	}()
	if r.ContentLength > maxBodyBytes {
		Error(sw, r, s.Log, errTooLarge)
		return
	}
	r.Body = http.MaxBytesReader(sw, r.Body, maxBodyBytes)
	// Before the route: without the token nothing tells which /api paths
	// exist.
	if s.Token != "" && strings.HasPrefix(r.URL.Path, "/api/") && !s.authorized(r) {
		Error(sw, r, s.Log, errUnauthorized)
		return
	}
	if pattern == "" {
		if _, p := s.paths.Handler(r); p != "" {
			Error(sw, r, s.Log, errMethodNotAllowed)
		} else {
			Error(sw, r, s.Log, errRouteNotFound)
		}
		return
	}
	s.mux.ServeHTTP(sw, r)
}

// authorized compares the bearer token in constant time (over SHA-256
// sums, so the length does not show either).
func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) == 1
}

// handler checks a request's parameters against its route, bounds its
// work and answers its error.
func (s *Server) handler(rt *Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := readParams(r, rt)
		if err == nil {
			ctx, cancel := context.WithTimeout(r.Context(), s.QueryTimeout)
			defer cancel()
			err = rt.h(w, r.WithContext(ctx), p)
		}
		if err != nil {
			Error(w, r, s.Log, err)
		}
	})
}
