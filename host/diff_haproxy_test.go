package host

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/internal/testbed"
	"github.com/haguard/haguard/internal/testbed/mastertest"
	"github.com/haguard/haguard/reload"
	"github.com/haguard/haguard/validate"
)

// Tier 2: what haguard diff calls appliable at runtime, a running haproxy
// takes through its master CLI, with the very command diff prints, and
// then holds what the candidate says; what it says needs a reload is not
// such a change.
func TestRuntimeChangesApplyToARealHAProxy(t *testing.T) {
	testbed.Require(t, testbed.TierBinary)
	dir := t.TempDir()
	mapFile := filepath.Join(dir, "hosts.map")
	if err := os.WriteFile(mapFile, []byte("a.example green\nold.example gone\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(testbed.FreePort(t)))
	cfg := func(s1, s2 string) string {
		return fmt.Sprintf(`defaults
	mode http
	timeout connect 1s
	timeout client 10s
	timeout server 10s

frontend fe
	bind %s
	http-request set-var(txn.color) req.hdr(host),lower,map(%s,none)
	default_backend be

backend be
	server s1 %s
	server s2 %s
`, listen, mapFile, s1, s2)
	}
	before := cfg("127.0.0.1:9001 weight 10", "127.0.0.1:9002")
	after := cfg("127.0.0.1:9001 weight 20", "127.0.0.2:9003 disabled")
	m := mastertest.Start(t, before)

	bc, err := validate.ParseReader("run.cfg", strings.NewReader(before))
	if err != nil {
		t.Fatal(err)
	}
	ac, err := validate.ParseReader("cand.cfg", strings.NewReader(after))
	if err != nil {
		t.Fatal(err)
	}
	changes := validate.DiffConfigs(bc, ac)
	changes = append(changes, validate.DiffMap("map", mapFile, []byte("a.example green\nold.example gone\n"), []byte("a.example blue\nb.example red\n"))...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	applied := 0
	for _, c := range changes {
		if !c.Runtime {
			t.Errorf("%s %s %s: %s, want runtime", c.Section, c.Kind, c.Name, c.How)
			continue
		}
		for _, cmd := range strings.Split(c.How, "; ") {
			out, err := m.Client.Command(ctx, "@1 "+cmd)
			// Silence, or (set server addr) what it changed; the state
			// read below is the proof.
			if out = strings.TrimSpace(out); err != nil || out != "" && !strings.Contains(out, " changed from ") {
				t.Fatalf("%s: %q %v", cmd, out, err)
			}
			applied++
		}
	}
	if applied != 6 {
		t.Fatalf("applied %d commands of %+v", applied, changes)
	}
	state, err := m.Client.Command(ctx, "@1 show servers state be")
	if err != nil {
		t.Fatal(err)
	}
	// be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state
	// srv_uweight srv_iweight ... srv_port ...
	for _, want := range [][]string{{"s1", "127.0.0.1", "20"}, {"s2", "127.0.0.2", "1"}} {
		found := false
		for _, l := range strings.Split(state, "\n") {
			f := strings.Fields(l)
			if len(f) > 8 && f[3] == want[0] {
				found = true
				if f[4] != want[1] || f[7] != want[2] {
					t.Errorf("%s: addr %s weight %s, want %s %s (%s)", want[0], f[4], f[7], want[1], want[2], l)
				}
				if want[0] == "s2" && f[6] == "0" {
					t.Errorf("s2 is not in maintenance: %s", l)
				}
			}
		}
		if !found {
			t.Errorf("no %s in:\n%s", want[0], state)
		}
	}
	mp, err := m.Client.Command(ctx, "@1 show map "+mapFile)
	if err != nil || !strings.Contains(mp, "a.example blue") || !strings.Contains(mp, "b.example red") || strings.Contains(mp, "old.example") {
		t.Fatalf("map after the runtime changes: %v\n%s", err, mp)
	}
}

// The differ parses both sets the way the unit reads them and names the
// real paths, not its scratch copies.
func TestDiffPortNamesRealPaths(t *testing.T) {
	h, err := newHost(config.Default(), Discovery{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	run := map[string][]byte{"/etc/haproxy/haproxy.cfg": []byte("backend be\n\tserver s1 10.0.0.1:80 weight 1\n")}
	cand := map[string][]byte{"/etc/haproxy/haproxy.cfg": []byte("backend be\n\tserver s1 10.0.0.1:80 weight 5\n")}
	set := func(m map[string][]byte) reload.ConfigSet {
		return reload.ConfigSet{Files: []string{"/etc/haproxy/haproxy.cfg"}, Read: func(p string) ([]byte, bool) { b, ok := m[p]; return b, ok }}
	}
	cs, err := diffPort{h}.Diff(context.Background(), set(run), set(cand))
	if err != nil || len(cs) != 1 || cs[0].File != "/etc/haproxy/haproxy.cfg" || cs[0].Line != 2 || !cs[0].Runtime {
		t.Fatalf("%v %+v", err, cs)
	}
}
