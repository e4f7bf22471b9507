// Package master talks to HAProxy's master CLI (the -S socket of
// master-worker mode): `show proc`, `reload` and `show startup-logs`.
package master

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// MaxAnswer bounds what one command may return.
const MaxAnswer = 4 << 20

// DefaultTimeout applies when the context has no deadline.
const DefaultTimeout = 30 * time.Second

// ErrUnsupported means this HAProxy version's master CLI lacks the command.
var ErrUnsupported = errors.New("not supported by this haproxy's master CLI")

// Client sends one command per connection to a master CLI unix socket.
// The zero value is not usable; build it with New.
type Client struct {
	socket  string
	timeout time.Duration
	dialer  net.Dialer
}

// New returns a client for the master CLI socket at path (for Debian's
// haproxy.service: /run/haproxy-master.sock).
func New(path string) *Client {
	return &Client{socket: path, timeout: DefaultTimeout}
}

// Socket is the path the client dials.
func (c *Client) Socket() string { return c.socket }

// Command sends cmd, half-closes the connection and returns everything
// the master writes before it closes its side (the master CLI is
// non-interactive by default: one command, one answer, then EOF; it
// starts answering only once it has read the end of the request).
func (c *Client) Command(ctx context.Context, cmd string) (string, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	conn, err := c.dialer.DialContext(ctx, "unix", c.socket)
	if err != nil {
		return "", fmt.Errorf("master cli %s: %w", c.socket, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// Unblock the read when ctx is canceled before its deadline.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if _, err := io.WriteString(conn, strings.TrimSpace(cmd)+"\n"); err != nil {
		return "", fmt.Errorf("master cli %s: send %q: %w", c.socket, cmd, ctxErr(ctx, err))
	}
	// The master answers once it sees the end of the request: half-close.
	if uc, ok := conn.(*net.UnixConn); ok {
		if err := uc.CloseWrite(); err != nil {
			return "", fmt.Errorf("master cli %s: send %q: %w", c.socket, cmd, ctxErr(ctx, err))
		}
	}
	b, err := readAnswer(conn, strings.HasPrefix(cmd, "@"))
	if err != nil {
		return string(b), fmt.Errorf("master cli %s: read answer to %q: %w", c.socket, cmd, ctxErr(ctx, err))
	}
	if len(b) > MaxAnswer {
		return "", fmt.Errorf("master cli %s: answer to %q exceeds %d bytes", c.socket, cmd, MaxAnswer)
	}
	return string(b), nil
}

// relayErrors are the master's own answers when it cannot relay a
// command to a worker (`@!PID`): the worker has exited, or is exiting.
// haproxy 3.0 can write one and then leave the connection open (measured:
// about one relay in four to a worker killed 10-200 ms earlier), so these
// end the answer as soon as their line is complete, without the EOF.
var relayErrors = []string{"Can't find the target PID", "Can't connect to the target CLI"}

// relayError returns the master's relay error that s starts with, if its
// line is whole.
func relayError(s string) (string, bool) {
	line, _, complete := strings.Cut(s, "\n")
	if !complete {
		return "", false
	}
	for _, p := range relayErrors {
		if strings.HasPrefix(line, p) {
			return line, true
		}
	}
	return "", false
}

// readAnswer reads until EOF, or, for a relayed command, until a whole
// relay error line. Only the first line can be one: once it is whole and
// is not, the rest is read to EOF unchecked.
func readAnswer(conn net.Conn, relayed bool) ([]byte, error) {
	r := io.LimitReader(conn, MaxAnswer+1)
	b := make([]byte, 0, 4096)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if i := bytes.IndexByte(b, '\n'); relayed && i >= 0 {
			if _, ok := relayError(string(b[:i+1])); ok {
				return b, nil
			}
			relayed = false
		}
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// ctxErr is err as the caller's context explains it: the socket's
// deadline is ctx's, and a cancellation sets it in the past, so a send or
// a read cut by either is ctx.Err(), whichever step it hit.
func ctxErr(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return context.DeadlineExceeded
	}
	return err
}

// ShowProcTimeout bounds one `show proc`: a master answers it at once,
// or refuses the connection while it re-executes. One that accepts and
// stays silent is stopped or stuck, and waiting longer tells nothing more.
const ShowProcTimeout = 5 * time.Second

// ShowProc runs `show proc` and parses it. While HAProxy 2.6 re-executes
// itself during a reload it answers nothing: that is ErrEmptyOutput.
func (c *Client) ShowProc(ctx context.Context) (*ShowProc, error) {
	ctx, cancel := context.WithTimeout(ctx, ShowProcTimeout)
	defer cancel()
	out, err := c.Command(ctx, "show proc")
	if err != nil {
		return nil, err
	}
	if isUnknown(out) {
		return nil, fmt.Errorf("show proc: %w: %s", ErrUnsupported, firstLine(out))
	}
	return ParseShowProc(out)
}

// ReloadResult is the master's answer to `reload`.
type ReloadResult struct {
	// Reported is false for HAProxy < 2.7, whose master closes the
	// connection without a word and reloads asynchronously: watch
	// `show proc` for the new generation instead.
	Reported bool `json:"reported"`
	// Success is the master's "Success=1|0" (2.7+); meaningful only when
	// Reported.
	Success bool `json:"success"`
	// Log holds the startup logs that 2.7+ prints after "--".
	Log string `json:"log,omitempty"`
}

// Reload asks the master to reload. HAProxy 2.7+ answers synchronously
// with Success=1|0 and the startup logs; 2.6 answers nothing.
func (c *Client) Reload(ctx context.Context) (ReloadResult, error) {
	out, err := c.Command(ctx, "reload")
	if err != nil {
		return ReloadResult{}, err
	}
	return ParseReload(out)
}

// ParseReload reads the answer to `reload`.
func ParseReload(out string) (ReloadResult, error) {
	if strings.TrimSpace(out) == "" {
		return ReloadResult{}, nil
	}
	if isUnknown(out) {
		return ReloadResult{}, fmt.Errorf("reload: %w: %s", ErrUnsupported, firstLine(out))
	}
	head, log, _ := strings.Cut(out, "\n")
	var r ReloadResult
	switch strings.TrimSpace(head) {
	case "Success=1":
		r = ReloadResult{Reported: true, Success: true}
	case "Success=0":
		r = ReloadResult{Reported: true}
	default:
		return ReloadResult{}, fmt.Errorf("reload: unexpected answer %q", firstLine(out))
	}
	log = strings.TrimPrefix(log, "--\n")
	r.Log = strings.TrimRight(log, "\n")
	return r, nil
}

// StartupLogs returns `show startup-logs` (on the master CLI since
// HAProxy 2.7); ErrUnsupported on 2.6.
func (c *Client) StartupLogs(ctx context.Context) (string, error) {
	out, err := c.Command(ctx, "show startup-logs")
	if err != nil {
		return "", err
	}
	if isUnknown(out) {
		return "", fmt.Errorf("show startup-logs: %w", ErrUnsupported)
	}
	return out, nil
}

// isUnknown spots the CLI's answer to a command it does not know.
func isUnknown(out string) bool {
	sc := bufio.NewScanner(strings.NewReader(out))
	if !sc.Scan() {
		return false
	}
	l := sc.Text()
	return strings.HasPrefix(l, "Unknown command") || strings.HasPrefix(l, "The following commands are valid")
}

// Commander sends one command to a master CLI (*Client satisfies it).
type Commander interface {
	Command(ctx context.Context, cmd string) (string, error)
}

// WorkerTimeout bounds one command relayed to one worker (`@!PID`). A
// live worker answers a CLI command in milliseconds; one that stays
// silent this long is dead or stuck (a worker killed between `show proc`
// and the command can leave the master's relay to it hanging), and it
// must not eat the budget the other workers still need.
const WorkerTimeout = 10 * time.Second

// AtWorker sends cmd to worker pid through the master and returns its
// answer, waiting at most limit (WorkerTimeout when limit is 0). A
// worker the master cannot reach (relayErrors) is an error naming it.
func AtWorker(ctx context.Context, c Commander, pid int32, cmd string, limit time.Duration) (string, error) {
	if limit <= 0 {
		limit = WorkerTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	out, err := c.Command(cctx, "@!"+strconv.Itoa(int(pid))+" "+cmd)
	if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return out, fmt.Errorf("worker %d did not answer %q within %s: %w", pid, cmd, limit, err)
	}
	if line, ok := relayError(out); err == nil && ok {
		return out, fmt.Errorf("worker %d: %s (it has exited, or is exiting)", pid, line)
	}
	return out, err
}
