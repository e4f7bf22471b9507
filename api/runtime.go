package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// RuntimeChanger changes servers and map entries on every live haproxy
// process without a reload, and writes them to the config set
// (docs/runtime.md). Optional: without it the runtime routes answer 501.
//
// Unknown backends, servers, maps and keys are errors wrapping
// ErrNotFound; a stale If-Match is a *PreconditionError; a change the
// processes refused is an outcome with OK false (409).
type RuntimeChanger interface {
	Server(ctx context.Context, backend, server string) (any, error)
	SetServer(ctx context.Context, req ServerRequest) (RuntimeOutcome, error)
	MapEntry(ctx context.Context, mapName, key string) (any, error)
	SetMapEntry(ctx context.Context, req MapRequest) (RuntimeOutcome, error)
}

// ServerRequest is PATCH /v1/backends/{backend}/servers/{server} (and
// POST .../drain: State drain, Wait the longest to wait for its sessions
// to end in every process, 0 for none).
type ServerRequest struct {
	Backend string `json:"-"`
	Server  string `json:"-"`
	State   string `json:"state,omitempty"`
	Weight  *int   `json:"weight,omitempty"`
	// Addr is IP or IP:PORT.
	Addr    string        `json:"addr,omitempty"`
	Wait    time.Duration `json:"-"`
	IfMatch string        `json:"-"`
}

// MapRequest is PUT (Value set) or DELETE (Delete) of a map entry.
type MapRequest struct {
	Map     string `json:"-"`
	Key     string `json:"-"`
	Value   string `json:"value"`
	Delete  bool   `json:"-"`
	IfMatch string `json:"-"`
}

// RuntimeOutcome is what one runtime change did.
type RuntimeOutcome struct {
	// Kind is server or map (haguard_runtime_changes_total's kind).
	Kind string
	// OK: every process that must take it did, and it was written.
	OK bool
	// Broken: neither written nor reverted (500).
	Broken bool
	// Body is the change's report, served as-is.
	Body any
}

// Runtime change results used in haguard_runtime_changes_total{result}.
const (
	RuntimeOK      = "ok"
	RuntimeRefused = "refused"
	RuntimeFailed  = "failed"
)

// ErrNoRuntime: no RuntimeChanger, or it has no master CLI to reach (501).
// A RuntimeChanger wraps it.
var ErrNoRuntime = errors.New("runtime changes need haproxy's master CLI (-S), which the unit does not run")

// maxDrainWait bounds ?wait on POST .../drain.
const maxDrainWait = time.Hour

// runtime is the unit a request names (?unit=) and its RuntimeChanger.
func (s *Server) runtime(c echo.Context) (*unit, RuntimeChanger, error) {
	u, err := s.unitOf(c)
	if err != nil {
		return nil, nil, err
	}
	if u.Runtime == nil {
		return nil, nil, ErrNoRuntime
	}
	return u, u.Runtime, nil
}

// pathParam is a path parameter, percent-decoded (a map's path arrives
// as %2Fetc%2Fhaproxy%2Fhosts.map).
func pathParam(c echo.Context, name string) (string, error) {
	v, err := url.PathUnescape(c.Param(name))
	if err != nil || v == "" {
		return "", &ValidationError{Field: name, Reason: "want a percent-encoded name"}
	}
	return v, nil
}

func (s *Server) getServer(c echo.Context) error {
	_, rt, err := s.runtime(c)
	if err != nil {
		return err
	}
	be, err := pathParam(c, "backend")
	if err != nil {
		return err
	}
	srv, err := pathParam(c, "server")
	if err != nil {
		return err
	}
	v, err := rt.Server(c.Request().Context(), be, srv)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func (s *Server) patchServer(c echo.Context) error {
	req, err := s.serverRequest(c)
	if err != nil {
		return err
	}
	if err := c.Bind(&req); err != nil {
		return &ValidationError{Reason: "want a JSON object {state, weight, addr}"}
	}
	if req.State == "" && req.Weight == nil && req.Addr == "" {
		return &ValidationError{Reason: "nothing to change: give state, weight or addr"}
	}
	return s.runServer(c, req)
}

func (s *Server) drainServer(c echo.Context) error {
	req, err := s.serverRequest(c)
	if err != nil {
		return err
	}
	req.State = "drain"
	if w := c.QueryParam("wait"); w != "" {
		d, err := time.ParseDuration(w)
		if err != nil || d < 0 || d > maxDrainWait {
			return &ValidationError{Field: "wait", Reason: fmt.Sprintf("want a duration up to %s, such as 30s", maxDrainWait)}
		}
		req.Wait = d
	}
	return s.runServer(c, req)
}

func (s *Server) serverRequest(c echo.Context) (ServerRequest, error) {
	var req ServerRequest
	var err error
	if req.Backend, err = pathParam(c, "backend"); err != nil {
		return req, err
	}
	if req.Server, err = pathParam(c, "server"); err != nil {
		return req, err
	}
	req.IfMatch, err = s.runtimeIfMatch(c)
	return req, err
}

func (s *Server) runServer(c echo.Context, req ServerRequest) error {
	u, rt, err := s.runtime(c)
	if err != nil {
		return err
	}
	o, err := rt.SetServer(c.Request().Context(), req)
	return runtimeAnswer(c, u, "server", o, err)
}

// runtimeIfMatch is If-Match against the set of the unit a runtime
// request names.
func (s *Server) runtimeIfMatch(c echo.Context) (string, error) {
	u, err := s.unitOf(c)
	if err != nil {
		return "", err
	}
	return u.ifMatch(c)
}

func (s *Server) getMapEntry(c echo.Context) error {
	_, rt, err := s.runtime(c)
	if err != nil {
		return err
	}
	m, err := pathParam(c, "map")
	if err != nil {
		return err
	}
	k, err := pathParam(c, "key")
	if err != nil {
		return err
	}
	v, err := rt.MapEntry(c.Request().Context(), m, k)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func (s *Server) mapRequest(c echo.Context) (MapRequest, error) {
	var req MapRequest
	var err error
	if req.Map, err = pathParam(c, "map"); err != nil {
		return req, err
	}
	if req.Key, err = pathParam(c, "key"); err != nil {
		return req, err
	}
	req.IfMatch, err = s.runtimeIfMatch(c)
	return req, err
}

func (s *Server) putMapEntry(c echo.Context) error {
	req, err := s.mapRequest(c)
	if err != nil {
		return err
	}
	if err := c.Bind(&req); err != nil || req.Value == "" || strings.ContainsAny(req.Value, "\r\n") {
		return &ValidationError{Field: "value", Reason: "want a JSON object {\"value\": \"one line\"}"}
	}
	return s.runMap(c, req)
}

func (s *Server) deleteMapEntry(c echo.Context) error {
	req, err := s.mapRequest(c)
	if err != nil {
		return err
	}
	req.Delete = true
	return s.runMap(c, req)
}

func (s *Server) runMap(c echo.Context, req MapRequest) error {
	u, rt, err := s.runtime(c)
	if err != nil {
		return err
	}
	o, err := rt.SetMapEntry(c.Request().Context(), req)
	return runtimeAnswer(c, u, "map", o, err)
}

// runtimeAnswer counts the change and answers: 200 done, 409 refused
// (the processes that took it were reverted, nothing written), 500 left
// half-done.
func runtimeAnswer(c echo.Context, u *unit, kind string, o RuntimeOutcome, err error) error {
	if o.Kind == "" {
		o.Kind = kind
	}
	var ve *ValidationError
	var pe *PreconditionError
	switch {
	case err != nil && (errors.Is(err, ErrNotFound) || errors.As(err, &ve) || errors.As(err, &pe)):
		u.Metrics.ObserveRuntime(o.Kind, RuntimeRefused)
		return err
	case err != nil:
		u.Metrics.ObserveRuntime(o.Kind, RuntimeFailed)
		return err
	case o.Broken:
		u.Metrics.ObserveRuntime(o.Kind, RuntimeFailed)
		return c.JSON(http.StatusInternalServerError, o.Body)
	case !o.OK:
		u.Metrics.ObserveRuntime(o.Kind, RuntimeRefused)
		return c.JSON(http.StatusConflict, o.Body)
	}
	u.Metrics.ObserveRuntime(o.Kind, RuntimeOK)
	return c.JSON(http.StatusOK, o.Body)
}
