package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/txpipe/txpipe"
	"github.com/txpipe/txpipe/internal/mask"
)

// ParamError is a bad request parameter: it answers 400, naming the
// parameter and what is wrong with it.
type ParamError struct {
	Param string
	Msg   string
}

func (e *ParamError) Error() string { return e.Param + ": " + e.Msg }

func badParam(param, format string, args ...any) error {
	return &ParamError{Param: param, Msg: fmt.Sprintf(format, args...)}
}

// Errors the middleware answers with.
var (
	errUnauthorized     = errors.New("missing or wrong bearer token")
	errRouteNotFound    = errors.New("no such endpoint")
	errMethodNotAllowed = errors.New("method not allowed")
	errTooLarge         = errors.New("request too large")
)

// errorBody is the JSON of every error answer.
type errorBody struct {
	Error     string `json:"error"`
	Parameter string `json:"parameter,omitempty"`
}

// Error writes err as a JSON error answer. It is the one place where
// errors become status codes: a bad parameter 400, a bad token 401,
// something unknown 404, a store that cannot answer now (or in time) 503,
// anything else 500 (logged, with a message that says nothing of the
// internals).
func Error(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var pe *ParamError
	code, body := http.StatusInternalServerError, errorBody{Error: "internal error"}
	switch {
	case errors.As(err, &pe):
		code, body = http.StatusBadRequest, errorBody{Error: pe.Error(), Parameter: pe.Param}
	case errors.Is(err, errUnauthorized):
		code, body.Error = http.StatusUnauthorized, err.Error()
		w.Header().Set("WWW-Authenticate", `Bearer realm="txpipe"`)
	case errors.Is(err, errRouteNotFound):
		code, body.Error = http.StatusNotFound, err.Error()
	case errors.Is(err, errMethodNotAllowed):
		code, body.Error = http.StatusMethodNotAllowed, err.Error()
	case errors.Is(err, errTooLarge):
		code, body.Error = http.StatusRequestEntityTooLarge, err.Error()
	case errors.Is(err, txpipe.ErrNotFound):
		code, body.Error = http.StatusNotFound, err.Error()
	case errors.Is(err, txpipe.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		code, body.Error = http.StatusServiceUnavailable, "the store cannot answer now, try again"
		log.Warn("api: store unavailable", "route", r.Pattern, "err", err)
	case errors.Is(err, context.Canceled):
		code, body.Error = 499, "request canceled" // the client went away
	default:
		log.Error("api: internal error", "route", r.Pattern, "err", err)
	}
	body.Error = mask.Digits(body.Error)
	writeJSON(w, code, body)
}
