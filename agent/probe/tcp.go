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
	"time"
)

// maxExpect bounds what a tcp probe reads while waiting for Expect.
const maxExpect = 64 << 10

// ProbeTCP connects to t.Address; with Send it writes those bytes, and
// with Expect it reads until the reply matches the regular expression.
// Without Expect and with Linger, it then waits up to Linger for the peer
// to close: a proxy that accepts and then cannot reach any server (a ghost
// pointing at a dead backend) closes within that time, and that fails.
func ProbeTCP(ctx context.Context, t Target, _ *Result, _ *slog.Logger) error {
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
	if re == nil {
		return linger(ctx, conn, t.Linger)
	}
	var got []byte
	buf := make([]byte, 4096)
	for len(got) < maxExpect {
		n, err := conn.Read(buf)
		got = append(got, buf[:n]...)
		if re.Match(got) {
			return nil
		}
		if err != nil {
			return fail(ReasonUnexpectedReply, fmt.Errorf("no match for %q in %q: %w", t.Expect, truncate(got, 80), err))
		}
	}
	return failf(ReasonUnexpectedReply, "no match for %q in the first %d bytes", t.Expect, maxExpect)
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// linger waits up to d (bounded by ctx) and fails if the peer closes the
// connection meanwhile. Bytes from the peer end the wait: it is alive.
func linger(ctx context.Context, conn net.Conn, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	end := time.Now().Add(d)
	if dl, ok := ctx.Deadline(); ok && dl.Before(end) {
		end = dl
	}
	if err := conn.SetReadDeadline(end); err != nil {
		return err
	}
	var b [1]byte
	_, err := conn.Read(b[:])
	switch {
	case err == nil, errors.Is(err, os.ErrDeadlineExceeded):
		return nil
	case netReason(err) == ReasonClosed || netReason(err) == ReasonReset:
		return fail(ReasonClosedEarly, err)
	}
	return err
}
