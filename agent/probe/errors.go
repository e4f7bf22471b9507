package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
)

// Stable failure reasons: the keys of a target's error histogram. The
// http ones carry the status: "http status 503" is a server's answer,
// "haproxy 503" haproxy's own error page (no server answered).
const (
	ReasonTimeout         = "timeout"
	ReasonRefused         = "connection refused"
	ReasonReset           = "connection reset"
	ReasonClosed          = "closed by peer"
	ReasonClosedEarly     = "closed before handshake"
	ReasonClosedByProxy   = "closed by proxy after accept"
	ReasonNoGreeting      = "no greeting"
	ReasonBadHandshake    = "bad handshake"
	ReasonUnexpectedReply = "unexpected reply"
	ReasonHTTPStatus      = "http status"
	ReasonHAProxyStatus   = "haproxy"
	ReasonHTTPBody        = "body mismatch"
	ReasonIdleCut         = "closed while idle"
	ReasonUnknownKind     = "unknown kind"
	ReasonOther           = "other"
)

// Failure is a probe failure with a stable reason for the histogram.
type Failure struct {
	Reason string
	Err    error
}

func (f *Failure) Error() string {
	switch {
	case f.Err == nil:
		return f.Reason
	case f.Reason == "":
		return f.Err.Error()
	}
	return f.Reason + ": " + f.Err.Error()
}

func (f *Failure) Unwrap() error { return f.Err }

func fail(reason string, err error) error { return &Failure{Reason: reason, Err: err} }

func failf(reason, format string, args ...any) error {
	return &Failure{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// MySQLError is an ERR packet from the server (or from whatever answered
// in its place).
type MySQLError struct {
	Code    uint16
	State   string
	Message string
}

func (e *MySQLError) Error() string {
	if e.State != "" {
		return fmt.Sprintf("mysql error %d (%s): %s", e.Code, e.State, e.Message)
	}
	return fmt.Sprintf("mysql error %d: %s", e.Code, e.Message)
}

// Reason maps an attempt's error to a short stable reason: the Failure's
// own reason when there is one, "mysql error N" for a server error, and
// the network condition (timeout, refused, reset, closed) otherwise.
func Reason(err error) string {
	if err == nil {
		return ""
	}
	var me *MySQLError
	if errors.As(err, &me) {
		return fmt.Sprintf("mysql error %d", me.Code)
	}
	var f *Failure
	if errors.As(err, &f) && f.Reason != "" {
		return f.Reason
	}
	return netReason(err)
}

func netReason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return ReasonTimeout
	case errors.As(err, &ne) && ne.Timeout():
		return ReasonTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return ReasonRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return ReasonReset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return ReasonClosed
	}
	return ReasonOther
}
