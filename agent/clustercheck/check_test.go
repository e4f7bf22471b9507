package clustercheck

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeSource returns a fixed state or error and counts reads.
type fakeSource struct {
	state int
	err   error
	reads atomic.Int32
	gate  chan struct{} // when set, reads block until it is closed
	ctxs  chan error    // when set, receives ctx.Err() after the gate opens
}

func (f *fakeSource) LocalState(ctx context.Context) (int, error) {
	f.reads.Add(1)
	if f.gate != nil {
		<-f.gate
	}
	if f.ctxs != nil {
		f.ctxs <- ctx.Err()
	}
	return f.state, f.err
}

func TestHandlerVerdicts(t *testing.T) {
	for _, tc := range []struct {
		name  string
		src   *fakeSource
		donor bool
		code  int
		body  string
	}{
		{"synced", &fakeSource{state: 4}, false, 200, "Galera node is synced.\n"},
		{"donor", &fakeSource{state: 2}, false, 503, "Galera node is not synced (state 2: Donor/Desynced).\n"},
		{"donor allowed", &fakeSource{state: 2}, true, 200, "Galera node is available (state 2: Donor/Desynced).\n"},
		{"joining", &fakeSource{state: 1}, true, 503, "Galera node is not synced (state 1: Joining).\n"},
		{"joined", &fakeSource{state: 3}, false, 503, "Galera node is not synced (state 3: Joined).\n"},
		{"unknown", &fakeSource{state: 9}, false, 503, "Galera node is not synced (state 9: Unknown).\n"},
		{"db down", &fakeSource{err: errors.New("dial tcp 127.0.0.1:1: connect: connection refused")}, false, 503,
			"Galera node is not available: dial tcp 127.0.0.1:1: connect: connection refused.\n"},
		{"not galera", &fakeSource{err: ErrNotGalera}, true, 503,
			"Galera node is not available: not a Galera node (no wsrep_local_state status).\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewChecker(tc.src, Options{AvailableWhenDonor: tc.donor})
			for _, method := range []string{http.MethodOptions, http.MethodGet, http.MethodHead} {
				rec := httptest.NewRecorder()
				c.ServeHTTP(rec, httptest.NewRequest(method, "/any/path", nil))
				if rec.Code != tc.code {
					t.Errorf("%s: status %d, want %d", method, rec.Code, tc.code)
				}
				if got := rec.Body.String(); method != http.MethodHead && got != tc.body {
					t.Errorf("%s: body %q, want %q", method, got, tc.body)
				}
				if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
					t.Errorf("%s: Content-Type %q, want text/plain", method, ct)
				}
			}
		})
	}
}

func TestCacheReusesStateWithinTTL(t *testing.T) {
	src := &fakeSource{state: 4}
	c := NewChecker(src, Options{CacheTTL: time.Second})
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }

	ctx := context.Background()
	for i := 0; i < 5; i++ {
		if r := c.Check(ctx); !r.Available {
			t.Fatalf("check %d: %+v, want available", i, r)
		}
	}
	if n := src.reads.Load(); n != 1 {
		t.Fatalf("%d reads within the TTL, want 1", n)
	}
	src.state = 2
	now = now.Add(999 * time.Millisecond)
	if r := c.Check(ctx); !r.Available {
		t.Errorf("still inside the TTL: %+v, want the cached Synced", r)
	}
	now = now.Add(time.Millisecond)
	if r := c.Check(ctx); r.Available || r.State != 2 {
		t.Errorf("after the TTL: %+v, want a fresh read of state 2", r)
	}
	if n := src.reads.Load(); n != 2 {
		t.Errorf("%d reads, want 2", n)
	}
}

func TestCacheKeepsFailuresToo(t *testing.T) {
	src := &fakeSource{err: errors.New("connection refused")}
	c := NewChecker(src, Options{CacheTTL: time.Hour})
	for i := 0; i < 3; i++ {
		if r := c.Check(context.Background()); r.Available || r.Err == nil {
			t.Fatalf("%+v, want an unavailable result with the error", r)
		}
	}
	if n := src.reads.Load(); n != 1 {
		t.Errorf("a down database was asked %d times within the TTL, want 1", n)
	}
}

func TestZeroTTLReadsEveryTime(t *testing.T) {
	src := &fakeSource{state: 4}
	c := NewChecker(src, Options{})
	for i := 0; i < 3; i++ {
		c.Check(context.Background())
	}
	if n := src.reads.Load(); n != 3 {
		t.Errorf("%d reads, want 3", n)
	}
}

// Many concurrent checks while a read is under way share that read.
func TestConcurrentChecksShareOneRead(t *testing.T) {
	src := &fakeSource{state: 4, gate: make(chan struct{})}
	c := NewChecker(src, Options{CacheTTL: time.Hour})
	h := httptest.NewServer(c)
	defer h.Close()

	const n = 40
	var wg sync.WaitGroup
	codes := make(chan int, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(h.URL)
			if err != nil {
				codes <- 0
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	// Hold the first read until it has started; the rest pile up behind it.
	for src.reads.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(src.gate)
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != http.StatusOK {
			t.Errorf("status %d, want 200", code)
		}
	}
	if got := src.reads.Load(); got != 1 {
		t.Errorf("%d concurrent checks made %d reads, want 1", n, got)
	}
}

// A caller that gives up does not cancel the read others wait for.
func TestAbandonedCheckDoesNotCancelSharedRead(t *testing.T) {
	src := &fakeSource{state: 4, gate: make(chan struct{}), ctxs: make(chan error, 1)}
	c := NewChecker(src, Options{CacheTTL: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Result, 1)
	go func() { done <- c.Check(ctx) }()
	for src.reads.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if r := <-done; r.Available || r.Err == nil {
		t.Errorf("abandoned check: %+v, want an error", r)
	}
	close(src.gate)
	if err := <-src.ctxs; err != nil {
		t.Errorf("the shared read saw ctx error %v, want none", err)
	}
	if r := c.Check(context.Background()); !r.Available {
		t.Errorf("next check: %+v, want the result of the read that went on", r)
	}
}

// BenchmarkServeHTTPCached is the cost of one check answered from the
// cache, the common case under haproxy's checks.
func BenchmarkServeHTTPCached(b *testing.B) {
	c := NewChecker(&fakeSource{state: 4}, Options{CacheTTL: time.Hour})
	req := httptest.NewRequest(http.MethodOptions, "/", nil)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
	}
}
