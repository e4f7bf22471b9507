package api

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"
)

// Defaults for the zero values of Options.
const (
	DefaultMaxBodyBytes = 4 << 20
	DefaultReadTimeout  = 30 * time.Second
	DefaultWriteTimeout = 5 * time.Minute
	DefaultIdleTimeout  = 2 * time.Minute
	DefaultQueueDepth   = 16
	// DefaultShutdownGrace bounds how long Serve waits for open requests
	// once its context ends. A running reload is not bounded by it.
	DefaultShutdownGrace = 10 * time.Second
	// jobsKept is how many finished jobs the queue remembers.
	jobsKept = 256
)

// Options are everything New needs. The interfaces are required.
type Options struct {
	// Token is the bearer token (see LoadToken).
	Token []byte
	// Logger receives request errors and transaction summaries.
	Logger *slog.Logger
	// Metrics are served on /metrics; nil creates them. Pass them to
	// share them with the sweep loop.
	Metrics *Metrics

	Checker  Checker
	Reloader Reloader
	Hasher   ConfigHasher
	Ghosts   GhostSource
	Prober   Prober
	Status   StatusSource
	// Runtime changes servers and map entries without a reload; optional.
	Runtime RuntimeChanger

	MaxBodyBytes int64
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	IdleTimeout  time.Duration
	// QueueDepth is how many distinct transactions may wait.
	QueueDepth int
	// Version is reported by /v1/status.
	Version string
}

// Server is the haguard API.
type Server struct {
	opts    Options
	log     *slog.Logger
	echo    *echo.Echo
	queue   *queue
	metrics *Metrics
	// tokenSum is the sha256 of the bearer token.
	tokenSum atomic.Pointer[[sha256.Size]byte]
	// statusCalls shares one StatusSource call among concurrent requests.
	statusCalls singleflight.Group
}

// New builds the server and its routes; Serve runs it.
func New(opts Options) (*Server, error) {
	if len(opts.Token) == 0 {
		return nil, errNoToken
	}
	var missing []string
	for name, v := range map[string]any{"Checker": opts.Checker, "Reloader": opts.Reloader,
		"Hasher": opts.Hasher, "Ghosts": opts.Ghosts, "Prober": opts.Prober, "Status": opts.Status} {
		if v == nil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("api: options missing: %s", strings.Join(missing, ", "))
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics()
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = DefaultReadTimeout
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.QueueDepth <= 0 {
		opts.QueueDepth = DefaultQueueDepth
	}
	s := &Server{opts: opts, log: opts.Logger, metrics: opts.Metrics}
	if err := s.SetToken(opts.Token); err != nil {
		return nil, err
	}
	s.queue = newQueue(opts.Reloader, opts.Hasher, opts.Metrics, opts.Logger, opts.QueueDepth, jobsKept)
	s.echo = s.routes()
	return s, nil
}

func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler(s.log)
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{DisablePrintStack: true}))
	e.Use(s.requestLog)

	auth := s.bearer
	// Open: liveness for systemd/k8s-style checks, and the API description.
	e.GET("/v1/healthz", s.healthz)
	e.GET("/v1/openapi.json", s.openapi)
	// Everything else needs the token.
	e.GET("/v1/status", s.status, auth)
	e.POST("/v1/check", s.check, auth)
	e.POST("/v1/reloads", s.postReload, auth)
	e.GET("/v1/reloads", s.listReloads, auth)
	e.GET("/v1/reloads/:id", s.getReload, auth)
	e.POST("/v1/rollback", s.rollback, auth)
	e.GET("/v1/ghosts", s.ghosts, auth)
	e.POST("/v1/probes", s.probes, auth)
	e.GET("/v1/backends/:backend/servers/:server", s.getServer, auth)
	e.PATCH("/v1/backends/:backend/servers/:server", s.patchServer, auth)
	e.POST("/v1/backends/:backend/servers/:server/drain", s.drainServer, auth)
	e.GET("/v1/maps/:map/entries/:key", s.getMapEntry, auth)
	e.PUT("/v1/maps/:map/entries/:key", s.putMapEntry, auth)
	e.DELETE("/v1/maps/:map/entries/:key", s.deleteMapEntry, auth)
	e.GET("/metrics", echo.WrapHandler(s.metrics.Handler()), auth)
	return e
}

// requestLog logs each request at debug level.
func (s *Server) requestLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if s.log.Enabled(c.Request().Context(), slog.LevelDebug) {
			s.log.Debug("request", "method", c.Request().Method, "path", c.Path(),
				"status", c.Response().Status, "duration", time.Since(start), "err", err)
		}
		return err
	}
}

// Handler is the HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.echo }

// Metrics are the server's metrics.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Serve answers on ln and runs the reload queue until ctx ends. Then it
// stops accepting, lets open requests finish (DefaultShutdownGrace), lets
// a running transaction finish or roll back, cancels waiting ones, and
// returns. It closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.echo,
		ReadTimeout:       s.opts.ReadTimeout,
		ReadHeaderTimeout: min(s.opts.ReadTimeout, 10*time.Second),
		WriteTimeout:      s.opts.WriteTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if sha, err := s.opts.Hasher.RunningSHA256(ctx); err == nil {
		s.metrics.SetConfig(sha)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve %s: %w", ln.Addr(), err)
		}
		return nil
	})
	g.Go(func() error { return s.queue.run(gctx) })
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultShutdownGrace)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
			s.log.Warn("requests still open at shutdown were cut", "err", err)
		}
		return nil
	})
	return g.Wait()
}

// Listen opens the API's listener. addr is host:port on a loopback
// address, or unix:/path for a unix socket created with mode 0600. A stale
// socket at that path is replaced; any other file there is an error.
func Listen(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		return listenUnix(path)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("listen %q: want host:port or unix:/path: %w", addr, err)
	}
	if host != "localhost" {
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("listen %q: refusing a non-loopback address (the API has no TLS); use 127.0.0.1:PORT or unix:/path", addr)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return ln, nil
}

func listenUnix(path string) (net.Listener, error) {
	if path == "" || !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("listen unix:%s: the socket path must be absolute", path)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("listen unix:%s: a non-socket file is in the way", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("listen unix:%s: remove stale socket: %w", path, err)
		}
	}
	// The umask makes the socket 0600 from its first instant; the chmod
	// below states it. Listen runs at startup, before other goroutines
	// create files, so the process-wide umask change is contained.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen unix:%s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen unix:%s: chmod: %w", path, err)
	}
	return ln, nil
}
