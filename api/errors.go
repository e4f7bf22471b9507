package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
)

// ErrNotFound marks an unknown reload id (or anything else that is not
// there). Wrap it: fmt.Errorf("%w: reload %s", api.ErrNotFound, id).
var ErrNotFound = errors.New("not found")

// errUnauthorized is a missing or wrong bearer token.
var errUnauthorized = errors.New("missing or invalid bearer token")

// ErrNotPending marks a confirmation of a reload that does not await one
// (409): confirmed, rolled back, or never provisional.
var ErrNotPending = errors.New("no such reload awaits confirmation")

// errForbidden is a read token on a route that changes something.
var errForbidden = errors.New("this token's scope is read: it cannot change anything (a write token can)")

// ValidationError is a request the API will not act on (422).
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// BusyError is a reload refused with ?wait=false while another runs (409).
type BusyError struct {
	// Running is the id of the transaction that runs now.
	Running string
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("a reload is already running (%s) and wait=false", e.Running)
}

// PreconditionError is a stale If-Match (412).
type PreconditionError struct {
	Want, Have string
}

func (e *PreconditionError) Error() string {
	return fmt.Sprintf("if-match %s is stale: the running config is %s", e.Want, e.Have)
}

// TooManyError is a request refused because as many of its kind as
// allowed already run (429).
type TooManyError struct {
	What  string
	Limit int
}

func (e *TooManyError) Error() string {
	return fmt.Sprintf("%d %s already run, the most at once; try again", e.Limit, e.What)
}

// QueueFullError is a reload refused because the queue is full (503).
type QueueFullError struct{ Depth int }

func (e *QueueFullError) Error() string {
	return fmt.Sprintf("reload queue is full (%d pending)", e.Depth)
}

// errorBody is the JSON body of every error answer.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// classify maps an error to a status and a stable code.
func classify(err error) (int, string, string) {
	var (
		ve  *ValidationError
		be  *BusyError
		pe  *PreconditionError
		qe  *QueueFullError
		te  *TooManyError
		mbe *http.MaxBytesError
		he  *echo.HTTPError
	)
	switch {
	case errors.Is(err, errUnauthorized):
		return http.StatusUnauthorized, "unauthorized", err.Error()
	case errors.Is(err, errForbidden):
		return http.StatusForbidden, "forbidden", err.Error()
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, "body_too_large",
			fmt.Sprintf("request body is larger than %d bytes", mbe.Limit)
	case errors.As(err, &ve):
		return http.StatusUnprocessableEntity, "validation_failed", ve.Error()
	case errors.As(err, &be):
		return http.StatusConflict, "reload_running", be.Error()
	case errors.As(err, &pe):
		return http.StatusPreconditionFailed, "precondition_failed", pe.Error()
	case errors.As(err, &te):
		return http.StatusTooManyRequests, "too_many_requests", te.Error()
	case errors.As(err, &qe):
		return http.StatusServiceUnavailable, "queue_full", qe.Error()
	case errors.Is(err, errShuttingDown):
		return http.StatusServiceUnavailable, "shutting_down", err.Error()
	case errors.Is(err, ErrNotPending):
		return http.StatusConflict, "not_pending", err.Error()
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, "not_found", err.Error()
	case errors.Is(err, ErrNoRuntime):
		return http.StatusNotImplemented, "not_implemented", err.Error()
	case errors.As(err, &he):
		// Echo's own answers: unknown route, wrong method.
		msg := http.StatusText(he.Code)
		if s, ok := he.Message.(string); ok {
			msg = s
		}
		switch he.Code {
		case http.StatusNotFound:
			return he.Code, "not_found", msg
		case http.StatusMethodNotAllowed:
			return he.Code, "method_not_allowed", msg
		case http.StatusRequestEntityTooLarge:
			return he.Code, "body_too_large", msg
		}
		if he.Code >= 400 && he.Code < 500 {
			return he.Code, "bad_request", msg
		}
	}
	return http.StatusInternalServerError, "internal", err.Error()
}

// errorHandler is the server's one HTTPErrorHandler.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			log.Warn("error after the answer was sent", "path", c.Path(), "err", err)
			return
		}
		status, code, msg := classify(err)
		if status == http.StatusInternalServerError {
			log.Error("request failed", "method", c.Request().Method, "path", c.Path(), "err", err)
		}
		if status == http.StatusUnauthorized {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="haguard"`)
		}
		if status == http.StatusRequestEntityTooLarge {
			// The rest of the body is not read; the connection cannot be reused.
			c.Response().Header().Set("Connection", "close")
		}
		var werr error
		if c.Request().Method == http.MethodHead {
			werr = c.NoContent(status)
		} else {
			werr = c.JSON(status, errorBody{Error: errorDetail{Code: code, Message: msg}})
		}
		if werr != nil {
			log.Debug("write error answer", "err", werr)
		}
	}
}
