package probe

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haguard/haguard/validate"
)

func TestLingerAndDeadline(t *testing.T) {
	timeout := time.Second
	cases := []struct {
		name             string
		t                Target
		linger, deadline time.Duration
	}{
		{"tcp, gives up at once", Target{Kind: KindTCP}, 300 * time.Millisecond, 1300 * time.Millisecond},
		{"tcp, haproxy defaults", Target{Kind: KindTCP, GiveUp: DefaultGiveUp}, 3300 * time.Millisecond, 4300 * time.Millisecond},
		{"tcp, many retries: capped", Target{Kind: KindTCP, GiveUp: time.Minute}, 5300 * time.Millisecond, 6300 * time.Millisecond},
		{"tcp, explicit linger", Target{Kind: KindTCP, GiveUp: DefaultGiveUp, Linger: 50 * time.Millisecond}, 50 * time.Millisecond, 1050 * time.Millisecond},
		{"tcp, linger off", Target{Kind: KindTCP, GiveUp: DefaultGiveUp, Linger: NoLinger}, 0, 4 * time.Second},
		{"tcp with expect: no linger", Target{Kind: KindTCP, GiveUp: DefaultGiveUp, Expect: "x"}, 3300 * time.Millisecond, 4 * time.Second},
		{"tcp that must greet", Target{Kind: KindTCP, GiveUp: DefaultGiveUp, Baseline: &Expectation{Greets: true}}, 3300 * time.Millisecond, 4 * time.Second},
		{"http", Target{Kind: KindHTTP, GiveUp: DefaultGiveUp}, 3300 * time.Millisecond, 4 * time.Second},
		{"mysql, at once", Target{Kind: KindMySQL}, 300 * time.Millisecond, time.Second},
		{"idle-hold", Target{Kind: KindIdleHold, Idle: 5 * time.Second, GiveUp: DefaultGiveUp}, 3300 * time.Millisecond, 7 * time.Second},
	}
	for _, tc := range cases {
		if got := LingerFor(tc.t); got != tc.linger {
			t.Errorf("%s: linger %s, want %s", tc.name, got, tc.linger)
		}
		if got := deadline(tc.t, timeout); got != tc.deadline {
			t.Errorf("%s: deadline %s, want %s", tc.name, got, tc.deadline)
		}
	}
}

func parseCfg(t *testing.T, cfg string) *validate.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	vc, err := validate.Parse(path)
	if err != nil {
		t.Fatal(err)
	}
	return vc
}

// The give-up time follows haproxy's retries and turn-around rules, and
// a listener takes the longest of its backends'.
func TestListenersGiveUpAndRoutes(t *testing.T) {
	vc := parseCfg(t, `defaults
    mode tcp
    timeout connect 5s
frontend plain
    bind 127.0.0.1:4001
    default_backend stock
frontend fast
    bind 127.0.0.1:4002
    use_backend noretry if { src 10.0.0.1 }
    default_backend quick
listen self
    bind 127.0.0.1:4003
    retries 1
    timeout connect 200ms
    server s 127.0.0.1:1
frontend nothing
    bind 127.0.0.1:4004
backend stock
    server s 127.0.0.1:1
backend noretry
    retries 0
    server s 127.0.0.1:1
backend quick
    retries 2
    timeout connect 400ms
    server s 127.0.0.1:1
`)
	got := map[string]string{}
	for _, l := range Listeners(vc) {
		got[l.Section] = fmt.Sprintf("%v %s", l.Backends, l.GiveUp)
	}
	want := map[string]string{
		"frontend plain":   "[stock] 3s",            // retries 3 (default) × 1s
		"frontend fast":    "[noretry quick] 800ms", // max(0, 2 × 400ms)
		"listen self":      "[self] 200ms",
		"frontend nothing": "[] 0s",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %q, want %q", k, got[k], w)
		}
	}
	ts := InferTargets(Listeners(vc), "")
	if ts[0].GiveUp != 3*time.Second || !slices.Equal(ts[0].Backends, []string{"stock"}) {
		t.Errorf("target %+v does not carry the listener's give-up time and backends", ts[0])
	}
	if u := Unknown("127.0.0.1:9999"); u.GiveUp != DefaultGiveUp || u.Kind != KindTCP {
		t.Errorf("unknown address: %+v", u)
	}
}

// The config's own error pages are read from errorfile and http-error,
// through the defaults chain and from every backend the listener routes to.
func TestListenersErrorPages(t *testing.T) {
	dir := t.TempDir()
	page := filepath.Join(dir, "503.http")
	if err := os.WriteFile(page, []byte("HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/html\r\n\r\n<p>Down for a moment</p>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	body := filepath.Join(dir, "502.txt")
	if err := os.WriteFile(body, []byte("bad gateway, sorry\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	vc := parseCfg(t, fmt.Sprintf(`defaults
    mode http
    errorfile 503 %s
    errorfile 504 %s
frontend web
    bind 127.0.0.1:4005
    default_backend app
backend app
    http-error status 500 content-type text/plain string "oops"
    http-error status 502 content-type text/plain file %s
    server s 127.0.0.1:1
`, page, filepath.Join(dir, "missing.http"), body))
	ls := Listeners(vc)
	if len(ls) != 1 {
		t.Fatalf("listeners %+v", ls)
	}
	pages := ls[0].ErrorPages
	if !slices.Equal(pages[503], []string{"<p>Down for a moment</p>"}) || !slices.Equal(pages[500], []string{"oops"}) ||
		!slices.Equal(pages[502], []string{"bad gateway, sorry"}) || pages[504] != nil {
		t.Fatalf("pages = %v", pages)
	}
}

func TestHAProxyError(t *testing.T) {
	debian503, err := os.ReadFile("testdata/debian-errors-503.http")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		status int
		body   string
		pages  map[int][]string
		want   bool
	}{
		{"built-in 503 (2.6 and 3.x)", 503, "<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>\n", nil, true},
		{"Debian's errorfile", 503, responseBody(debian503), nil, true},
		{"built-in 502", 502, "<html><body><h1>502 Bad Gateway</h1>\nThe server returned an invalid or incomplete response.\n</body></html>\n", nil, true},
		{"built-in 504", 504, "<html><body><h1>504 Gateway Time-out</h1>\nThe server didn't respond in time.\n</body></html>\n", nil, true},
		{"built-in 500, either spelling", 500, "<html><body><h1>500 Internal Server Error</h1>\nAn internal server error occurred.\n</body></html>\n", nil, true},
		{"built-in 403", 403, "<html><body><h1>403 Forbidden</h1>\nRequest forbidden by administrative rules.\n</body></html>\n", nil, true},
		{"the 503 page under another status", 502, "<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>\n", nil, false},
		{"a server's own 503", 503, "Service Unavailable: maintenance until 14:00\n", nil, false},
		{"a server's 503 in haproxy's shape", 503, "<html><body><h1>503 Service Unavailable</h1>\nWe are down for maintenance.\n</body></html>\n", nil, false},
		{"the config's page", 503, "<p>Down for a moment</p>\n", map[int][]string{503: {"<p>Down for a moment</p>"}}, true},
		{"the config's page for another status", 502, "<p>Down for a moment</p>\n", map[int][]string{503: {"<p>Down for a moment</p>"}}, false},
	}
	for _, tc := range cases {
		if got := HAProxyError(tc.status, []byte(tc.body), tc.pages); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// An http probe asks whether a server answered: haproxy's own 5xx fails,
// a server's 5xx fails unless it answered so before too, anything else
// passes.
func TestProbeHTTPVerdict(t *testing.T) {
	const haproxy503 = "<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>\n"
	const haproxy403 = "<html><body><h1>403 Forbidden</h1>\nRequest forbidden by administrative rules.\n</body></html>\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/noserver":
			w.WriteHeader(503)
			io.WriteString(w, haproxy503)
		case "/custom":
			w.WriteHeader(503)
			io.WriteString(w, "<p>Down for a moment</p>\n")
		case "/deny":
			w.WriteHeader(403)
			io.WriteString(w, haproxy403)
		case "/maintenance":
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
		case "/missing":
			http.NotFound(w, r)
		case "/moved":
			http.Redirect(w, r, "/login", http.StatusFound)
		default:
			io.WriteString(w, "hello\n")
		}
	}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	was503 := &Expectation{Statuses: []int{200, 503}}
	cases := []struct {
		name, path string
		t          Target
		reason     string
		byHAProxy  bool
		note       string
	}{
		{"server 200", "/", Target{}, "", false, ""},
		{"server 404: a server answered", "/missing", Target{}, "", false, ""},
		{"server 302", "/moved", Target{}, "", false, ""},
		{"haproxy's 503", "/noserver", Target{}, "haproxy 503", true, ""},
		{"haproxy's 503 even if seen before", "/noserver", Target{Baseline: was503}, "haproxy 503", true, ""},
		{"the config's own 503 page", "/custom", Target{ErrorPages: map[int][]string{503: {"<p>Down for a moment</p>"}}}, "haproxy 503", true, ""},
		{"haproxy's 403: a rule, passes with a note", "/deny", Target{}, "", true, "haproxy answered 403 itself"},
		{"server 503", "/maintenance", Target{}, "http status 503", false, ""},
		{"server 503 seen before", "/maintenance", Target{Baseline: was503}, "", false, "the server answered 503 before too"},
		{"server 503 when 200 before", "/maintenance", Target{Baseline: &Expectation{Statuses: []int{200}}}, "http status 503", false, ""},
		{"expect-status wins", "/noserver", Target{ExpectStatus: 503}, "", true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.t.Address, tc.t.Kind, tc.t.Path = addr, KindHTTP, tc.path
			var r Result
			err := ProbeHTTP(attemptCtx(t, 2*time.Second), tc.t, &r, quiet)
			if got := Reason(err); got != tc.reason {
				t.Fatalf("reason %q (%v), want %q", got, err, tc.reason)
			}
			if r.ByHAProxy != tc.byHAProxy || !strings.Contains(r.Note, tc.note) {
				t.Errorf("by haproxy %v note %q, want %v %q", r.ByHAProxy, r.Note, tc.byHAProxy, tc.note)
			}
		})
	}
}

// greeter greets every other connection and is silent on the rest, like
// a port shared by a worker forwarding to an SSH server and a ghost
// forwarding to a server that never answers.
func greeter(t *testing.T, every int) (addr string, mode *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mode = new(atomic.Int32) // 0: alternate; 1: always greet; 2: never
	var wg sync.WaitGroup
	var n atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			i := n.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				m := mode.Load()
				if m == 1 || (m == 0 && i%int64(every) == 0) {
					io.WriteString(c, "SSH-2.0-OpenSSH_9.2p1\r\n")
				}
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				io.Copy(io.Discard, c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String(), mode
}

// One run alone: a server that greets on some attempts and not others is
// missing behind some paths, so the silent attempts fail.
func TestRunFailsSilentAttemptsWhenOthersGreet(t *testing.T) {
	addr, mode := greeter(t, 2)
	tgt := Target{Address: addr, Kind: KindTCP, Count: 10, Linger: 100 * time.Millisecond}
	rep := Run(context.Background(), []Target{tgt}, Options{Timeout: 300 * time.Millisecond, Concurrency: 4})
	tr := rep.Targets[0]
	if rep.OK || tr.OK != 5 || tr.Errors[ReasonNoGreeting] != 5 {
		t.Fatalf("alternating greeter: OK %d, errors %v, want 5 OK and 5 %q", tr.OK, tr.Errors, ReasonNoGreeting)
	}
	if tr.LingerMS != 100 {
		t.Errorf("linger_ms %v", tr.LingerMS)
	}
	for _, a := range tr.Attempts {
		if a.OK && a.Greeting != `SSH-2.0-OpenSSH_9.2p1\r\n` {
			t.Errorf("greeting %q", a.Greeting)
		}
	}
	// A server that never greets: silence is all there is, and it passes.
	mode.Store(2)
	if rep := Run(context.Background(), []Target{tgt}, Options{Timeout: 300 * time.Millisecond}); !rep.OK {
		t.Fatalf("silent server: %v", rep.Targets[0].Errors)
	}
}

// Learn sees a greeting before; after, a path that stays silent fails
// even when no attempt of the run itself is greeted.
func TestLearnThenRun(t *testing.T) {
	addr, mode := greeter(t, 1)
	mode.Store(1)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	}))
	t.Cleanup(web.Close)
	webAddr := strings.TrimPrefix(web.URL, "http://")
	targets := []Target{
		{Address: addr, Kind: KindTCP},
		{Address: webAddr, Kind: KindHTTP},
		{Address: addr, Kind: KindIdleHold, Idle: time.Hour}, // not learned
	}
	base := Learn(context.Background(), targets, Options{Timeout: time.Second})
	if len(base.Targets) != 2 {
		t.Fatalf("baseline %+v", base)
	}
	ssh, http503 := base.Targets[0], base.Targets[1]
	if !ssh.Greets || ssh.Greeting != `SSH-2.0-OpenSSH_9.2p1\r\n` || ssh.Attempts != LearnCount || ssh.OK != LearnCount {
		t.Errorf("tcp expectation %+v", ssh)
	}
	if !slices.Equal(http503.Statuses, []int{503}) || http503.Errors["http status 503"] != LearnCount {
		t.Errorf("http expectation %+v", http503)
	}

	after := []Target{{Address: addr, Kind: KindTCP, Count: 4}, {Address: webAddr, Kind: KindHTTP, Count: 4}, {Address: "127.0.0.1:1", Kind: KindTCP}}
	base.Apply(after)
	if after[0].Baseline == nil || after[1].Baseline == nil || after[2].Baseline != nil {
		t.Fatalf("apply: %+v", after)
	}
	mode.Store(2) // every path silent now: one run alone could not tell
	rep := Run(context.Background(), after[:2], Options{Timeout: 200 * time.Millisecond})
	if tr := rep.Targets[0]; tr.Errors[ReasonNoGreeting] != 4 || tr.Baseline == nil {
		t.Errorf("silent after greeting before: %v", tr.Errors)
	}
	if tr := rep.Targets[1]; tr.OK != 4 {
		t.Errorf("server 503 before and after: %v", tr.Errors)
	}
}

func TestNoServerUpIn(t *testing.T) {
	h := Health{
		Servers: []ServerStatus{
			{Backend: "web", Server: "a", Status: "DOWN", CheckStatus: "L4CON"},
			{Backend: "web", Server: "b", Status: "MAINT"},
			{Backend: "db", Server: "a", Status: "UP", CheckStatus: "L7OK"},
			{Backend: "db", Server: "b", Status: "DOWN", CheckStatus: "L7STS", CheckCode: 503},
			{Backend: "plain", Server: "a", Status: "no check"},
			{Backend: "drain", Server: "a", Status: "DRAIN"},
			{Backend: "going", Server: "a", Status: "UP 1/3", CheckStatus: "L4CON"},
		},
		BackendsDown: []BackendDown{{Backend: "web", Status: "DOWN"}, {Backend: "db", Status: "UP"}},
	}
	targets := []Target{
		{Address: "127.0.0.1:80", Backends: []string{"web", "db"}},
		{Address: "127.0.0.1:81", Backends: []string{"web", "plain", "drain", "going", "redirect-only"}},
	}
	got := NoServerUpIn(targets, h)
	want := []NoServerUp{
		{Backend: "drain", Servers: []string{"a DRAIN"}, Targets: []string{"127.0.0.1:81"}},
		{Backend: "web", Status: "DOWN", Servers: []string{"a DOWN L4CON", "b MAINT"}, Targets: []string{"127.0.0.1:80", "127.0.0.1:81"}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

// serveStats answers every `show stat` on a unix socket with answer.
func serveStats(t *testing.T, answer []byte) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 64)
			c.Read(buf)
			c.Write(answer)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return sock
}

// Connections that succeed do not make a listener whose backend has no
// server UP pass.
func TestWithHealthFailsBackendWithoutServerUp(t *testing.T) {
	answer, err := os.ReadFile("testdata/showstat-haproxy-2.6.csv")
	if err != nil {
		t.Fatal(err)
	}
	sock := serveStats(t, answer)
	addr := startFakeMySQL(t, fakeHandshake)
	ok := Target{Address: addr, Kind: KindMySQL, Count: 2, Backends: []string{"galera", "plain"}}
	rep, err := WithHealth(context.Background(), []Target{ok}, Options{Timeout: time.Second}, sock, true)
	if err != nil || !rep.OK || len(rep.NoServerUp) != 0 || len(rep.Servers) != 7 {
		t.Fatalf("backends with a server UP: ok %v no server up %+v err %v", rep.OK, rep.NoServerUp, err)
	}
	bad := ok
	bad.Backends = []string{"alldown"}
	rep, err = WithHealth(context.Background(), []Target{bad}, Options{Timeout: time.Second}, sock, true)
	if err != nil || rep.OK || rep.Targets[0].Fail != 0 || len(rep.NoServerUp) != 1 ||
		rep.NoServerUp[0].Backend != "alldown" || !slices.Equal(rep.NoServerUp[0].Servers, []string{"gone DOWN L4CON"}) {
		t.Fatalf("backend alldown: ok %v no server up %+v err %v", rep.OK, rep.NoServerUp, err)
	}
	// Without the health read there is nothing to judge backends by.
	if rep, _ := WithHealth(context.Background(), []Target{bad}, Options{Timeout: time.Second}, "none", false); !rep.OK || rep.NoServerUp == nil {
		t.Fatalf("no socket: ok %v, no_server_up %v", rep.OK, rep.NoServerUp)
	}
}
