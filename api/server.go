package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// Defaults for the zero values of Options.
const (
	DefaultMaxBodyBytes = 4 << 20
	DefaultReadTimeout  = 30 * time.Second
	DefaultWriteTimeout = 5 * time.Minute
	DefaultIdleTimeout  = 2 * time.Minute
	DefaultQueueDepth   = 16
	DefaultMaxChecks    = 2
	// DefaultShutdownGrace bounds how long Serve waits for open requests
	// once its context ends. A running reload is not bounded by it.
	DefaultShutdownGrace = 10 * time.Second
	// jobsKept is how many finished jobs the queue remembers.
	jobsKept = 256
)

// Options are everything New needs. The interfaces are required.
type Options struct {
	// Tokens are the bearer tokens and their scopes (see LoadTokens).
	Tokens []Token
	// Token, when set, is one more write token (for tests and embedding).
	Token []byte
	// Logger receives request errors and transaction summaries.
	Logger *slog.Logger
	// UnitBackend is the first unit the API serves: its interfaces (all
	// but Runtime required), its name (the `unit` query parameter and
	// metrics label; empty for one unnamed unit), its metrics (nil creates
	// them; pass them to share them with the sweep loop) and its job dir.
	UnitBackend
	// More are further units served by the same API.
	More []UnitBackend

	MaxBodyBytes int64
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	IdleTimeout  time.Duration
	// QueueDepth is how many distinct transactions may wait.
	QueueDepth int
	// MaxChecks is how many POST /v1/check run at once (DefaultMaxChecks);
	// more get 429.
	MaxChecks int
	// MergeReloads, when it returns true (reload.min_interval is set),
	// lets a reload request without If-Match join the last waiting
	// reload without If-Match, whose candidate it replaces: inside the
	// interval, a storm of reloads runs as one (docs/reload.md).
	MergeReloads func() bool
	// Version is reported by /v1/status.
	Version string
}

// Server is the haguard API.
type Server struct {
	opts Options
	log  *slog.Logger
	echo *echo.Echo
	// units are Options' own unit, then More; each has its queue.
	units []*unit
	// tokens are the sha256 sums of the bearer tokens, with their scopes.
	tokens atomic.Pointer[[]tokenSum]
	// denied rate-limits the log lines of refused requests.
	denied denials
	// checks holds a slot per running POST /v1/check.
	checks chan struct{}
}

// New builds the server and its routes; Serve runs it.
func New(opts Options) (*Server, error) {
	if len(opts.Token) > 0 {
		opts.Tokens = append(slices.Clip(opts.Tokens), Token{Scope: ScopeWrite, Secret: opts.Token})
	}
	if len(opts.Tokens) == 0 {
		return nil, errNoToken
	}
	backends := opts.backends()
	if err := validateBackends(backends); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
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
	if opts.MaxChecks <= 0 {
		opts.MaxChecks = DefaultMaxChecks
	}
	s := &Server{opts: opts, log: opts.Logger, checks: make(chan struct{}, opts.MaxChecks)}
	if err := s.SetTokens(opts.Tokens); err != nil {
		return nil, err
	}
	for _, b := range backends {
		if b.Metrics == nil {
			b.Metrics = NewMetrics()
		}
		if b.Unit != "" {
			b.Metrics.SetUnit(b.Unit)
		}
		log := opts.Logger
		if len(backends) > 1 {
			log = log.With("unit", b.Unit)
		}
		s.units = append(s.units, &unit{UnitBackend: b,
			queue: newQueue(b.Reloader, b.Hasher, b.Metrics, log, opts.QueueDepth, jobsKept, ledger{dir: b.JobDir, log: log})})
		s.units[len(s.units)-1].queue.merge = opts.MergeReloads
	}
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

	read, write := s.need(ScopeRead), s.need(ScopeWrite)
	// OPTIONS (echo answers it for every route) needs a token too: it
	// tells which methods a path has.
	e.Pre(s.optionsNeedAuth)
	// Open: liveness for systemd/k8s-style checks, and the API description.
	e.GET("/v1/healthz", s.healthz)
	e.GET("/v1/openapi.json", s.openapi)
	// Read scope: what the host looks like.
	e.GET("/v1/status", s.status, read)
	e.GET("/v1/reloads", s.listReloads, read)
	e.GET("/v1/reloads/:id", s.getReload, read)
	e.GET("/v1/ghosts", s.ghosts, read)
	e.GET("/metrics", echo.WrapHandler(s.metricsHandler()), read)
	// Write scope: everything that runs something.
	e.POST("/v1/check", s.check, write)
	e.POST("/v1/reloads", s.postReload, write)
	e.POST("/v1/reloads/:id/confirm", s.confirm, write)
	e.POST("/v1/rollback", s.rollback, write)
	e.POST("/v1/probes", s.probes, write)
	e.GET("/v1/backends/:backend/servers/:server", s.getServer, read)
	e.PATCH("/v1/backends/:backend/servers/:server", s.patchServer, write)
	e.POST("/v1/backends/:backend/servers/:server/drain", s.drainServer, write)
	e.GET("/v1/maps/:map/entries/:key", s.getMapEntry, read)
	e.PUT("/v1/maps/:map/entries/:key", s.putMapEntry, write)
	e.DELETE("/v1/maps/:map/entries/:key", s.deleteMapEntry, write)
	return e
}

// optionsNeedAuth answers OPTIONS only to a token holder (of any
// scope), but on the open routes.
func (s *Server) optionsNeedAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.Method != http.MethodOptions || r.URL.Path == "/v1/healthz" || r.URL.Path == "/v1/openapi.json" {
			return next(c)
		}
		if _, err := s.authorize(c); err != nil {
			s.denied.log(s.log, c, err)
			return err
		}
		return next(c)
	}
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

// Metrics are the metrics of the server's first unit.
func (s *Server) Metrics() *Metrics { return s.units[0].Metrics }

// metricsHandler serves every unit's series in one exposition.
func (s *Server) metricsHandler() http.Handler {
	ms := make([]*Metrics, len(s.units))
	for i, u := range s.units {
		ms[i] = u.Metrics
	}
	return Handler(ms...)
}

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
	for _, u := range s.units {
		if sha, err := u.Hasher.RunningSHA256(ctx); err == nil {
			u.Metrics.SetConfig(sha)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve %s: %w", ln.Addr(), err)
		}
		return nil
	})
	for _, u := range s.units {
		g.Go(func() error { return u.queue.run(gctx) })
	}
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
	if err := safeSocketDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("listen unix:%s: %w", path, err)
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
	if err := chmodSocket(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen unix:%s: chmod: %w", path, err)
	}
	return ln, nil
}

// safeSocketDir refuses a socket directory that someone else could
// change: writable by group or others (they could swap the socket for a
// symlink between its creation and the chmod, or replace it later), or
// owned by anyone but haguard's user and root. Its parents are the
// system's (/run, /var/run).
func safeSocketDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("socket directory: %w", err)
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		if fi, err = os.Stat(dir); err != nil {
			return fmt.Errorf("socket directory: %w", err)
		}
	}
	if !fi.IsDir() {
		return fmt.Errorf("socket directory %s is not a directory", dir)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("socket directory %s has mode %#o: group or others may write it (and swap the socket); use a directory only haguard writes, such as RuntimeDirectory=haguard's /run/haguard (chmod go-w %s)", dir, perm, dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() && st.Uid != 0 {
		return fmt.Errorf("socket directory %s is owned by uid %d, not by haguard or root", dir, st.Uid)
	}
	return nil
}

// chmodSocket sets path's mode without following a symlink: the path is
// opened with O_PATH|O_NOFOLLOW, must be a socket, and is changed through
// that descriptor (/proc/self/fd/N names the inode opened, never a link's
// target).
func chmodSocket(path string, mode os.FileMode) error {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return fmt.Errorf("%s is no longer the socket haguard made (mode %#o): refusing to chmod it", path, st.Mode)
	}
	return os.Chmod(fmt.Sprintf("/proc/self/fd/%d", fd), mode)
}
