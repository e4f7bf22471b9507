package probe

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"regexp"
)

// maxExpect bounds what a tcp probe reads while waiting for Expect.
const maxExpect = 64 << 10

// ProbeTCP connects to t.Address; with Send it writes those bytes, and
// with Expect it reads until the reply matches the regular expression.
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
		return nil
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
