package facts

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/internal/testbed"
	"github.com/haguard/haguard/validate"
)

func TestKernelReadsSysctlsAndRecordsErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, v string) {
		p := filepath.Join(dir, strings.ReplaceAll(name, ".", "/"))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("net.ipv4.tcp_keepalive_time", "7200")
	write("net.ipv4.tcp_keepalive_intvl", "75")
	write("net.ipv4.tcp_keepalive_probes", "9")
	k := Kernel(dir, 0)
	if k.Sysctls["net.ipv4.tcp_keepalive_time"] != "7200" || k.Sysctls["net.ipv4.tcp_keepalive_probes"] != "9" {
		t.Fatalf("sysctls %v", k.Sysctls)
	}
	// tcp_retries2 is required and missing; conntrack is optional.
	msg := k.Sysctls[KernelErrKey]
	if !strings.Contains(msg, "tcp_retries2") || strings.Contains(msg, "conntrack") {
		t.Fatalf("error record %q", msg)
	}
	write("net.ipv4.tcp_retries2", "15")
	if k := Kernel(dir, 0); k.Sysctls[KernelErrKey] != "" {
		t.Fatalf("unexpected error %q", k.Sysctls[KernelErrKey])
	}
}

func TestKernelHost(t *testing.T) {
	k := Kernel("", 0)
	if _, ok := k.Sysctls["net.ipv4.tcp_keepalive_time"]; !ok {
		t.Fatalf("host /proc/sys: %v", k.Sysctls)
	}
}

func TestDeclaredFillsKindDefaults(t *testing.T) {
	c := config.Default()
	if Declared(c) != nil {
		t.Fatal("no path declared must stay nil")
	}
	own := config.Duration(100 * time.Second)
	c.Path.Middleboxes = []config.Middlebox{{Name: "f5", Kind: "f5-ltm", Hop: "client"}, {Name: "fw", Kind: "fortigate", Hop: "server", IdleTimeout: &own}}
	p := Declared(c)
	if p.Middleboxes[0].IdleTimeout.D() != 300*time.Second || !*p.Middleboxes[0].ResetOnTimeout || *p.Middleboxes[0].L7 {
		t.Fatalf("f5 defaults %+v", p.Middleboxes[0])
	}
	if p.Middleboxes[1].IdleTimeout.D() != 100*time.Second {
		t.Fatalf("declared idle overridden: %v", p.Middleboxes[1].IdleTimeout)
	}
	if c.Path.Middleboxes[0].IdleTimeout != nil {
		t.Fatal("Declared changed its input")
	}
}

const cfgText = `defaults
	mode tcp
	timeout connect 1s
	timeout client 1m
	timeout server 1m
frontend fe
	bind 127.0.0.1:3307
	default_backend db
backend db
	option mysql-check
	server a %s check
	server b %s check
backend web
	server w 127.0.0.1:8080
`

// A DB that refuses or is down is a recorded error per server, never a
// crash or a hang; a non-MySQL backend is not asked.
func TestDBDownIsRecorded(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := l.Addr().String()
	l.Close()
	vc, err := validate.ParseReader("x.cfg", strings.NewReader(
		strings.Replace(strings.Replace(cfgText, "%s", closedAddr, 1), "%s", closedAddr, 1)))
	if err != nil {
		t.Fatal(err)
	}
	c := config.Default()
	c.Facts.DB.User = "haguard"
	got := DB(context.Background(), vc, c, time.Second, nil)
	if len(got) != 1 || len(got["db"]) != 2 {
		t.Fatalf("facts %v", got)
	}
	for name, f := range got["db"] {
		if f.Err == nil || !strings.Contains(f.Err.Error(), "refused") {
			t.Fatalf("%s: err %v", name, f.Err)
		}
	}
	c.Facts.DB.User = ""
	for _, f := range DB(context.Background(), vc, c, time.Second, nil)["db"] {
		if f.Err == nil || !strings.Contains(f.Err.Error(), "no user") {
			t.Fatalf("missing credentials: %v", f.Err)
		}
	}
}

func TestDefaultsFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "my.cnf")
	if err := os.WriteFile(p, []byte("[mysqld]\nuser=mysql\n[client]\nuser = checker\npassword = \"s3cret\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	u, pw, err := credentials(config.DBAuth{DefaultsFile: p})
	if err != nil || u != "checker" || pw != "s3cret" {
		t.Fatalf("%q %q %v", u, pw, err)
	}
}

// Tier 3: a real MariaDB with wait_timeout 10.
func TestDBLive(t *testing.T) {
	m := testbed.StartMariaDB(t, testbed.MariaDBOptions{WaitTimeout: 10, InteractiveTimeout: 20})
	vc, err := validate.ParseReader("x.cfg", strings.NewReader(
		strings.Replace(strings.Replace(cfgText, "%s", m.Addr(), 1), "%s", m.Addr(), 1)))
	if err != nil {
		t.Fatal(err)
	}
	c := config.Default()
	c.Facts.DB.User, c.Facts.DB.Password = m.User()
	c.Facts.Mode = ModeLive
	f := Gather(context.Background(), vc, Options{Mode: ModeLive, Config: c})
	a := f.DB["db"]["a"]
	if a.Err != nil {
		t.Fatal(a.Err)
	}
	if a.Variables["wait_timeout"] != "10" || a.Variables["interactive_timeout"] != "20" ||
		a.Variables["net_read_timeout"] != "30" || a.Variables["net_write_timeout"] != "60" {
		t.Fatalf("variables %v", a.Variables)
	}
	if f.Kernel == nil || f.Kernel.Sysctls["net.ipv4.tcp_retries2"] == "" {
		t.Fatalf("kernel %v", f.Kernel)
	}
}

// A disabled DB backend is never asked for facts: it carries no traffic,
// and its servers are often the decommissioned ones.
func TestMySQLBackendsSkipDisabled(t *testing.T) {
	vc, err := validate.ParseReader("x.cfg", strings.NewReader(`defaults
	mode tcp
backend db
	option mysql-check
	server a 127.0.0.1:3306 check
backend old_db
	disabled
	option mysql-check
	server b 127.0.0.2:3306 check
listen old_listen
	disabled
	bind 127.0.0.1:3307
	server c 127.0.0.3:3306
`))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range MySQLBackends(vc, config.Default()) {
		names = append(names, p.Name)
	}
	if strings.Join(names, " ") != "db" {
		t.Fatalf("MySQL backends %v, want only db", names)
	}
}
