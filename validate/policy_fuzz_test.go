package validate

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/haguard/haguard/config"
)

// FuzzPolicy feeds arbitrary configs through the config reader, FileRefs
// and the PO rules. Its seed corpus runs in every `go test`. It checks
// that nothing panics, that every reference is absolute and clean (or
// unknowable), that every finding has a place, and that a config
// compared with itself as the running config is never refused: what
// runs stays allowed.
func FuzzPolicy(f *testing.F) {
	for _, s := range []string{
		debianGlobal + debianDefaults + "frontend f\n    bind :443 ssl crt site.pem crt-list l.txt\n",
		"program p\n    command /bin/sh -c id\nglobal\n    lua-load x.lua\n    setenv A b\n",
		"frontend f\n    acl a src -f /dev/zero\n    acl b req.hdr(x) -m str -f /dev/urandom\n",
		"frontend f\n    http-request set-header X %[src,map_ip(../../etc/shadow,\"x\")]\n",
		"global\n    default-path origin rel\n    crt-base \"${X}\"\nfrontend f\n    bind unix@s.sock crt a.pem\n",
		"global\n    default-path parent\n    unix-bind prefix /x\nbackend b\n    server s /run/a.sock ca-file c crl-file\n",
		"http-errors e\n    errorfile 503 /etc/shadow\nring r\n    backing-file /etc/passwd\ncrt-store\n    load crt a key\n",
		"frontend f\n    http-request return status 200 content-type t file\n    http-error status 500 lf-file /x if\n",
		"frontend f\n    use_backend %[req.hdr(host),map_dom(,jwt_verify(\"RS1\",\"/k\")]\n",
		"global\n    wurfl-patch-file ,\n    lua-prepend-path ?\n    stats socket\n    log\n",
		"global\n    \"lua-load\" x\n    lu\"a-lo\"ad y\n    lua-loa\\x64 z\n    \"${U-lua-load}\" w\n.if defined(X)\nfrontend f\n    acl a src \"-f\" '/etc/sh'\"adow\"\n",
	} {
		f.Add(s)
	}
	pc := config.DefaultPolicy()
	pc.Allow = []string{"lua-load /etc/haproxy/*", "program *x"}
	f.Fuzz(func(t *testing.T, body string) {
		cfg, err := ParseReader("/etc/haproxy/haproxy.cfg", strings.NewReader(body))
		if err != nil {
			return
		}
		refs := FileRefs(cfg)
		for _, r := range refs {
			for _, p := range r.Paths() {
				if !filepath.IsAbs(p) || filepath.Clean(p) != p {
					t.Fatalf("ref %+v: path %q is not absolute and clean", r, p)
				}
			}
			if r.Pos.Line <= 0 || r.Kind == "" || r.Access == "" || r.Raw == "" {
				t.Fatalf("ref without a place or a kind: %+v", r)
			}
		}
		p := NewPolicy(pc, []string{"/etc/haproxy/haproxy.cfg"}, nil)
		p.ReadFile = func(string) ([]byte, error) { return []byte("a.pem [ca-file /dev/zero]\n/etc/shadow\n"), nil }
		for _, fd := range DefaultRegistry().Lint(cfg, &Facts{Policy: p}) {
			if strings.HasPrefix(fd.Rule, "PO") && (fd.File != "/etc/haproxy/haproxy.cfg" || fd.Line <= 0 || fd.Message == "") {
				t.Fatalf("finding without a place: %+v", fd)
			}
		}
		p.Running = cfg
		for _, fd := range DefaultRegistry().Lint(cfg, &Facts{Policy: p}) {
			if strings.HasPrefix(fd.Rule, "PO") {
				t.Fatalf("the running config refused against itself: %+v", fd)
			}
		}
	})
}
