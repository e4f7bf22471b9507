package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// MetricsHandler serves /metrics as the metrics listener does: the web
// config's basic auth (when it has users) and headers, nothing but GET
// and HEAD of /metrics. A nil wc serves without auth.
func (s *Server) MetricsHandler(wc *WebConfig) http.Handler {
	metrics := s.metricsHandler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if wc != nil {
			for k, v := range wc.headers {
				w.Header().Set(k, v)
			}
		}
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if wc != nil && wc.checker != nil {
			user, pass, ok := r.BasicAuth()
			if !ok || !wc.checker.ok(user, pass) {
				s.denied.logRequest(s.log, r, errUnauthorized)
				w.Header().Set("WWW-Authenticate", `Basic realm="haguard metrics"`)
				http.Error(w, "Unauthorized", http.StatusUnauthorized)
				return
			}
		}
		metrics.ServeHTTP(w, r)
	})
}

// ServeMetrics serves /metrics alone on ln until ctx ends, with the TLS
// and basic auth of wc (nil: plain HTTP, no auth). It closes ln.
func (s *Server) ServeMetrics(ctx context.Context, ln net.Listener, wc *WebConfig) error {
	srv := &http.Server{
		Handler:           s.MetricsHandler(wc),
		ReadTimeout:       30 * time.Second,
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if wc.TLSEnabled() {
		srv.TLSConfig = wc.tls.Clone()
		if wc.noHTTP2 {
			srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
		}
	}()
	var err error
	if wc.TLSEnabled() {
		err = srv.ServeTLS(ln, "", "")
	} else {
		err = srv.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		<-done
		return nil
	}
	return fmt.Errorf("serve metrics %s: %w", ln.Addr(), err)
}

// ListenMetrics opens the metrics listener: host:port on any address
// (Prometheus may scrape from another host; only /metrics is served
// there, and the web config can ask for TLS and basic auth).
func ListenMetrics(addr string) (net.Listener, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("metrics listen %q: want host:port: %w", addr, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen %s: %w", addr, err)
	}
	return ln, nil
}
