package validate

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const modelA = `global
    hard-stop-after 30m

defaults base
    mode tcp
    timeout connect 5s
    timeout client 1m # a comment
    timeout server 1m
    option tcpka
    default-server inter 3s fall 2

defaults web from base
    mode http
    timeout client 30s

frontend mysql_in
    bind 127.0.0.1:3307
    bind *:3308,:3309 tcp-ut 20s
    use_backend galera if { src 10.0.0.0/8 }
    default_backend galera

backend galera # haguard:galera
    no option tcpka
    option mysql-check user haproxy
    option httpchk GET /
    default-server port 9200
    server node1 db-node-1:3306 check inter 5s rise 2 fall 3 weight 1
    server node2 127.0.0.2:3306 check port
`

const modelB = `defaults base
    mode tcp
    timeout client 2m

listen web from web
    bind unix@/run/web.sock
    bind :::8080
    server w1 127.0.0.3:80 check
`

func TestParseModel(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a.cfg", modelA)
	b := writeFile(t, dir, "b.cfg", modelB)
	cfg, err := Parse(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Global.Timeouts["hard-stop-after"]; got.Time.D != 30*time.Minute || got.Pos != (Pos{a, 2}) {
		t.Errorf("hard-stop-after = %+v", got)
	}
	if len(cfg.Defaults) != 3 || len(cfg.Frontends) != 1 || len(cfg.Backends) != 1 || len(cfg.Listens) != 1 {
		t.Fatalf("sections: %d defaults, %d fe, %d be, %d listen", len(cfg.Defaults), len(cfg.Frontends), len(cfg.Backends), len(cfg.Listens))
	}
	fe := cfg.Frontends[0]
	if fe.Defaults != cfg.Defaults[1] || cfg.Defaults[1].Defaults != cfg.Defaults[0] {
		t.Errorf("frontend inherits %v, want the last defaults 'web' (from 'base')", fe.Defaults.Name)
	}
	if m := fe.EffMode(); m.Value != "http" || m.Pos != (Pos{a, 13}) {
		t.Errorf("frontend mode = %+v, want http from a.cfg:13", m)
	}
	if c := fe.EffTimeout("client"); c.Time.D != 30*time.Second || c.Pos.Line != 14 {
		t.Errorf("client = %+v, want 30s from line 14", c)
	}
	if s := fe.EffTimeout("server"); s.Time.D != time.Minute || s.Pos.Line != 8 {
		t.Errorf("server via defaults chain = %+v, want 1m from line 8", s)
	}
	wantBinds := []struct{ addr, dial string }{
		{"127.0.0.1:3307", "127.0.0.1:3307"}, {"*:3308", "127.0.0.1:3308"}, {":3309", "127.0.0.1:3309"},
	}
	if len(fe.Binds) != len(wantBinds) {
		t.Fatalf("binds = %+v", fe.Binds)
	}
	for i, w := range wantBinds {
		if fe.Binds[i].Address != w.addr || fe.Binds[i].Dial != w.dial {
			t.Errorf("bind %d = %+v, want %+v", i, fe.Binds[i], w)
		}
	}
	if func() string { p, _ := fe.Binds[1].Params.Get("tcp-ut"); return p.Value }() != "20s" {
		t.Errorf("bind params = %+v", fe.Binds[1].Params)
	}
	if len(fe.UseBackends) != 1 || fe.UseBackends[0].Backend != "galera" || !strings.Contains(fe.UseBackends[0].Cond, "if") ||
		fe.DefaultBackend == nil || fe.DefaultBackend.Backend != "galera" || fe.DefaultBackend.Pos.Line != 20 {
		t.Errorf("routing = %+v / %+v", fe.UseBackends, fe.DefaultBackend)
	}

	be := cfg.Backends[0]
	if be.Defaults != cfg.Defaults[1] {
		t.Errorf("backend inherits %q", be.Defaults.Name)
	}
	if !be.Tagged("galera") {
		t.Error("backend tag haguard:galera not seen")
	}
	if be.OptionOn("tcpka") {
		t.Error("no option tcpka must cancel the inherited option")
	}
	if chk := be.EffCheck(); chk == nil || chk.Name != "httpchk" || strings.Join(chk.Args, " ") != "GET /" {
		t.Errorf("check = %+v, want the last one: httpchk GET /", chk)
	}
	if len(be.Servers) != 2 {
		t.Fatalf("servers = %+v", be.Servers)
	}
	n1 := be.Servers[0]
	if n1.Address != "db-node-1:3306" || n1.Port() != "3306" || n1.Host() != "db-node-1" || n1.Pos.Line != 27 {
		t.Errorf("server = %+v", n1)
	}
	for name, want := range map[string]string{"check": "", "inter": "5s", "rise": "2", "fall": "3", "weight": "1"} {
		if p, ok := n1.Params.Get(name); !ok || p.Value != want {
			t.Errorf("server param %s = %+v, want %q", name, p, want)
		}
	}
	if p, ok := be.ServerParam(n1, "port"); !ok || p.Value != "9200" || p.Pos.Line != 26 {
		t.Errorf("port from default-server = %+v", p)
	}
	// "port" without a value ends the line: client-native alone loops forever here.
	n2 := be.Servers[1]
	if _, ok := n2.Params.Get("port"); ok {
		t.Errorf("dangling port kept: %+v", n2.Params)
	}
	if d, p, ok := be.ServerTime(n2, "inter"); !ok || d != 3*time.Second || p.Pos.Line != 10 {
		t.Errorf("inter from defaults' default-server = %v %+v", d, p)
	}

	ls := cfg.Listens[0]
	if ls.Defaults == nil || ls.Defaults.Name != "web" || ls.Pos != (Pos{b, 5}) {
		t.Errorf("listen from web: %+v", ls.Defaults)
	}
	if ls.Binds[0].Dial != "" || ls.Binds[1].Dial != "[::1]:8080" {
		t.Errorf("listen binds = %+v", ls.Binds)
	}
	// b.cfg's own "defaults base" is a new section named base; haproxy
	// resolves "from web" to the one already defined in a.cfg.
	if cfg.Lines != 28+8 {
		t.Errorf("lines = %d", cfg.Lines)
	}
	routes := Routes(cfg)
	if len(routes) != 2 || routes[0].Front != fe || routes[0].Back != be || routes[1].Front != ls || routes[1].Back != ls {
		t.Errorf("routes = %+v", routes)
	}
}

func TestParseUnreadable(t *testing.T) {
	_, err := Parse(filepath.Join(t.TempDir(), "missing.cfg"))
	var fe *FileError
	if !errors.As(err, &fe) || !strings.Contains(fe.File, "missing.cfg") {
		t.Fatalf("err = %v, want *FileError naming the file", err)
	}
}

func TestDialAddress(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:3307":      "127.0.0.1:3307",
		"*:80":                "127.0.0.1:80",
		":80":                 "127.0.0.1:80",
		"0.0.0.0:443":         "127.0.0.1:443",
		":::80":               "[::1]:80",
		"[::]:80":             "[::1]:80",
		"ipv4@127.0.0.2:81":   "127.0.0.2:81",
		"10.0.0.1:8000-8010":  "10.0.0.1:8000",
		"unix@/run/x.sock":    "",
		"/run/haproxy.sock":   "",
		"abns@foo":            "",
		"fd@3":                "",
		"${ADDR}:80":          "",
		"127.0.0.1":           "",
		"127.0.0.1:99999":     "",
		"db.example.com:3306": "db.example.com:3306",
	} {
		if got := DialAddress(in); got != want {
			t.Errorf("DialAddress(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseReader(f *testing.F) {
	f.Add(modelA)
	f.Add(modelB)
	f.Add("backend b\n server s a:1 port\n server t b:2 set-proxy-v2-tlv-fmt\n default-server inter\n")
	f.Fuzz(func(t *testing.T, body string) {
		cfg, err := ParseReader("fuzz.cfg", strings.NewReader(body))
		if err != nil {
			return
		}
		_ = DefaultRegistry().Lint(cfg, nil)
	})
}

func TestParseCRLF(t *testing.T) {
	cfg, err := ParseReader("crlf.cfg", strings.NewReader("defaults\r\n    timeout client 50s\r\nlisten l\r\n    server s 127.0.0.1:3306 check\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.Listens[0].EffTimeout("client"); !c.Set() || c.Time.D != 50*time.Second {
		t.Fatalf("client = %+v", c)
	}
	if _, ok := cfg.Listens[0].Servers[0].Params.Get("check"); !ok {
		t.Fatal("check lost to the trailing CR")
	}
}

func TestParseDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "20-backend.cfg", "backend be\n    server s 127.0.0.1:3306\n")
	writeFile(t, dir, "10-defaults.cfg", "defaults\n    timeout server 8h\n")
	writeFile(t, dir, "README", "not a config\n")
	cfg, err := Parse(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "10-defaults.cfg"), filepath.Join(dir, "20-backend.cfg")}
	if strings.Join(cfg.Files, ",") != strings.Join(want, ",") {
		t.Fatalf("files = %v, want %v (haproxy -f DIR: *.cfg in lexical order)", cfg.Files, want)
	}
	if s := cfg.Backends[0].EffTimeout("server"); s.Time.D != 8*time.Hour {
		t.Fatalf("defaults from the earlier file not applied: %+v", s)
	}
}

// A disabled proxy (itself or through its defaults) is not Live and has no
// route; `enabled` after `disabled` turns it back on, as in HAProxy.
func TestLiveAndRoutesSkipDisabled(t *testing.T) {
	cfg, err := ParseReader("d.cfg", strings.NewReader(`defaults off
    mode tcp
    disabled
defaults on
    mode tcp
frontend f1 from on
    bind 127.0.0.1:1
    use_backend b_off
    default_backend b1
frontend f_off from on
    disabled
    bind 127.0.0.1:2
    default_backend b1
frontend f_dflt from off
    bind 127.0.0.1:3
    default_backend b1
frontend f_back from off
    enabled
    bind 127.0.0.1:4
    default_backend b1
backend b1 from on
    server s 127.0.0.1:5
backend b_off from on
    disabled
    server s 127.0.0.1:6
`))
	if err != nil {
		t.Fatal(err)
	}
	var live []string
	for _, p := range Live(cfg.Proxies()) {
		live = append(live, p.Name)
	}
	if got := strings.Join(live, " "); got != "f1 f_back b1" {
		t.Fatalf("live %q, want f1 f_back b1", got)
	}
	var routes []string
	for _, r := range Routes(cfg) {
		routes = append(routes, r.Front.Name+">"+r.Back.Name)
	}
	if got := strings.Join(routes, " "); got != "f1>b1 f_back>b1" {
		t.Fatalf("routes %q, want f1>b1 f_back>b1", got)
	}
}
