package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"
)

// Who closed a held connection.
const (
	ClosedByServer  = "server"  // an ERR packet, or the close came at the server's wait_timeout
	ClosedByProxy   = "proxy"   // the close came before the server's own idle timeout: the path cut it
	ClosedByUnknown = "unknown" // no way to tell (no login, so no wait_timeout to compare with)
)

// waitTimeoutSlack is how far before the server's wait_timeout a close may
// come and still be attributed to the server (timer granularity).
const waitTimeoutSlack = time.Second

// IdleResult is the outcome of an idle-hold.
type IdleResult struct {
	// IdleMS is the idle time asked for.
	IdleMS float64 `json:"idle_ms"`
	// Closed reports that the path closed the connection; ClosedAfterMS
	// is how long after the idle period began.
	Closed        bool    `json:"closed"`
	ClosedAfterMS float64 `json:"closed_after_ms,omitempty"`
	// ClosedBy is server, proxy or unknown.
	ClosedBy string `json:"closed_by,omitempty"`
	// How is what the close looked like: "eof", "reset", or the ERR
	// packet the server sent first.
	How string `json:"how,omitempty"`
	// LoggedIn reports a completed MySQL login; WaitTimeoutS is the
	// session's @@wait_timeout read right after it.
	LoggedIn     bool `json:"logged_in,omitempty"`
	WaitTimeoutS int  `json:"wait_timeout_s,omitempty"`
}

// ProbeIdleHold opens a connection, stays idle for t.Idle and then uses
// it. Over mysql it logs in when t.User is set (else it reads only the
// handshake; note that servers then apply their pre-login timeout,
// MariaDB's connect_timeout, not wait_timeout), reads @@wait_timeout, and
// pings after the idle period. It blocks on a read the whole time, so a
// close is seen the moment it happens. It fails when the path closed the
// connection, reporting when and, where it can tell, who.
func ProbeIdleHold(ctx context.Context, t Target, r *Result, logger *slog.Logger) error {
	if t.Idle <= 0 {
		return errors.New("idle-hold: idle time must be positive")
	}
	ir := &IdleResult{IdleMS: ms(t.Idle)}
	r.Idle = ir
	switch t.Over {
	case KindMySQL:
		if t.User != "" {
			return idleMySQLLogin(ctx, t, r, ir, logger)
		}
		conn, err := openHandshake(ctx, t.Address, r)
		if err != nil {
			return err
		}
		defer conn.Close()
		if err := holdIdle(ctx, conn, t.Idle, ir, 0); err != nil {
			return err
		}
		r.Note = finishHandshake(ctx, conn)
		return nil
	case "", KindTCP:
		conn, err := dial(ctx, t.Address)
		if err != nil {
			return err
		}
		defer conn.Close()
		if err := holdIdle(ctx, conn, t.Idle, ir, 0); err != nil {
			return err
		}
		if t.Send != "" || t.Expect != "" {
			return ProbeTCP(ctx, Target{Address: t.Address, Send: t.Send, Expect: t.Expect}, r, logger)
		}
		return nil
	default:
		return fmt.Errorf("idle-hold: cannot hold a %q connection (want mysql or tcp)", t.Over)
	}
}

func idleMySQLLogin(ctx context.Context, t Target, r *Result, ir *IdleResult, logger *slog.Logger) error {
	s, err := openSession(ctx, t, logger)
	if s != nil {
		defer s.close()
		r.ServerVersion, r.ConnectionID = s.hs.ServerVersion, s.hs.ConnectionID
	}
	if err != nil {
		return err
	}
	ir.LoggedIn = true
	if err := s.conn.QueryRowContext(ctx, "SELECT @@wait_timeout").Scan(&ir.WaitTimeoutS); err != nil {
		return fmt.Errorf("read wait_timeout: %w", err)
	}
	if err := holdIdle(ctx, s.raw, t.Idle, ir, time.Duration(ir.WaitTimeoutS)*time.Second); err != nil {
		return err
	}
	if err := s.conn.PingContext(ctx); err != nil {
		// Closed between the end of the idle period and the ping.
		ir.Closed, ir.ClosedAfterMS, ir.ClosedBy, ir.How = true, ir.IdleMS, ClosedByUnknown, netReason(err)
		return fail(ReasonIdleCut+" ("+ClosedByUnknown+")", fmt.Errorf("ping after %s idle: %w", t.Idle, err))
	}
	return nil
}

// holdIdle blocks reading conn until idle has passed (the connection
// survived: nil) or the peer closes it (a Failure saying when). Bytes the
// peer sends meanwhile are read as MySQL packets when they look like one,
// so a server's "disconnected for inactivity" ERR (4031) is reported.
// waitTimeout, when known, tells a server close from a path cut.
func holdIdle(ctx context.Context, conn net.Conn, idle time.Duration, ir *IdleResult, waitTimeout time.Duration) error {
	start := time.Now()
	end := start.Add(idle)
	if dl, ok := ctx.Deadline(); ok && dl.Before(end) {
		return fmt.Errorf("idle-hold: attempt deadline %s is shorter than the idle time %s", time.Until(dl).Round(time.Millisecond), idle)
	}
	if err := conn.SetReadDeadline(end); err != nil {
		return err
	}
	var got []byte
	buf := make([]byte, 512)
	for {
		n, err := conn.Read(buf)
		if n > 0 && len(got) < 4096 {
			got = append(got, buf[:n]...)
		}
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The idle period passed with the connection open. Hand the
			// socket back without a deadline; ctx bounds what follows.
			return conn.SetReadDeadline(time.Time{})
		}
		elapsed := time.Since(start)
		ir.Closed, ir.ClosedAfterMS = true, ms(elapsed)
		ir.How = closeHow(err)
		ir.ClosedBy = ClosedByUnknown
		if me := errPacketIn(got); me != nil {
			ir.How = me.Error()
			ir.ClosedBy = ClosedByServer
		} else if waitTimeout > 0 {
			ir.ClosedBy = ClosedByProxy
			if elapsed >= waitTimeout-waitTimeoutSlack {
				ir.ClosedBy = ClosedByServer
			}
		}
		return fail(ReasonIdleCut+" ("+ir.ClosedBy+")",
			fmt.Errorf("closed after %s idle (%s)", elapsed.Round(10*time.Millisecond), ir.How))
	}
}

func closeHow(err error) string {
	switch netReason(err) {
	case ReasonClosed:
		return "eof"
	case ReasonReset:
		return "reset"
	}
	if errors.Is(err, io.EOF) {
		return "eof"
	}
	return err.Error()
}

// errPacketIn finds an ERR packet at the start of what the server sent
// while the connection was idle.
func errPacketIn(b []byte) *MySQLError {
	if len(b) < 5 {
		return nil
	}
	n := int(b[0]) | int(b[1])<<8 | int(b[2])<<16
	if b[4] != 0xff || n < 3 || len(b) < 4+n {
		return nil
	}
	return parseErrPacket(b[4 : 4+n])
}

func ms(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}
