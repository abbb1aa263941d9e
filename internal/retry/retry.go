// Package retry runs an operation until it succeeds, with exponential
// backoff, within a bound. Every wait of txpipe on something outside (a
// broker, a database, a webhook) goes through it, so each has a bound, a
// clear error naming what was waited for, and a permanent error fails at
// once instead of being retried.
package retry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Policy says how an operation is retried.
type Policy struct {
	// What names the operation and the address it waits on, for logs and
	// errors ("write stream rows to 127.0.0.1:3306").
	What string
	// Initial is the first wait (default 100 ms); each wait doubles up to
	// Max (default 5 s).
	Initial, Max time.Duration
	// Bound is how long the operation is retried in all (0: until ctx ends).
	Bound time.Duration
	// Transient tells which errors are retried; nil retries every error
	// that is not marked Permanent.
	Transient func(error) bool
	// Log gets one line when the operation starts failing and one when it
	// succeeds again (nil: no logs).
	Log *slog.Logger
	// Sleep waits d or until ctx ends (tests inject a fake); nil sleeps.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock of Bound (tests inject a fake); nil is time.Now.
	Now func() time.Time
}

// ErrBound is wrapped by the error of an operation that still failed when
// its bound ran out.
var ErrBound = errors.New("gave up")

type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent marks err as not worth retrying: Do returns it at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// IsPermanent reports whether err was marked Permanent.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}

// Do runs fn until it returns nil, a permanent error, ctx ends or the
// bound runs out. The error names p.What and wraps the last error of fn.
func Do(ctx context.Context, p Policy, fn func(context.Context) error) error {
	initial, maxWait := p.Initial, p.Max
	if initial <= 0 {
		initial = 100 * time.Millisecond
	}
	if maxWait <= 0 {
		maxWait = 5 * time.Second
	}
	now, sleep := p.Now, p.Sleep
	if now == nil {
		now = time.Now
	}
	if sleep == nil {
		sleep = Sleep
	}
	start := now()
	wait := initial
	failing := false
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			if failing && p.Log != nil {
				p.Log.Info("available again", "op", p.What, "attempts", attempt)
			}
			return nil
		}
		if IsPermanent(err) || (p.Transient != nil && !p.Transient(err)) {
			return fmt.Errorf("%s: %w", p.What, err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w (last error: %w)", p.What, ctx.Err(), err)
		}
		elapsed := now().Sub(start)
		if p.Bound > 0 {
			rest := p.Bound - elapsed
			if rest <= 0 {
				return fmt.Errorf("%s: %w after %d attempts in %s: %w", p.What, ErrBound, attempt, elapsed.Round(time.Millisecond), err)
			}
			wait = min(wait, rest) // the last try comes at the bound
		}
		if !failing && p.Log != nil {
			p.Log.Warn("unavailable, retrying with backoff", "op", p.What, "err", err, "bound", p.Bound)
		}
		failing = true
		if serr := sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%s: %w (last error: %w)", p.What, serr, err)
		}
		wait = min(2*wait, maxWait)
	}
}

// Sleep waits d, or returns ctx's error when it ends first.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
