package validate

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// refStrings renders the non-optional references as "kind access path"
// (path "?" when unknowable), with the alternatives after a '|'.
func refStrings(refs []FileRef) []string {
	var out []string
	for _, r := range refs {
		if r.Optional {
			continue
		}
		p := r.Path
		if p == "" {
			p = "?"
		}
		s := r.Kind + " " + string(r.Access) + " " + p
		if len(r.Alt) > 0 {
			s += " | " + strings.Join(r.Alt, " ")
		}
		out = append(out, s)
	}
	return out
}

// parseString reads cfg as the policy does: a raw reading (every line,
// words as written, no variable expanded; ReadOptions.Raw).
func parseString(t *testing.T, name, cfg string) *Config {
	t.Helper()
	c, err := ParseReaderWith(ReadOptions{Raw: true}, name, strings.NewReader(cfg))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestFileRefsKeywords covers every keyword of the 2.6 and 3.0 manuals
// that names a file, a directory or a unix socket.
func TestFileRefsKeywords(t *testing.T) {
	for _, c := range []struct {
		name, cfg string
		want      []string
	}{
		{"global files", `global
    chroot /var/lib/haproxy
    pidfile /run/haproxy.pid
    lua-load /etc/haproxy/lua/a.lua arg1
    lua-load-per-thread b.lua
    lua-prepend-path /usr/share/haproxy-lua/?/init.lua cpath
    ssl-dh-param-file /etc/haproxy/dh.pem
    issuers-chain-path /etc/haproxy/issuers
    ssl-provider-path /usr/lib/ossl
    httpclient.ssl.ca-file ca.pem
    server-state-base /var/lib/haproxy/state
    server-state-file global.state
    stats-file /var/lib/haproxy/stats
    h1-case-adjust-file /etc/haproxy/h1.txt
    51degrees-data-file /usr/share/51d.dat
    deviceatlas-json-file /usr/share/da.json
    wurfl-data-file /usr/share/wurfl.zip
    wurfl-patch-file /a.xml,/b.xml
    stats socket /run/haproxy/admin.sock mode 660 level admin
    stats socket ipv4@127.0.0.1:9999 level admin ssl crt /etc/haproxy/cli.pem
    log /dev/log local0
    log 127.0.0.1:514 local1
    log stdout format raw local0
`, []string{
			"chroot write /var/lib/haproxy", "pidfile write /run/haproxy.pid", "lua read /etc/haproxy/lua/a.lua",
			"lua read /b.lua", "lua-path read /usr/share/haproxy-lua", "dh-param read /etc/haproxy/dh.pem",
			"issuers-chain-path read /etc/haproxy/issuers", "ssl-provider-path read /usr/lib/ossl", "ca-file read /ca.pem",
			"server-state read /var/lib/haproxy/state/global.state", "stats-file read /var/lib/haproxy/stats",
			"h1-case-adjust read /etc/haproxy/h1.txt", "device-data read /usr/share/51d.dat", "device-data read /usr/share/da.json",
			"device-data read /usr/share/wurfl.zip", "device-data read /a.xml", "device-data read /b.xml",
			"socket write /run/haproxy/admin.sock", "crt read /etc/haproxy/cli.pem", "log-socket connect /dev/log",
		}},
		{"bases", `global
    ca-base /etc/ssl/certs
    crt-base /etc/ssl/private
frontend f
    bind :443 ssl crt site.pem ca-file ca.pem crl-file /abs/crl.pem crt-list lists/l.txt ca-verify-file v.pem ca-sign-file sign.pem tls-ticket-keys /etc/haproxy/tk
    bind unix@/run/haproxy/f.sock,/run/haproxy/g.sock
    bind abns@x
    bind fd@3
backend b
    server s1 10.0.0.1:443 ssl ca-file ca.pem crt client.pem crl-file crl.pem
    server s2 /run/app.sock
    server-template w 3 app.example:80 ssl ca-file t.pem
    default-server ssl ca-file d.pem
`, []string{
			"crt read /etc/ssl/private/site.pem", "ca-file read /etc/ssl/certs/ca.pem", "crl-file read /abs/crl.pem",
			"crt-list read /lists/l.txt", "ca-verify-file read /etc/ssl/certs/v.pem", "ca-sign-file read /sign.pem",
			"tls-ticket-keys read /etc/haproxy/tk", "socket write /run/haproxy/f.sock", "socket write /run/haproxy/g.sock",
			"ca-file read /etc/ssl/certs/ca.pem", "crt read /etc/ssl/private/client.pem", "crl-file read /etc/ssl/certs/crl.pem",
			"server-socket connect /run/app.sock", "ca-file read /etc/ssl/certs/t.pem", "ca-file read /etc/ssl/certs/d.pem",
		}},
		{"proxy files", `frontend f
    acl blocked src -f /etc/haproxy/blocked.lst -f more.lst
    http-request deny if { src -f /etc/haproxy/deny.lst }
    http-request set-header X %[src,map_ip(/etc/haproxy/geo.map,unknown)]
    use_backend %[req.hdr(host),lower,map_dom(/etc/haproxy/hosts.map,b)]
    http-request set-var(txn.x) req.hdr(host),map_str_int("/etc/haproxy/q.map",0)
    http-request set-map(/etc/haproxy/dyn.map) %[src] %[req.hdr(x)]
    http-request del-acl(/etc/haproxy/dyn.lst) %[src]
    http-request set-var(txn.j) req.hdr(a),jwt_verify("RS256","/etc/haproxy/jwt.pem")
    http-request set-var(txn.h) req.hdr(a),jwt_verify("HS256","secret")
    http-request return status 200 content-type text/plain file /etc/haproxy/ok.txt if { path /ok }
    http-request deny deny_status 403 content-type text/html lf-file /etc/haproxy/403.html
    http-response return status 503 errorfile /etc/haproxy/errors/503.http
    http-error status 429 content-type text/plain file /etc/haproxy/429.txt
    errorfile 503 /etc/haproxy/errors/503.http
    filter spoe engine waf config /etc/haproxy/spoe.conf
    filter opentracing id ot config /etc/haproxy/ot.cfg
    log /run/haproxy/log.sock local0
    http-request set-header file /not/a/file
backend b
    server-state-file-name be.state
    option external-check
    external-check path "/usr/bin:/bin"
    external-check command /usr/local/bin/check
`, []string{
			"acl-file read /etc/haproxy/blocked.lst", "acl-file read /more.lst", "acl-file read /etc/haproxy/deny.lst",
			"map read /etc/haproxy/geo.map", "map read /etc/haproxy/hosts.map", "map read /etc/haproxy/q.map",
			"map read /etc/haproxy/dyn.map", "acl-file read /etc/haproxy/dyn.lst", "crt read /etc/haproxy/jwt.pem",
			"return-file serve /etc/haproxy/ok.txt", "return-file serve /etc/haproxy/403.html",
			"return-file serve /etc/haproxy/errors/503.http", "return-file serve /etc/haproxy/429.txt",
			"errorfile serve /etc/haproxy/errors/503.http", "spoe-config read /etc/haproxy/spoe.conf",
			"tracer-config read /etc/haproxy/ot.cfg", "log-socket connect /run/haproxy/log.sock",
			"server-state read /be.state", "external-check exec /usr/bin:/bin", "external-check exec /usr/local/bin/check",
		}},
		{"other sections", `program logship
    command /usr/local/bin/logship --conf /etc/logship.yml
http-errors site
    errorfile 404 /etc/haproxy/errors/404.http
ring buf
    backing-file /var/lib/haproxy/ring.buf
    server syslog /run/syslog.sock
peers mypeers
    peer a 127.0.0.1:10000
    peer b /run/haproxy/peer.sock
    bind /run/haproxy/peers.sock
log-forward lf
    dgram-bind /run/haproxy/lf.sock
    log /dev/log local0
crt-store web
    crt-base /etc/haproxy/certs
    key-base /etc/haproxy/keys
    load crt site.pem key site.key ocsp /etc/haproxy/site.ocsp alias site
`, []string{
			"program exec /usr/local/bin/logship", "errorfile serve /etc/haproxy/errors/404.http",
			"backing-file write /var/lib/haproxy/ring.buf", "server-socket connect /run/syslog.sock",
			"peer-socket connect /run/haproxy/peer.sock", "socket write /run/haproxy/peers.sock",
			"socket write /run/haproxy/lf.sock", "log-socket connect /dev/log",
			"crt read /etc/haproxy/certs/site.pem", "key read /etc/haproxy/keys/site.key", "ocsp read /etc/haproxy/site.ocsp",
		}},
		{"environment variables are unknowable", `global
    crt-base "${CERTS}"
frontend f
    bind :443 ssl crt site.pem
    acl a src -f "${LISTS}/a.lst"
`, []string{"crt read ?", "acl-file read ?"}},
		{"unknown -file keyword", `global
    ssl-future-file /etc/x.pem
    load-server-state-from-file global
`, []string{"file read /etc/x.pem"}},
		{"unix-bind prefix", `global
    unix-bind prefix /var/lib/haproxy mode 770
frontend f
    bind /sock/a.sock
`, []string{"socket write /var/lib/haproxy/sock/a.sock | /sock/a.sock"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := refStrings(FileRefs(parseString(t, "/etc/haproxy/haproxy.cfg", c.cfg)))
			if !slices.Equal(got, c.want) {
				t.Errorf("refs:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(c.want, "\n  "))
			}
		})
	}
}

// TestFileRefsDefaultPath follows haproxy's default-path rules
// (cfgparse.c cfg_apply_default_path): the mode applies from its line on,
// carries over to the next file, and "config"/"parent" start from the
// directory of the file being read.
func TestFileRefsDefaultPath(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"conf", "other"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	a := writeFile(t, dir, "conf/a.cfg", "global\n    lua-load x.lua\n    default-path config\n    lua-load y.lua\n")
	b := writeFile(t, dir, "other/b.cfg", "global\n    lua-load z.lua\n    default-path parent\n    lua-load p.lua\n    default-path origin /srv/ha\n    lua-load o.lua\n    default-path current\n    lua-load c.lua\n")
	cfg, err := Parse(a, b)
	if err != nil {
		t.Fatal(err)
	}
	got := refStrings(FileRefsWith(cfg, RefOptions{WorkDir: "/work", ConfigDirs: []string{"/etc/haproxy"}}))
	want := []string{
		"lua read /work/x.lua",
		"lua read " + dir + "/conf/y.lua | /work/y.lua /etc/haproxy/y.lua",
		"lua read " + dir + "/other/z.lua | /work/z.lua /etc/haproxy/z.lua",
		"lua read " + dir + "/p.lua | /work/p.lua /etc/p.lua",
		"lua read /srv/ha/o.lua | /work/o.lua",
		"lua read /work/c.lua",
	}
	if !slices.Equal(got, want) {
		t.Errorf("refs:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestCrtListRefs(t *testing.T) {
	cfg := parseString(t, "/etc/haproxy/haproxy.cfg", `global
    crt-base /etc/haproxy/certs
    ca-base /etc/ssl/certs
frontend f
    bind :443 ssl crt-list /etc/haproxy/certs.lst
`)
	refs := FileRefs(cfg)
	if len(refs) != 1 || refs[0].Kind != "crt-list" {
		t.Fatalf("refs %v", refStrings(refs))
	}
	list := "# comment\n\nsite.pem [ca-file clients.pem verify required] www.example.org\n/abs/other.pem [crl-file /abs/crl.pem alpn h2]\n" +
		"third.pem [ocsp third.ocsp]\n"
	got := refStrings(CrtListRefs(refs[0], []byte(list)))
	want := []string{
		"crt read /etc/haproxy/certs/site.pem", "ca-file read /etc/ssl/certs/clients.pem",
		"crt read /abs/other.pem", "crl-file read /abs/crl.pem",
		"crt read /etc/haproxy/certs/third.pem", "ocsp read /third.ocsp",
	}
	if !slices.Equal(got, want) {
		t.Errorf("entries:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	for _, e := range CrtListRefs(refs[0], []byte(list)) {
		if e.Pos.File != "/etc/haproxy/certs.lst" || e.Pos.Line < 3 {
			t.Errorf("entry %s at %s, want a line of the list", e.Raw, e.Pos)
		}
	}
	if CrtListRefs(FileRef{Kind: "crt"}, []byte(list)) != nil {
		t.Error("a ref that is not a crt-list has entries")
	}
}

func TestFuncCalls(t *testing.T) {
	got := funcCalls(`%[req.hdr(host),lower,map_dom("/a,b.map",x),field(1,"(")]`)
	var names []string
	for _, c := range got {
		names = append(names, c.name+"="+strings.Join(c.args, "|"))
	}
	want := []string{"req.hdr=host", `map_dom="/a,b.map"|x`, `field=1|"("`}
	if !slices.Equal(names, want) {
		t.Errorf("calls %q, want %q", names, want)
	}
}
