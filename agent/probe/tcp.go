package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strconv"
	"time"
)

// maxExpect bounds what a tcp probe reads while waiting for Expect.
const maxExpect = 64 << 10

// maxGreeting bounds the greeting kept in a Result.
const maxGreeting = 64

// ProbeTCP connects to t.Address; with Send it writes those bytes, and
// with Expect it reads until the reply matches the regular expression.
// Without Expect it watches the connection: bytes from the server pass
// at once (a greeting, recorded in r.Greeting), the peer closing fails
// (ReasonClosedByProxy: what haproxy does when it finds no server), and
// silence until LingerFor(t) passes. When t.Baseline says the server
// greeted before, the greeting is required until the attempt's deadline
// (ReasonNoGreeting).
func ProbeTCP(ctx context.Context, t Target, r *Result, _ *slog.Logger) error {
	var re *regexp.Regexp
	if t.Expect != "" {
		var err error
		if re, err = regexp.Compile(t.Expect); err != nil {
			return fmt.Errorf("expect: %w", err)
		}
	}
	conn, err := dial(ctx, t.Address)
	if err != nil {
		return err
	}
	defer conn.Close()
	if t.Send != "" {
		if _, err := io.WriteString(conn, t.Send); err != nil {
			return err
		}
	}
	switch {
	case re != nil:
		return expect(conn, re, t.Expect)
	case greetingRequired(t):
		return awaitGreeting(ctx, conn, t, r, time.Now())
	}
	return watch(ctx, conn, t, r)
}

func expect(conn net.Conn, re *regexp.Regexp, pattern string) error {
	var got []byte
	buf := make([]byte, 4096)
	for len(got) < maxExpect {
		n, err := conn.Read(buf)
		got = append(got, buf[:n]...)
		if re.Match(got) {
			return nil
		}
		if err != nil {
			return fail(ReasonUnexpectedReply, fmt.Errorf("no match for %q in %q: %w", pattern, truncate(got, 80), err))
		}
	}
	return failf(ReasonUnexpectedReply, "no match for %q in the first %d bytes", pattern, maxExpect)
}

// watch waits up to LingerFor(t) (bounded by ctx) and fails if the peer
// closes the connection meanwhile. Bytes from the peer end the wait: the
// server is there (without Send they are its greeting). When the linger
// ends in silence but another attempt of the same run was greeted, the
// server here should greet too: the wait goes on until ctx's deadline.
func watch(ctx context.Context, conn net.Conn, t Target, r *Result) error {
	d := LingerFor(t)
	if d <= 0 {
		return nil
	}
	start := time.Now()
	end := start.Add(d)
	if dl, ok := ctx.Deadline(); ok && dl.Before(end) {
		end = dl
	}
	if err := conn.SetReadDeadline(end); err != nil {
		return err
	}
	buf := make([]byte, maxGreeting)
	n, err := conn.Read(buf)
	switch {
	case n > 0:
		if t.Send == "" {
			r.Greeting = quote(buf[:n])
			if t.greeted != nil {
				t.greeted.Store(true)
			}
		}
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		if t.greeted != nil && t.greeted.Load() && t.Send == "" {
			return awaitGreeting(ctx, conn, t, r, start)
		}
		return nil
	case closed(err):
		return fail(ReasonClosedByProxy, fmt.Errorf("closed %s after accept (%w)", since(start), err))
	}
	return err
}

// awaitGreeting reads until the server's first bytes, the peer's close
// or ctx's deadline, whichever comes first; start is when the connection
// was accepted.
func awaitGreeting(ctx context.Context, conn net.Conn, t Target, r *Result, start time.Time) error {
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetReadDeadline(dl); err != nil {
			return err
		}
	}
	buf := make([]byte, maxGreeting)
	n, err := conn.Read(buf)
	switch {
	case n > 0:
		r.Greeting = quote(buf[:n])
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		if t.Baseline != nil && t.Baseline.Greets {
			return failf(ReasonNoGreeting, "nothing in %s; before, the server greeted with \"%s\"", since(start), t.Baseline.Greeting)
		}
		return failf(ReasonNoGreeting, "nothing in %s, while other attempts were greeted (a path with no server behind it?)", since(start))
	case closed(err):
		return fail(ReasonClosedByProxy, fmt.Errorf("closed %s after accept, before any greeting (%w)", since(start), err))
	}
	return err
}

// closed: the peer closed (FIN) or reset the connection.
func closed(err error) bool {
	r := netReason(err)
	return r == ReasonClosed || r == ReasonReset
}

// quote is b as a Go string literal without its quotes: printable, with
// \r, \n and \x00 escapes.
func quote(b []byte) string {
	q := strconv.QuoteToASCII(string(b))
	return q[1 : len(q)-1]
}

// since is the time since start for a message: "0.4ms", "3.01s".
func since(start time.Time) string { return fmtMS(ms(time.Since(start))) }

// fmtMS formats milliseconds for a message: "0.4ms", "12ms", "3.01s".
func fmtMS(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.2fs", v/1000)
	case v >= 10:
		return fmt.Sprintf("%.0fms", v)
	}
	return fmt.Sprintf("%.1fms", v)
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
