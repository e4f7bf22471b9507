// Package clustercheck answers HAProxy's `option httpchk` for a Galera
// node: 200 when the node may take traffic (wsrep_local_state 4, Synced;
// optionally 2, Donor/Desynced), 503 with a one-line reason otherwise.
//
// The state is read through a StateSource (a *sql.DB in production) and
// cached for a short time; concurrent checks that miss the cache share one
// query, so many haproxy processes checking every second cost the database
// at most one query per cache period.
package clustercheck

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Galera's wsrep_local_state values.
const (
	StateJoining = 1
	StateDonor   = 2 // Donor/Desynced
	StateJoined  = 3
	StateSynced  = 4
)

// StateName names a wsrep_local_state value as Galera's
// wsrep_local_state_comment does.
func StateName(s int) string {
	switch s {
	case StateJoining:
		return "Joining"
	case StateDonor:
		return "Donor/Desynced"
	case StateJoined:
		return "Joined"
	case StateSynced:
		return "Synced"
	}
	return "Unknown"
}

// StateSource reads the node's wsrep_local_state.
type StateSource interface {
	LocalState(ctx context.Context) (int, error)
}

// Options tune a Checker. The zero value is usable.
type Options struct {
	// AvailableWhenDonor also answers 200 in state 2 (Donor/Desynced), for
	// clusters whose donors keep serving (non-blocking SST, or desync for
	// backups).
	AvailableWhenDonor bool
	// CacheTTL is how long a read state (or a failure to read it) is
	// reused. 0 reads the state for every check; concurrent checks still
	// share one read.
	CacheTTL time.Duration
	// QueryTimeout bounds one state read; 0 means 2s.
	QueryTimeout time.Duration
	// Logger gets state changes; nil discards them.
	Logger *slog.Logger
}

// Result is one verdict.
type Result struct {
	State     int   // wsrep_local_state; 0 when Err is set
	Err       error // why the state could not be read
	Available bool  // the node should take traffic
}

// Message is the one-line text body for r.
func (r Result) Message() string {
	switch {
	case r.Err != nil:
		return fmt.Sprintf("Galera node is not available: %v.", r.Err)
	case r.Available && r.State == StateSynced:
		return "Galera node is synced."
	case r.Available:
		return fmt.Sprintf("Galera node is available (state %d: %s).", r.State, StateName(r.State))
	}
	return fmt.Sprintf("Galera node is not synced (state %d: %s).", r.State, StateName(r.State))
}

// Checker decides whether the node is available and serves the verdict
// over HTTP. It is safe for concurrent use.
type Checker struct {
	src  StateSource
	opts Options
	now  func() time.Time

	flight singleflight.Group
	mu     sync.Mutex
	last   Result
	at     time.Time // when last was read; zero before the first read
}

// NewChecker returns a Checker reading from src.
func NewChecker(src StateSource, opts Options) *Checker {
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Checker{src: src, opts: opts, now: time.Now}
}

// Check returns the current verdict, from the cache when it is fresh.
// ctx bounds only this caller's wait: a read already under way for other
// callers is not cancelled with it.
func (c *Checker) Check(ctx context.Context) Result {
	c.mu.Lock()
	if !c.at.IsZero() && c.now().Sub(c.at) < c.opts.CacheTTL {
		r := c.last
		c.mu.Unlock()
		return r
	}
	c.mu.Unlock()

	ch := c.flight.DoChan("state", func() (any, error) {
		return c.read(context.WithoutCancel(ctx)), nil
	})
	select {
	case res := <-ch:
		return res.Val.(Result)
	case <-ctx.Done():
		return Result{Err: fmt.Errorf("check abandoned: %w", ctx.Err())}
	}
}

// read queries the source once and records the verdict in the cache.
func (c *Checker) read(ctx context.Context) Result {
	ctx, cancel := context.WithTimeout(ctx, c.opts.QueryTimeout)
	defer cancel()
	state, err := c.src.LocalState(ctx)
	r := Result{State: state, Err: err}
	if err != nil {
		r.State = 0
	} else {
		r.Available = state == StateSynced || (c.opts.AvailableWhenDonor && state == StateDonor)
	}

	c.mu.Lock()
	prev, first := c.last, c.at.IsZero()
	c.last, c.at = r, c.now()
	c.mu.Unlock()
	if first || prev.Available != r.Available || prev.State != r.State || (prev.Err == nil) != (r.Err == nil) {
		c.opts.Logger.Info("galera node state", "state", r.State, "available", r.Available, "reason", r.Message())
	}
	return r
}

// ServeHTTP answers any method on any path, as HAProxy's httpchk needs:
// 200 when available, otherwise 503; the body is Result.Message.
func (c *Checker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	res := c.Check(r.Context())
	body := res.Message() + "\n"
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "close")
	if res.Available {
		w.WriteHeader(http.StatusOK)
	} else {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_, _ = w.Write([]byte(body))
}

// ErrNotGalera says the server has no wsrep_local_state at all.
var ErrNotGalera = errors.New("not a Galera node (no wsrep_local_state status)")
