package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

var quiet = slog.New(slog.DiscardHandler)

func attemptCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// deadAddr is a loopback address where nothing listens.
func deadAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestProbeMySQL(t *testing.T) {
	cases := []struct {
		name       string
		mode       fakeMode
		user       string
		wantReason string // "" = OK
		wantNote   bool
	}{
		{"handshake", fakeHandshake, "", "", false},
		{"too many connections", fakeTooMany, "", "mysql error 1040", false},
		{"closed after accept", fakeClose, "", ReasonClosedEarly, false},
		{"never answers", fakeSilent, "", ReasonTimeout, false},
		{"login denied still proves the path", fakeDeny, "probe", "", true},
		{"login: too many connections", fakeTooMany, "probe", "mysql error 1040", false},
		{"login: closed after accept", fakeClose, "probe", ReasonClosedEarly, false},
		{"login: never answers", fakeSilent, "probe", ReasonTimeout, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := startFakeMySQL(t, tc.mode)
			var r Result
			err := ProbeMySQL(attemptCtx(t, 500*time.Millisecond), Target{Address: addr, Kind: KindMySQL, User: tc.user, Password: "x"}, &r, quiet)
			if got := Reason(err); got != tc.wantReason {
				t.Fatalf("reason = %q (err %v), want %q", got, err, tc.wantReason)
			}
			if tc.wantReason == "" && r.ServerVersion != fakeVersion {
				t.Errorf("server version = %q, want %q", r.ServerVersion, fakeVersion)
			}
			if tc.wantReason == "" && r.ConnectionID == 0 {
				t.Errorf("connection id not read")
			}
			if (r.Note != "") != tc.wantNote {
				t.Errorf("note = %q, want one: %v", r.Note, tc.wantNote)
			}
		})
	}
}

// TestProbeMySQLFinishesLogin: a credential-less probe answers the
// handshake (as NoLoginUser) instead of dropping the connection, which
// servers count towards max_connect_errors (see finishHandshake).
func TestProbeMySQLFinishesLogin(t *testing.T) {
	f := startFake(t, fakeHandshake)
	addr := f.ln.Addr().String()
	rep := Run(context.Background(), []Target{{Address: addr, Kind: KindMySQL, Count: 5}}, Options{Timeout: 2 * time.Second})
	if !rep.OK {
		t.Fatalf("report %+v", rep.Targets[0].Errors)
	}
	for _, a := range rep.Targets[0].Attempts {
		if a.Note != "" {
			t.Errorf("note %q: the 1045 answer to the no-login user is the expected end", a.Note)
		}
	}
	// The fake counts a login once it has read it; the last may still be
	// on its way when Run returns, so wait (bounded) for all five.
	for i := 0; i < 100 && f.loginCount() < 5; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := f.loginCount(); n != 5 {
		t.Fatalf("%d logins answered, want 5", n)
	}
}

func TestProbeMySQLRefused(t *testing.T) {
	err := ProbeMySQL(attemptCtx(t, time.Second), Target{Address: deadAddr(t)}, &Result{}, quiet)
	if got := Reason(err); got != ReasonRefused {
		t.Fatalf("reason = %q (%v), want %q", got, err, ReasonRefused)
	}
}

func TestReadHandshakeErrors(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, ReasonClosedEarly},
		{"truncated header", []byte{10, 0}, ReasonBadHandshake},
		{"truncated payload", []byte{10, 0, 0, 0, 10, 'x'}, ReasonBadHandshake},
		{"protocol 9", []byte{1, 0, 0, 0, 9}, ReasonBadHandshake},
		{"no NUL", []byte{3, 0, 0, 0, 10, '5', '.'}, ReasonBadHandshake},
		{"http reply", []byte("HTTP/1.0 400 Bad request\r\n"), ReasonBadHandshake},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadHandshake(strings.NewReader(string(tc.in)))
			if got := Reason(err); got != tc.want {
				t.Fatalf("reason = %q (%v), want %q", got, err, tc.want)
			}
		})
	}
}

func TestProbeTCP(t *testing.T) {
	echo := startEcho(t)
	cases := []struct {
		name   string
		t      Target
		reason string
	}{
		{"connect, silent server", Target{Address: echo, Kind: KindTCP}, ""},
		{"send expect", Target{Address: echo, Kind: KindTCP, Send: "PING\n", Expect: "^PING"}, ""},
		{"expect mismatch", Target{Address: echo, Kind: KindTCP, Send: "PING\n", Expect: "PONG"}, ReasonUnexpectedReply},
		{"refused", Target{Address: deadAddr(t), Kind: KindTCP}, ReasonRefused},
		{"linger: alive", Target{Address: echo, Kind: KindTCP, Linger: 50 * time.Millisecond}, ""},
		{"linger: greeting counts as alive", Target{Address: startFakeMySQL(t, fakeHandshake), Kind: KindTCP, Linger: time.Second}, ""},
		{"linger: closed after accept", Target{Address: startFakeMySQL(t, fakeClose), Kind: KindTCP, Linger: time.Second}, ReasonClosedByProxy},
		{"default linger: closed after accept", Target{Address: startFakeMySQL(t, fakeClose), Kind: KindTCP}, ReasonClosedByProxy},
		{"no linger: closed after accept passes", Target{Address: startFakeMySQL(t, fakeClose), Kind: KindTCP, Linger: NoLinger}, ""},
		{"greeted before: silent now fails", Target{Address: echo, Kind: KindTCP, Baseline: &Expectation{Greets: true, Greeting: "SSH-2.0"}}, ReasonNoGreeting},
		{"greeted before: greets now", Target{Address: startFakeMySQL(t, fakeHandshake), Kind: KindTCP, Baseline: &Expectation{Greets: true}}, ""},
		{"greeted before: closed now", Target{Address: startFakeMySQL(t, fakeClose), Kind: KindTCP, Baseline: &Expectation{Greets: true}}, ReasonClosedByProxy},
		{"silent before: silent now passes", Target{Address: echo, Kind: KindTCP, Linger: 50 * time.Millisecond, Baseline: &Expectation{}}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r Result
			err := ProbeTCP(attemptCtx(t, 400*time.Millisecond), tc.t, &r, quiet)
			if got := Reason(err); got != tc.reason {
				t.Fatalf("reason = %q (%v), want %q", got, err, tc.reason)
			}
			if strings.Contains(tc.name, "greets now") && !strings.Contains(r.Greeting, fakeVersion) {
				t.Errorf("greeting %q, want the handshake with %q", r.Greeting, fakeVersion)
			}
		})
	}
}

// startEcho echoes each connection's bytes back until the peer closes.
func startEcho(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

func TestProbeHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/synced":
			fmt.Fprintln(w, "Galera node is synced.")
		case "/host":
			fmt.Fprintln(w, r.Host)
		default:
			http.Error(w, "Galera node is not synced.", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	cases := []struct {
		name   string
		t      Target
		reason string
		status int
	}{
		{"2xx", Target{Address: addr, Path: "/synced"}, "", 200},
		{"body", Target{Address: addr, Path: "synced", ExpectBody: "is synced"}, "", 200},
		{"host header", Target{Address: addr, Path: "/host", Host: "db.example", ExpectBody: "^db.example"}, "", 200},
		{"503", Target{Address: addr, Path: "/other"}, "http status 503", 503},
		{"503 expected", Target{Address: addr, Path: "/other", ExpectStatus: 503}, "", 503},
		{"body mismatch", Target{Address: addr, Path: "/synced", ExpectBody: "not synced"}, ReasonHTTPBody, 200},
		{"refused", Target{Address: deadAddr(t)}, ReasonRefused, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r Result
			err := ProbeHTTP(attemptCtx(t, time.Second), tc.t, &r, quiet)
			if got := Reason(err); got != tc.reason {
				t.Fatalf("reason = %q (%v), want %q", got, err, tc.reason)
			}
			if r.HTTPStatus != tc.status {
				t.Errorf("status = %d, want %d", r.HTTPStatus, tc.status)
			}
		})
	}
}

func TestProbeIdleHold(t *testing.T) {
	cases := []struct {
		name     string
		mode     fakeMode
		over     string
		idle     time.Duration
		closed   bool
		closedBy string
	}{
		{"survives", fakeHandshake, KindMySQL, 200 * time.Millisecond, false, ""},
		{"survives over tcp", fakeHandshake, KindTCP, 200 * time.Millisecond, false, ""},
		{"plain close", fakeIdleClose, KindMySQL, 5 * time.Second, true, ClosedByUnknown},
		{"server ERR 4031", fakeIdleErr, KindMySQL, 5 * time.Second, true, ClosedByServer},
		{"close over tcp", fakeIdleClose, KindTCP, 5 * time.Second, true, ClosedByUnknown},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := startFakeMySQL(t, tc.mode)
			var r Result
			begin := time.Now()
			err := ProbeIdleHold(attemptCtx(t, tc.idle+2*time.Second), Target{Address: addr, Over: tc.over, Idle: tc.idle}, &r, quiet)
			took := time.Since(begin)
			if r.Idle == nil {
				t.Fatal("no idle result")
			}
			if r.Idle.Closed != tc.closed || r.Idle.ClosedBy != tc.closedBy {
				t.Fatalf("closed=%v by %q, want %v by %q (err %v)", r.Idle.Closed, r.Idle.ClosedBy, tc.closed, tc.closedBy, err)
			}
			if !tc.closed {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if !strings.HasPrefix(Reason(err), ReasonIdleCut) {
				t.Fatalf("reason = %q (%v)", Reason(err), err)
			}
			// The close is seen when it happens, not at the end of the idle period.
			if took >= tc.idle || r.Idle.ClosedAfterMS < ms(fakeIdleAfter)/2 || r.Idle.ClosedAfterMS >= ms(tc.idle) {
				t.Fatalf("close reported after %.0f ms (probe took %s), want about %s", r.Idle.ClosedAfterMS, took, fakeIdleAfter)
			}
		})
	}
}

func TestIdleHoldNeedsIdleWithinDeadline(t *testing.T) {
	addr := startFakeMySQL(t, fakeHandshake)
	err := ProbeIdleHold(attemptCtx(t, 100*time.Millisecond), Target{Address: addr, Over: KindTCP, Idle: time.Second}, &Result{}, quiet)
	if err == nil || !strings.Contains(err.Error(), "shorter than the idle time") {
		t.Fatalf("err = %v", err)
	}
	if err := ProbeIdleHold(context.Background(), Target{Address: addr}, &Result{}, quiet); err == nil {
		t.Fatal("zero idle accepted")
	}
}

func TestReason(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{context.DeadlineExceeded, ReasonTimeout},
		{fmt.Errorf("read: %w", io.EOF), ReasonClosed},
		{fail("", &MySQLError{Code: 1040}), "mysql error 1040"},
		{fail(ReasonHTTPBody, errors.New("x")), ReasonHTTPBody},
		{errors.New("weird"), ReasonOther},
	}
	for _, tc := range cases {
		if got := Reason(tc.err); got != tc.want {
			t.Errorf("Reason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
