// Package probe runs synthetic connections through haproxy's listeners to
// the backends behind them, in the style of blackbox_exporter: a probe kind
// is a Prober function registered by name, with everything it needs passed
// in. Run drives N attempts per target with bounded concurrency and a
// deadline per attempt, and summarises them in a Report whose JSON shape
// is the contract of `haguard probe --format json` (docs/probe.md).
//
// Kinds: tcp (connect, then watch for the server's greeting or for the
// proxy closing the accepted connection; optional send/expect), mysql (the
// server's v10 handshake through haproxy, optional login), http (status
// and body; haproxy's own error pages fail) and idle-hold (hold a
// connection idle, then use it: reports whether and when the path closed
// it). Learn records what each target looked like before a change (a
// Baseline) so that a later Run holds it to that. ReadStats reads
// haproxy's `show stat` for the runtime health of every server.
package probe

import (
	"context"
	"log/slog"
	"sync/atomic"
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
	// the peer closing right after accept, which is what haproxy does
	// when it finds no server: 0 means the default (LingerFor: derived
	// from GiveUp), NoLinger (any negative value) means do not watch.
	Send   string
	Expect string
	Linger time.Duration

	// GiveUp is how long haproxy behind this address may take to give
	// up on a server that refuses connections: `retries` turn-arounds of
	// min(`timeout connect`, 1s) each (0: at once). The default linger
	// and every attempt's deadline allow for it, so that haproxy's own
	// verdict (a close, a 503) arrives before ours. Target selection
	// fills it from the haproxy config, or with haproxy's defaults
	// (DefaultGiveUp) for an address the config does not bind.
	GiveUp time.Duration
	// Backends are the backends the listener at this address routes to
	// (use_backend, default_backend, or a listen's own servers), for the
	// backend verdict of WithHealth.
	Backends []string
	// ErrorPages are the bodies the haproxy config answers with for its
	// own errors (errorfile, http-error), by status; haproxy's built-in
	// pages are always recognised (see HAProxyError).
	ErrorPages map[int][]string
	// Baseline is what a probe of this address saw before a change
	// (Learn, Baseline.Apply), nil when there is none. With one, a tcp
	// server that greeted then must greet now, and an http status a
	// server answered then passes now.
	Baseline *Expectation

	// greeted is shared by the attempts of one lingering tcp target
	// during a Run: set once any of them was greeted, it makes a silent
	// attempt keep waiting for its own greeting (see watch).
	greeted *atomic.Bool

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
	// Greeting is what a tcp server sent first, unasked (quoted, at most
	// 64 bytes): SSH, SMTP, FTP, POP3, IMAP and MySQL servers speak first.
	Greeting string `json:"greeting,omitempty"`
	// HTTPStatus is the status code of an http probe.
	HTTPStatus int `json:"http_status,omitempty"`
	// ByHAProxy: the http response is haproxy's own error page, not a
	// server's answer.
	ByHAProxy bool `json:"by_haproxy,omitempty"`
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
