// Package probe runs synthetic connections through haproxy's listeners to
// the backends behind them, in the style of blackbox_exporter: a probe kind
// is a Prober function registered by name, with everything it needs passed
// in. Run drives N attempts per target with bounded concurrency and a
// deadline per attempt, and summarises them in a Report whose JSON shape
// is the contract of `haguard probe --format json` (docs/probe.md).
//
// Kinds: tcp (connect, optional send/expect), mysql (the server's v10
// handshake through haproxy, optional login), http (status and body) and
// idle-hold (hold a connection idle, then use it: reports whether and when
// the path closed it). ReadStats reads haproxy's `show stat` for the
// runtime health of every server.
package probe

import (
	"context"
	"log/slog"
	"time"
)

// Probe kinds.
const (
	KindTCP      = "tcp"
	KindMySQL    = "mysql"
	KindHTTP     = "http"
	KindIdleHold = "idle-hold"
)

// Target is one address to probe and how.
type Target struct {
	// Address is host:port.
	Address string
	// Kind is tcp, mysql, http or idle-hold.
	Kind string
	// Count is the number of attempts; 0 means Options.Count, then the
	// default (see AttemptsFor).
	Count int
	// Timeout bounds one attempt (for idle-hold: each step around the
	// idle period); 0 means Options.Timeout.
	Timeout time.Duration

	// tcp: bytes to send after connecting, and a regular expression the
	// reply must match. Without Expect, Linger is how long to watch for
	// the peer closing right after accept (0: do not watch).
	Send   string
	Expect string
	Linger time.Duration

	// http: request path (default "/"), Host header, wanted status (0
	// means any 2xx) and a regular expression the body must match.
	Path         string
	Host         string
	ExpectStatus int
	ExpectBody   string

	// mysql and idle-hold over mysql: optional credentials. Without a
	// user the probe reads the handshake only. With one it logs in; an
	// "access denied" (1045) answer still counts as OK for the mysql kind
	// (the path reached the server), as in the seed 003 runbook.
	User     string
	Password string

	// idle-hold: how long to stay idle, and the protocol spoken on the
	// held connection ("mysql" or "tcp"; empty means tcp).
	Idle time.Duration
	Over string
}

// Result is what one attempt learned besides pass or fail. The fields are
// inlined into the attempt's JSON.
type Result struct {
	// ServerVersion and ConnectionID come from a MySQL v10 handshake.
	ServerVersion string `json:"server_version,omitempty"`
	ConnectionID  uint32 `json:"connection_id,omitempty"`
	// HTTPStatus is the status code of an http probe.
	HTTPStatus int `json:"http_status,omitempty"`
	// Note explains an OK that is not plain (for example 1045).
	Note string `json:"note,omitempty"`
	// Idle is the outcome of an idle-hold.
	Idle *IdleResult `json:"idle,omitempty"`
}

// Prober runs one attempt against t. It fills r with what it learned and
// returns nil when the attempt passed. A failure should be (or wrap) a
// *Failure so that the report can count it under a stable reason; other
// errors are classified by Reason. ctx carries the attempt's deadline.
type Prober func(ctx context.Context, t Target, r *Result, logger *slog.Logger) error

// Probers returns the built-in probe kinds by name. It builds a fresh map
// on each call: callers may add or replace kinds in their copy.
func Probers() map[string]Prober {
	return map[string]Prober{
		KindTCP:      ProbeTCP,
		KindMySQL:    ProbeMySQL,
		KindHTTP:     ProbeHTTP,
		KindIdleHold: ProbeIdleHold,
	}
}
