package doctor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/agent/probe"
	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/host"
	"github.com/haguard/haguard/systemd"
)

func TestProbeCheck(t *testing.T) {
	for _, tc := range []struct {
		name   string
		t      probe.Target
		status Status
		says   string
	}{
		{"http", probe.Target{Address: "127.0.0.1:80", Kind: probe.KindHTTP, Backends: []string{"web"}}, OK, "haproxy answers its own 503"},
		{"mysql", probe.Target{Address: "127.0.0.1:3307", Kind: probe.KindMySQL, Backends: []string{"db"}}, OK, "closes before the MySQL handshake"},
		{"tcp expect", probe.Target{Address: "127.0.0.1:25", Kind: probe.KindTCP, Expect: "^220", Backends: []string{"smtp"}}, OK, `must match "^220"`},
		{"tcp quick give-up", probe.Target{Address: "127.0.0.1:9000", Kind: probe.KindTCP, GiveUp: time.Second, Backends: []string{"be"}}, OK,
			"closes the connection within 1s when no server answers, and the probe watches 1.3s"},
		{"tcp slow give-up", probe.Target{Address: "127.0.0.1:9000", Kind: probe.KindTCP, GiveUp: 9 * time.Second, Backends: []string{"be"}}, Problem,
			"gives up on a dead server after 9s"},
		{"tcp no linger", probe.Target{Address: "127.0.0.1:9000", Kind: probe.KindTCP, Linger: probe.NoLinger, Backends: []string{"be"}}, Problem,
			"linger is off"},
		{"no backend", probe.Target{Address: "127.0.0.1:8080", Kind: probe.KindHTTP}, Note, "no server to be dead"},
		{"idle-hold", probe.Target{Address: "127.0.0.1:3307", Kind: probe.KindIdleHold, Backends: []string{"db"}}, Note, "idle sessions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := probeCheck(tc.t)
			if c.Status != tc.status || !strings.Contains(c.Message, tc.says) || (c.Status == Problem) != (c.Fix != "") {
				t.Fatalf("%+v", c)
			}
		})
	}
	c := probeCheck(probe.Target{Address: "127.0.0.1:9000", Kind: probe.KindTCP, GiveUp: 9 * time.Second, Backends: []string{"be"}})
	if !strings.Contains(c.Fix, "in backend be set `retries 1`") {
		t.Fatalf("fix %q", c.Fix)
	}
}

func TestStateDirCheck(t *testing.T) {
	dir := t.TempDir()
	if c := stateDirCheck(filepath.Join(dir, "absent")); c.Status != Note {
		t.Fatalf("absent: %+v", c)
	}
	for _, tc := range []struct {
		mode   os.FileMode
		status Status
		fix    string
	}{
		{0o750, OK, ""},
		{0o755, Problem, "chmod 0750 "},
		{0o777, Problem, "chmod 0750 "},
	} {
		d := filepath.Join(dir, fmt.Sprintf("m%o", tc.mode))
		if err := os.Mkdir(d, tc.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, tc.mode); err != nil { // past the umask
			t.Fatal(err)
		}
		c := stateDirCheck(d)
		if c.Status != tc.status || !strings.HasPrefix(c.Fix, tc.fix) {
			t.Errorf("mode %o: %+v", tc.mode, c)
		}
	}
	f := filepath.Join(dir, "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if c := stateDirCheck(f); c.Status != Problem {
		t.Fatalf("a file: %+v", c)
	}
}

func TestTokenCheck(t *testing.T) {
	dir := t.TempDir()
	if c := tokenCheck(filepath.Join(dir, "token")); c.Status != Note || !strings.Contains(c.Fix, "umask 077") {
		t.Fatalf("absent: %+v", c)
	}
	tok := filepath.Join(dir, "tok")
	if err := os.WriteFile(tok, []byte("0123456789abcdef0123\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c := tokenCheck(tok); c.Status != Problem || !strings.Contains(c.Message, "group or others") || !strings.Contains(c.Fix, "chmod 0600") {
		t.Fatalf("0644: %+v", c)
	}
	if err := os.Chmod(tok, 0o600); err != nil {
		t.Fatal(err)
	}
	if c := tokenCheck(tok); c.Status != OK {
		t.Fatalf("0600: %+v", c)
	}
}

func TestUnitAndDropInChecks(t *testing.T) {
	in := Input{Config: config.Default()}
	in.UnitErr = errors.New("no bus")
	if c := unitCheck(in); c.Status != Problem || !strings.Contains(c.Message, "no bus") {
		t.Fatalf("%+v", c)
	}
	in.Unit = &systemd.Unit{Name: "haproxy.service", LoadState: "loaded", ActiveState: "inactive", SubState: "dead"}
	if c := unitCheck(in); c.Status != Problem || c.Fix != "systemctl start haproxy.service; journalctl -u haproxy.service says why it stopped" {
		t.Fatalf("%+v", c)
	}
	in.Unit.ActiveState, in.Unit.SubState, in.Unit.MainPID = "active", "running", 68
	if c := unitCheck(in); c.Status != OK {
		t.Fatalf("%+v", c)
	}

	off := systemd.Unit{Name: "haproxy.service", ExecReload: []systemd.Exec{{Path: "/usr/sbin/haproxy", Argv: []string{"/usr/sbin/haproxy", "-c"}}}}
	if c, on := dropInCheck(&off); on || c.Status != Note || c.Fix != "haguard doctor --enable-dropin" {
		t.Fatalf("off: %+v", c)
	}
	p := filepath.Join(t.TempDir(), "haguard.conf")
	if err := os.WriteFile(p, []byte("[Service]\nExecReload=\nExecReload=/usr/bin/haguard exec-reload --unit %n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	onU := systemd.Unit{Name: "haproxy.service", DropInPaths: []string{p},
		ExecReload: []systemd.Exec{{Path: "/usr/bin/haguard", Argv: []string{"/usr/bin/haguard", "exec-reload", "--unit", "haproxy.service"}}}}
	if c, on := dropInCheck(&onU); !on || c.Status != OK || !strings.Contains(c.Message, p) {
		t.Fatalf("on: %+v", c)
	}
}

// haguard.yaml that contradicts the unit is a problem with the key, both
// values and the fix.
func TestYAMLConflicts(t *testing.T) {
	err := errors.Join(&host.ConflictError{Key: "haproxy.configs", YAML: "/etc/haproxy/old.cfg", Unit: "/etc/haproxy/haproxy.cfg", From: "master command line (pid 68)"})
	cs := yamlChecks(Input{Config: config.Default(), HostErr: err})
	if len(cs) < 1 || cs[0].Status != Problem || !strings.Contains(cs[0].Message, "haproxy.configs is /etc/haproxy/old.cfg, but the unit runs with /etc/haproxy/haproxy.cfg") ||
		cs[0].Fix != "in haguard.yaml, set haproxy.configs to /etc/haproxy/haproxy.cfg or drop the key (haguard reads it from the unit)" {
		t.Fatalf("%+v", cs)
	}
}
