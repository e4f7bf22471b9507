package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// Request limits that are not configurable.
const (
	maxProbeCount   = 1000
	maxProbeTargets = 64
	// MaxProbeConnections bounds the connections one POST /v1/probes
	// asks for (count × targets); a Prober applies it when the request
	// names no targets and the API cannot count them.
	MaxProbeConnections = 1000
	// MaxLineBytes bounds a candidate's config lines as the config
	// reader does (validate.MaxLineBytes): a line must be shorter (its
	// newline fits the reader's buffer). A longer one is 422.
	MaxLineBytes    = 1 << 20
	maxHistoryLimit = 1000
	maxIDLen        = 64
	statusTimeout   = 10 * time.Second
)

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) openapi(c echo.Context) error {
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, openAPI)
}

// statusBody is GET /v1/status.
type statusBody struct {
	Version      string       `json:"version,omitempty"`
	Unit         *UnitStatus  `json:"unit,omitempty"`
	UnitError    string       `json:"unit_error,omitempty"`
	ConfigSHA256 string       `json:"config_sha256,omitempty"`
	ConfigError  string       `json:"config_error,omitempty"`
	LastReload   *JobView     `json:"last_reload"`
	LastSweep    *sweepBody   `json:"last_sweep"`
	Queue        queueSummary `json:"queue"`
}

type queueSummary struct {
	Running string `json:"running,omitempty"`
	Waiting int    `json:"waiting"`
}

// status reports what it can: a failing part is named, not fatal, so that
// the endpoint stays useful when haproxy is down.
func (s *Server) status(c echo.Context) error {
	u, err := s.unitOf(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	b := statusBody{Version: s.opts.Version}
	if st, err := u.status(ctx); err != nil {
		b.UnitError = err.Error()
	} else {
		b.Unit = &st
	}
	if sha, err := u.Hasher.RunningSHA256(ctx); err != nil {
		b.ConfigError = err.Error()
	} else {
		b.ConfigSHA256 = sha
		c.Response().Header().Set("ETag", strconv.Quote(sha))
	}
	if j, ok := u.queue.lastFinished(); ok {
		b.LastReload = &j
	}
	if r, ok := u.Ghosts.Last(); ok {
		sb := newSweepBody(r, false)
		b.LastSweep = &sb
	}
	for i, j := range u.queue.active() {
		if i == 0 && j.State == stateRunning {
			b.Queue.Running = j.ID
			continue
		}
		b.Queue.Waiting++
	}
	return c.JSON(http.StatusOK, b)
}

// status asks the unit's StatusSource once for every request that
// arrives while a call is in flight (D-Bus and the master CLI answer one
// at a time; 200 pollers must not queue 200 calls). The shared call is not
// cancelled when one of its requesters goes away.
func (u *unit) status(ctx context.Context) (UnitStatus, error) {
	ch := u.statusCalls.DoChan("status", func() (any, error) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), statusTimeout)
		defer cancel()
		return u.Status.Status(cctx)
	})
	select {
	case <-ctx.Done():
		return UnitStatus{}, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return UnitStatus{}, r.Err
		}
		return r.Val.(UnitStatus), nil
	}
}

// checkBody is POST /v1/check.
type checkBody struct {
	OK bool `json:"ok"`
	CheckReport
}

func (s *Server) check(c echo.Context) error {
	u, err := s.unitOf(c)
	if err != nil {
		return err
	}
	cfg, err := s.readBody(c)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(cfg)) == 0 {
		return &ValidationError{Field: "body", Reason: "the config to check is empty"}
	}
	if err := checkLines("body", cfg); err != nil {
		return err
	}
	// A few checks at once (all units together): each is a haproxy -c of
	// up to haproxy.check_memory_max; beyond that, 429 and try again.
	select {
	case s.checks <- struct{}{}:
		defer func() { <-s.checks }()
	default:
		c.Response().Header().Set("Retry-After", "1")
		return &TooManyError{What: "checks", Limit: cap(s.checks)}
	}
	rep, err := u.Checker.Check(c.Request().Context(), cfg)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	// A candidate's findings are not the running config's: the metrics
	// keep those (haguard_findings, set by whoever checks the running config).
	return c.JSON(http.StatusOK, checkBody{OK: rep.Valid && rep.Counts["error"] == 0, CheckReport: rep})
}

// jobParams reads what every job request may say: ?unit, ?wait and
// If-Match.
func (s *Server) jobParams(c echo.Context) (u *unit, wait bool, ifMatch string, err error) {
	if u, err = s.unitOf(c); err != nil {
		return nil, false, "", err
	}
	if wait, err = boolParam(c, "wait", true); err != nil {
		return nil, false, "", err
	}
	ifMatch, err = u.ifMatch(c)
	return u, wait, ifMatch, err
}

// postReload queues a reload: 202 with the job and its Location.
func (s *Server) postReload(c echo.Context) error {
	u, wait, ifMatch, err := s.jobParams(c)
	if err != nil {
		return err
	}
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	var cand []byte
	var files map[string][]byte
	if len(bytes.TrimSpace(body)) > 0 {
		if cand, files, err = parseCandidate(c.Request().Header.Get(echo.HeaderContentType), body); err != nil {
			return err
		}
		if err := checkLines("body", cand); err != nil {
			return err
		}
		for p, b := range files {
			if err := checkLines(p, b); err != nil {
				return err
			}
		}
	}
	within, err := confirmWithin(c)
	if err != nil {
		return err
	}
	return s.submit(c, u, submission{kind: kindReload, candidate: cand, files: files, ifMatch: ifMatch, wait: wait, confirmWithin: within})
}

// Bounds of ?confirm_within.
const (
	minConfirmWithin = time.Second
	maxConfirmWithin = 24 * time.Hour
)

// confirmWithin reads ?confirm_within (a Go duration: 90s, 5m): the
// reload commits provisionally and is rolled back unless confirmed in
// time (docs/reload.md, "Commit-confirmed").
func confirmWithin(c echo.Context) (time.Duration, error) {
	v := c.QueryParam("confirm_within")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < minConfirmWithin || d > maxConfirmWithin {
		return 0, &ValidationError{Field: "confirm_within", Reason: fmt.Sprintf("%q: want a duration from %v to %v (90s, 5m)", v, minConfirmWithin, maxConfirmWithin)}
	}
	return d, nil
}

// confirmBody is POST /v1/reloads/{id}/confirm's answer.
type confirmBody struct {
	ID           string `json:"id"`
	Confirmation string `json:"confirmation"`
	// Entry is the reload's history entry, its confirmation recorded.
	Entry any `json:"entry"`
}

// confirm makes a provisional reload final. It does not queue: it needs
// only the transaction lock, for a moment (a reload that runs is refused
// anyway while one awaits confirmation).
func (s *Server) confirm(c echo.Context) error {
	u, err := s.unitOf(c)
	if err != nil {
		return err
	}
	id := c.Param("id")
	if !validID(id) {
		return fmt.Errorf("%w: reload %q", ErrNotFound, id)
	}
	if err := s.decodeJSON(c, &struct{}{}); err != nil {
		return err
	}
	o, err := u.Reloader.Confirm(c.Request().Context(), id)
	if err != nil {
		return fmt.Errorf("confirm %s: %w", id, err)
	}
	return c.JSON(http.StatusOK, confirmBody{ID: id, Confirmation: "confirmed", Entry: o.Body})
}

// rollbackRequest is the body of POST /v1/rollback.
type rollbackRequest struct {
	// To is a history id; empty means the config before the last reload.
	To string `json:"to,omitempty"`
}

func (s *Server) rollback(c echo.Context) error {
	u, wait, ifMatch, err := s.jobParams(c)
	if err != nil {
		return err
	}
	var req rollbackRequest
	if err := s.decodeJSON(c, &req); err != nil {
		return err
	}
	if req.To != "" && !validID(req.To) {
		return &ValidationError{Field: "to", Reason: "not a reload id"}
	}
	return s.submit(c, u, submission{kind: kindRollback, rollbackTo: req.To, ifMatch: ifMatch, wait: wait})
}

func (s *Server) submit(c echo.Context, u *unit, sub submission) error {
	v, _, err := u.queue.submit(sub)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, s.location(u, v.ID))
	return c.JSON(http.StatusAccepted, v)
}

// ifMatch checks If-Match against the running config now (412 when stale)
// and returns the hash for the queue to re-check before it runs the job.
func (u *unit) ifMatch(c echo.Context) (string, error) {
	h := strings.TrimSpace(c.Request().Header.Get("If-Match"))
	if h == "" || h == "*" {
		return "", nil
	}
	// A list of tags; a weak one (W/"...") never matches: If-Match uses
	// the strong comparison (RFC 9110 13.1.1).
	var strong []string
	for _, tag := range strings.Split(h, ",") {
		tag = strings.TrimSpace(tag)
		weak := strings.HasPrefix(tag, "W/")
		sha := strings.ToLower(strings.Trim(strings.TrimPrefix(tag, "W/"), `"`))
		if len(sha) != 64 || strings.Trim(sha, "0123456789abcdef") != "" {
			return "", &ValidationError{Field: "If-Match", Reason: "want the sha256 (64 hex digits) of the running config"}
		}
		if !weak {
			strong = append(strong, sha)
		}
	}
	have, err := u.Hasher.RunningSHA256(c.Request().Context())
	if err != nil {
		return "", fmt.Errorf("hash running config: %w", err)
	}
	for _, want := range strong {
		if want == have {
			return want, nil
		}
	}
	want := "a weak tag (never matches)"
	if len(strong) > 0 {
		want = strings.Join(strong, ", ")
	}
	return "", &PreconditionError{Want: want, Have: have}
}

// reloadsBody is GET /v1/reloads.
type reloadsBody struct {
	// Active is the running transaction, then the waiting ones.
	Active  []JobView `json:"active"`
	History any       `json:"history"`
}

func (s *Server) listReloads(c echo.Context) error {
	u, err := s.unitOf(c)
	if err != nil {
		return err
	}
	limit := 20
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxHistoryLimit {
			return &ValidationError{Field: "limit", Reason: fmt.Sprintf("want 1..%d", maxHistoryLimit)}
		}
		limit = n
	}
	h, err := u.Reloader.History(c.Request().Context(), limit)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	return c.JSON(http.StatusOK, reloadsBody{Active: u.queue.active(), History: h})
}

func (s *Server) getReload(c echo.Context) error {
	u, err := s.unitOf(c)
	if err != nil {
		return err
	}
	id := c.Param("id")
	if !validID(id) {
		return fmt.Errorf("%w: reload %q", ErrNotFound, id)
	}
	ctx := c.Request().Context()
	if v, ok := u.queue.get(id); ok {
		// A job of an earlier run of the daemon: its transaction is in
		// the history under the same id.
		if v.Transaction == nil && (v.State == stateDone || v.State == stateLost) {
			if o, err := u.Reloader.Get(ctx, id); err == nil {
				v.Transaction = o.Body
				if v.Result == "" {
					v.Result = o.Result
				}
			}
		}
		return c.JSON(http.StatusOK, v)
	}
	o, err := u.Reloader.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("reload %s: %w", id, err)
	}
	// A transaction the API did not run (haguard reload on the command
	// line), or a job older than the ones the daemon keeps.
	v := JobView{ID: id, State: stateDone, Result: o.Result, DurationMS: o.Duration.Milliseconds(), Transaction: o.Body}
	if o.Result == "" {
		v.State = stateRunning
	}
	return c.JSON(http.StatusOK, v)
}

// sweepBody is GET /v1/ghosts.
type sweepBody struct {
	SweepReport
	Ghosts int  `json:"ghosts"`
	Fresh  bool `json:"fresh"`
}

func newSweepBody(r SweepReport, fresh bool) sweepBody {
	return sweepBody{SweepReport: r, Ghosts: r.Counts["ghost"] + r.Counts["divergent"] + r.Counts["conflict"], Fresh: fresh}
}

func (s *Server) ghosts(c echo.Context) error {
	u, err := s.unitOf(c)
	if err != nil {
		return err
	}
	fresh, err := boolParam(c, "fresh", false)
	if err != nil {
		return err
	}
	if !fresh {
		if r, ok := u.Ghosts.Last(); ok {
			return c.JSON(http.StatusOK, newSweepBody(r, false))
		}
	}
	r, err := u.Ghosts.SweepNow(c.Request().Context())
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	u.Metrics.ObserveSweep(r)
	return c.JSON(http.StatusOK, newSweepBody(r, true))
}

func (s *Server) probes(c echo.Context) error {
	u, err := s.unitOf(c)
	if err != nil {
		return err
	}
	var req ProbeRequest
	if err := s.decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Count < 0 || req.Count > maxProbeCount {
		return &ValidationError{Field: "count", Reason: fmt.Sprintf("want 0..%d", maxProbeCount)}
	}
	if len(req.Targets) > maxProbeTargets {
		return &ValidationError{Field: "targets", Reason: fmt.Sprintf("at most %d", maxProbeTargets)}
	}
	// A target named twice is probed once.
	seen := make(map[string]bool, len(req.Targets))
	uniq := req.Targets[:0]
	for _, t := range req.Targets {
		if _, _, err := net.SplitHostPort(t); err != nil {
			return &ValidationError{Field: "targets", Reason: fmt.Sprintf("%q is not host:port", t)}
		}
		if !seen[t] {
			seen[t] = true
			uniq = append(uniq, t)
		}
	}
	req.Targets = uniq
	if n := req.Count * len(req.Targets); n > MaxProbeConnections {
		return &ValidationError{Field: "count", Reason: fmt.Sprintf("%d targets × %d attempts is %d connections; at most %d in one request",
			len(req.Targets), req.Count, n, MaxProbeConnections)}
	}
	rep, err := u.Prober.Probe(c.Request().Context(), req)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	u.Metrics.ObserveProbes(rep.Totals)
	return c.JSON(http.StatusOK, rep)
}

// checkLines refuses a line longer than MaxLineBytes (422, naming it):
// the config reader stops there, and haproxy refuses far shorter ones.
func checkLines(name string, b []byte) error {
	for n := 1; len(b) > 0; n++ {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			i = len(b)
		}
		if i >= MaxLineBytes {
			return &ValidationError{Field: name, Reason: fmt.Sprintf("line %d is %d bytes long; at most %d", n, i, MaxLineBytes-1)}
		}
		b = b[min(i+1, len(b)):]
	}
	return nil
}

// readBody reads the whole body under the size limit; a larger body is an
// *http.MaxBytesError (413).
func (s *Server) readBody(c echo.Context) ([]byte, error) {
	r := c.Request()
	limit := s.opts.MaxBodyBytes
	if r.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	data, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, mbe
		}
		return nil, fmt.Errorf("read body: %w", err)
	}
	return data, nil
}

// decodeJSON decodes an optional JSON body strictly into v.
func (s *Server) decodeJSON(c echo.Context, v any) error {
	data, err := s.readBody(c)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &ValidationError{Field: "body", Reason: "invalid JSON: " + err.Error()}
	}
	if dec.More() {
		return &ValidationError{Field: "body", Reason: "more than one JSON value"}
	}
	return nil
}

func boolParam(c echo.Context, name string, def bool) (bool, error) {
	v := c.QueryParam(name)
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, &ValidationError{Field: name, Reason: fmt.Sprintf("%q is not true or false", v)}
	}
	return b, nil
}

// validID accepts the ids haguard makes; it never lets a request name a
// path: letters, digits, '-', '_', ':' and '.', not starting with '.'.
func validID(id string) bool {
	if id == "" || len(id) > maxIDLen || id[0] == '.' {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r == '-', r == '_', r == ':', r == '.':
		default:
			return false
		}
	}
	return true
}
