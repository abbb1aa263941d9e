package retry

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// fakeClock advances only when the code under test sleeps.
type fakeClock struct {
	now    time.Time
	sleeps []time.Duration
}

func (c *fakeClock) policy(p Policy) Policy {
	p.Now = func() time.Time { return c.now }
	p.Sleep = func(ctx context.Context, d time.Duration) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		c.sleeps = append(c.sleeps, d)
		c.now = c.now.Add(d)
		return nil
	}
	return p
}

var errDown = errors.New("connection refused")

func TestDo(t *testing.T) {
	for _, tc := range []struct {
		name      string
		policy    Policy
		fails     int   // attempts that fail before one succeeds (-1: all)
		failWith  error // what they fail with
		wantErr   string
		wantBound bool
		wantCalls int
		wantWaits []time.Duration
	}{
		{name: "success at once", fails: 0, wantCalls: 1},
		{name: "backoff doubles up to max", policy: Policy{Initial: time.Second, Max: 3 * time.Second}, fails: 4, failWith: errDown,
			wantCalls: 5, wantWaits: []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}},
		{name: "bound ends it, last try at the bound", policy: Policy{What: "ping db 10.0.0.1:3306", Initial: time.Second, Max: 4 * time.Second, Bound: 10 * time.Second},
			fails: -1, failWith: errDown, wantErr: "ping db 10.0.0.1:3306: gave up after 5 attempts in 10s: connection refused", wantBound: true,
			wantCalls: 5, wantWaits: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 3 * time.Second}},
		{name: "permanent error at once", policy: Policy{What: "login"}, fails: -1, failWith: Permanent(errors.New("access denied")),
			wantErr: "login: access denied", wantCalls: 1},
		{name: "not transient at once", policy: Policy{What: "q", Transient: func(err error) bool { return errors.Is(err, errDown) }},
			fails: -1, failWith: errors.New("syntax"), wantErr: "q: syntax", wantCalls: 1},
		{name: "transient retried", policy: Policy{Transient: func(err error) bool { return errors.Is(err, errDown) }},
			fails: 2, failWith: errDown, wantCalls: 3, wantWaits: []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &fakeClock{now: time.Unix(0, 0)}
			calls := 0
			err := Do(context.Background(), c.policy(tc.policy), func(context.Context) error {
				calls++
				if tc.fails < 0 || calls <= tc.fails {
					return tc.failWith
				}
				return nil
			})
			if tc.wantErr == "" && err != nil {
				t.Fatalf("err = %v", err)
			}
			if tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if errors.Is(err, ErrBound) != tc.wantBound {
				t.Errorf("errors.Is(err, ErrBound) = %v", !tc.wantBound)
			}
			if tc.failWith != nil && err != nil && !errors.Is(err, errors.Unwrap(tc.failWith)) && !errors.Is(err, tc.failWith) {
				t.Errorf("err %v does not wrap %v", err, tc.failWith)
			}
			if calls != tc.wantCalls {
				t.Errorf("calls = %d, want %d", calls, tc.wantCalls)
			}
			if len(c.sleeps) != len(tc.wantWaits) {
				t.Fatalf("waits = %v, want %v", c.sleeps, tc.wantWaits)
			}
			for i := range c.sleeps {
				if c.sleeps[i] != tc.wantWaits[i] {
					t.Fatalf("waits = %v, want %v", c.sleeps, tc.wantWaits)
				}
			}
		})
	}
}

func TestDoStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := Do(ctx, Policy{What: "fetch", Initial: time.Hour}, func(context.Context) error {
		calls++
		cancel()
		return errDown
	})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errDown) || !strings.HasPrefix(err.Error(), "fetch: ") {
		t.Fatalf("err = %v", err)
	}
	if calls != 1 {
		t.Fatalf("calls = %d", calls)
	}
}
