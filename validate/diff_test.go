package validate

import (
	"fmt"
	"strings"
	"testing"
)

func parseText(t *testing.T, name, text string) *Config {
	t.Helper()
	c, err := ParseReader(name, strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const diffBefore = `global
	maxconn 512
	stats socket /run/haproxy/admin.sock mode 660 level admin

defaults
	mode http
	timeout connect 5s
	timeout client 30s
	timeout server 30s

frontend fe
	bind 127.0.0.1:8080
	bind 127.0.0.1:8443 ssl crt /etc/haproxy/site.pem
	http-request set-header X-A a
	default_backend app

backend app
	option httpchk GET /health
	server s1 10.0.0.1:80 check weight 10
	server s2 10.0.0.2:80 check
	server s3 10.0.0.3:80 check inter 2s
	server s4 10.0.0.4:80 check

backend old
	server o1 10.0.1.1:80
`

const diffAfter = `global
	maxconn 1024
	stats socket /run/haproxy/admin.sock mode 660 level admin

defaults
	mode http
	timeout connect 5s
	timeout client 1m
	timeout server 30s
	timeout http-request 10s

frontend fe
	bind 127.0.0.1:8080
	bind 127.0.0.1:9443 ssl crt /etc/haproxy/site.pem
	http-request set-header X-A b
	use_backend api if { path_beg /api }
	default_backend app

backend app
	option httpchk GET /ready
	server s1 10.0.0.1:80 check weight 20
	server s2 10.0.0.22:8080 check disabled
	server s3 10.0.0.3:80 check inter 5s
	server s5 10.0.0.5:80 check
	server s4 db.example.net:80 check

backend api
	server a1 10.0.2.1:80
`

func TestDiffConfigs(t *testing.T) {
	got := DiffConfigs(parseText(t, "run.cfg", diffBefore), parseText(t, "cand.cfg", diffAfter))
	var lines []string
	for _, c := range got {
		rt := "reload"
		if c.Runtime {
			rt = "runtime: " + c.How
		}
		lines = append(lines, fmt.Sprintf("%s %s %s %s [%s -> %s] %s:%d %s", c.Section, c.Op, c.Kind, c.Name, c.Before, c.After, c.File, c.Line, rt))
	}
	want := []string{
		"global changed directive maxconn [maxconn 512 -> maxconn 1024] cand.cfg:2 reload",
		"defaults changed timeout timeout client [30s -> 1m] cand.cfg:8 reload",
		"defaults added timeout timeout http-request [ -> 10s] cand.cfg:10 reload",
		"frontend fe added bind 127.0.0.1:9443 [ -> 127.0.0.1:9443 ssl crt /etc/haproxy/site.pem] cand.cfg:14 reload",
		"frontend fe removed bind 127.0.0.1:8443 [127.0.0.1:8443 ssl crt /etc/haproxy/site.pem -> ] run.cfg:13 reload",
		"frontend fe changed route routes [default_backend app -> use_backend api if { path_beg /api }; default_backend app] cand.cfg:16 reload",
		"frontend fe changed directive http-request [http-request set-header X-A a -> http-request set-header X-A b] cand.cfg:15 reload",
		"backend app changed option option httpchk [option httpchk GET /health -> option httpchk GET /ready] cand.cfg:20 reload",
		"backend app changed server s1 [10.0.0.1:80 check weight 10 -> 10.0.0.1:80 check weight 20] cand.cfg:21 runtime: set server app/s1 weight 20",
		"backend app changed server s2 [10.0.0.2:80 check -> 10.0.0.22:8080 check disabled] cand.cfg:22 runtime: set server app/s2 addr 10.0.0.22 port 8080; set server app/s2 state maint",
		"backend app changed server s3 [10.0.0.3:80 check inter 2s -> 10.0.0.3:80 check inter 5s] cand.cfg:23 reload",
		"backend app added server s5 [ -> 10.0.0.5:80 check] cand.cfg:24 reload",
		"backend app changed server s4 [10.0.0.4:80 check -> db.example.net:80 check] cand.cfg:25 reload",
		"backend api added section backend api [ -> 1 lines] cand.cfg:27 reload",
		"backend old removed section backend old [1 lines -> ] run.cfg:24 reload",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s\n\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if d := DiffConfigs(parseText(t, "a.cfg", diffBefore), parseText(t, "b.cfg", diffBefore)); len(d) != 0 {
		t.Fatalf("same config: %+v", d)
	}
}

func TestDiffMap(t *testing.T) {
	before := "# hosts\nexample.com green\nexample.org blue\nold.example gone\n"
	after := "example.com green\nexample.org red\n\nnew.example yellow\n"
	var got []string
	for _, c := range DiffMap("map", "/etc/haproxy/hosts.map", []byte(before), []byte(after)) {
		got = append(got, fmt.Sprintf("%s %s %v %s", c.Op, c.Name, c.Runtime, c.How))
	}
	want := "changed example.org true set map /etc/haproxy/hosts.map example.org red\n" +
		"added new.example true add map /etc/haproxy/hosts.map new.example yellow\n" +
		"removed old.example true del map /etc/haproxy/hosts.map old.example"
	if strings.Join(got, "\n") != want {
		t.Fatalf("got:\n%s", strings.Join(got, "\n"))
	}
	acl := DiffMap("acl", "/etc/haproxy/deny.acl", []byte("10.0.0.0/8\n"), []byte("10.0.0.0/8\n192.168.0.0/16\n"))
	if len(acl) != 1 || acl[0].How != "add acl /etc/haproxy/deny.acl 192.168.0.0/16" {
		t.Fatalf("acl %+v", acl)
	}
}
