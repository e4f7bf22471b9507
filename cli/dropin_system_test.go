package cli

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/agent/master"
	"github.com/haguard/haguard/doctor"
	"github.com/haguard/haguard/internal/testbed"
	"github.com/haguard/haguard/reload"
)

// Tier 3, issue 18 items 4 and 6: haguard doctor in the box, and a plain
// `systemctl reload haproxy` through haguard's drop-in.

// boxDropIns is where drop-ins go in the box: its private /run (its /etc
// is the host's).
const boxDropIns = "/run/systemd/system"

func (b *uxBox) systemctl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, errOut, err := b.s.Run(ctx, append([]string{"systemctl"}, args...)...)
	return out + errOut, err
}

func (b *uxBox) reloads(t *testing.T) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		out, err := b.s.MasterCLI(ctx, "show proc")
		if err == nil {
			if sp, err := master.ParseShowProc(out); err == nil {
				return sp.Reloads
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("show proc: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (b *uxBox) doctor(t *testing.T, args ...string) (doctor.Report, int) {
	t.Helper()
	out, errOut, code := b.run(t, nil, append([]string{"--format", "json", "doctor", "--dropin-root", boxDropIns}, args...)...)
	var rep doctor.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("doctor %v (exit %d): %v\n%s\n%s", args, code, err, out, errOut)
	}
	return rep, code
}

func find(rep doctor.Report, name string) []doctor.Check {
	var out []doctor.Check
	for _, c := range rep.Checks {
		if c.Name == name {
			out = append(out, c)
		}
	}
	return out
}

// haproxyRelease is the release of the haproxy under test, as `haproxy
// -v` names it ("2.6.12-1+deb12u4", "3.0.11-9e587df").
func haproxyRelease(t *testing.T) string {
	t.Helper()
	v, err := testbed.HAProxyVersion()
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(v)
	if len(f) < 3 {
		t.Fatalf("haproxy -v: %q", v)
	}
	return f[2]
}

func TestDoctorInTheBox(t *testing.T) {
	b := newUXBox(t)
	out, _, code := b.run(t, nil, "doctor", "--dropin-root", boxDropIns)
	t.Logf("doctor (exit %d):\n%s", code, out)
	for _, want := range []string{"[ok]      unit: haproxy.service is active (running)", "[ok]      haguard.yaml: agrees with the unit: configs " + b.s.HAProxyConfig(),
		"[ok]      master_socket: /run/haproxy-master.sock answers", "[ok]      stats_socket: " + b.statsSock + " answers: 1 servers",
		"[ok]      probe: " + b.listen + " (tcp): a dead server shows", "[ok]      haproxy: haproxy " + haproxyRelease(t), "[note]    state_dir: ",
		"[note]    dropin: `systemctl reload haproxy.service` bypasses haguard", "          fix: haguard doctor --enable-dropin", "no problem ("} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor lacks %q", want)
		}
	}
	if code != 0 {
		t.Fatalf("exit %d", code)
	}

	// haguard.yaml that names another config than the unit runs.
	y, _ := os.ReadFile(b.yaml)
	if err := os.WriteFile(b.yaml, append(y, []byte("haproxy:\n  configs: [/etc/haproxy/other.cfg]\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, code := b.doctor(t)
	cs := find(rep, "haguard.yaml")
	if code != 1 || rep.OK || len(cs) == 0 || cs[0].Status != doctor.Problem ||
		cs[0].Fix != "in haguard.yaml, set haproxy.configs to "+b.s.HAProxyConfig()+" or drop the key (haguard reads it from the unit)" {
		t.Fatalf("conflict: exit %d %+v", code, cs)
	}
	if err := os.WriteFile(b.yaml, y, 0o644); err != nil {
		t.Fatal(err)
	}

	// On a terminal doctor offers the drop-in; "y" switches it on.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tty, err := b.s.RunTTY(ctx, 200, "y\n", b.bin, "--config-file", b.yaml, "doctor", "--dropin-root", boxDropIns)
	t.Logf("doctor on a terminal (%v):\n%s", err, tty)
	if err != nil || !strings.Contains(tty, "Make `systemctl reload haproxy.service` go through haguard now (haguard doctor --enable-dropin)? [y/N]") ||
		!strings.Contains(tty, "now goes through haguard ("+boxDropIns+"/haproxy.service.d/haguard.conf)") {
		t.Fatal("no offer, or it did not switch the drop-in on")
	}
	if rep, _ := b.doctor(t); !rep.DropIn {
		t.Fatalf("the drop-in is not on: %+v", find(rep, "dropin"))
	}
	if rep, code := b.doctor(t, "--disable-dropin"); rep.DropIn || code != 0 {
		t.Fatalf("--disable-dropin: exit %d, %+v", code, find(rep, "dropin"))
	}
}

// With the drop-in on, `systemctl reload` runs a haguard transaction:
// a good edit commits (once), a typo and a new lint error are refused
// with haproxy's and haguard's words in `systemctl status`, a dead
// backend rolls back; and haguard's own reload and rollback go on working
// through the same ExecReload without a second transaction.
func TestSystemctlReloadGoesThroughHaguard(t *testing.T) {
	b := newUXBox(t)
	if _, code := b.doctor(t, "--enable-dropin"); code != 0 {
		t.Fatalf("--enable-dropin: exit %d", code)
	}
	cat, _ := b.systemctl(t, "cat", "haproxy.service")
	if !strings.Contains(cat, "ExecReload="+b.bin+" --config-file "+b.yaml+" exec-reload --unit %n") {
		t.Fatalf("the unit does not run exec-reload:\n%s", cat)
	}
	history := func() []reload.Entry {
		out, _, _ := b.run(t, nil, "--format", "json", "history")
		var es []reload.Entry
		if err := json.Unmarshal([]byte(out), &es); err != nil {
			t.Fatalf("history: %v\n%s", err, out)
		}
		return es
	}
	status := func() string {
		out, _ := b.systemctl(t, "status", "--no-pager", "-l", "-n", "30", "haproxy.service")
		return out
	}

	// A good edit: committed by a transaction of systemd's, one reload.
	before := b.reloads(t)
	b.s.WriteHAProxyConfig(t, uxConfig(b.listen, b.backend, b.statsSock, 20, ""))
	if out, err := b.systemctl(t, "reload", "haproxy.service"); err != nil {
		t.Fatalf("systemctl reload of a good edit: %v\n%s\n%s", err, out, status())
	}
	es := history()
	if n := b.reloads(t); n != before+1 || len(es) != 1 || es[0].Outcome != reload.OutcomeCommitted || es[0].Who != "systemd" ||
		es[0].Reason != "systemctl reload haproxy.service" {
		t.Fatalf("reloads %d -> %d, history %+v", before, n, es)
	}

	// A typo: the job fails, haproxy's ALERT is in systemctl status, and
	// nothing was reloaded.
	good := uxConfig(b.listen, b.backend, b.statsSock, 20, "")
	before = b.reloads(t)
	b.s.WriteHAProxyConfig(t, strings.Replace(good, "\tserver s1 ", "\tserver-typo s1 ", 1))
	if out, err := b.systemctl(t, "reload", "haproxy.service"); err == nil {
		t.Fatalf("systemctl reload of a typo succeeded: %s", out)
	}
	st := status()
	t.Logf("status after the typo:\n%s", st)
	if !strings.Contains(st, b.s.HAProxyConfig()+":17: error: unknown keyword 'server-typo'") || !strings.Contains(st, "REFUSED") ||
		!strings.Contains(st, "active (running)") || b.reloads(t) != before {
		t.Fatal("want the ALERT and REFUSED in systemctl status, haproxy running, no reload")
	}

	// A lint error the edit brings in (a unitless 28800: 28.8 s, not
	// 8 h) is refused too, though haproxy -c takes it.
	b.s.WriteHAProxyConfig(t, strings.Replace(good, "timeout client 30s", "timeout client 28800", 1))
	if out, err := b.systemctl(t, "reload", "haproxy.service"); err == nil {
		t.Fatalf("systemctl reload of a new lint error succeeded: %s", out)
	}
	st = status()
	t.Logf("status after a new lint error:\n%s", st)
	if !strings.Contains(st, "error HA001") || b.reloads(t) != before {
		t.Fatalf("want HA001 in systemctl status:\n%s", st)
	}

	// A dead backend: reloaded, the probe fails, rolled back.
	b.s.WriteHAProxyConfig(t, uxConfig(b.listen, testbed.DeadAddr(t), b.statsSock, 20, ""))
	if out, err := b.systemctl(t, "reload", "haproxy.service"); err == nil {
		t.Fatalf("systemctl reload of a dead backend succeeded: %s", out)
	}
	disk, _ := os.ReadFile(b.s.HAProxyConfig())
	st = status()
	t.Logf("status after a dead backend:\n%s", st)
	if !strings.Contains(st, "ROLLED BACK") || string(disk) != good {
		t.Fatalf("want a rollback to the good config:\n%s\ndisk:\n%s", st, disk)
	}

	// haguard's own reload through the same ExecReload: one transaction,
	// one reload, and the job says whose it was.
	before, n := b.reloads(t), len(history())
	out, errOut, code := b.run(t, nil, "reload", "--candidate", b.file(t, "w30.cfg", uxConfig(b.listen, b.backend, b.statsSock, 30, "")))
	t.Logf("haguard reload (exit %d):\n%s\n%s", code, out, errOut)
	es = history()
	if code != 0 || b.reloads(t) != before+1 || len(es) != n+1 || es[len(es)-1].Outcome != reload.OutcomeCommitted {
		t.Fatalf("haguard reload with the drop-in: exit %d, reloads %d -> %d, history %d -> %d", code, before, b.reloads(t), n, len(es))
	}
	if st := status(); !strings.Contains(st, "this is the reload of haguard transaction "+es[len(es)-1].ID) {
		t.Fatalf("the job did not recognise haguard's transaction:\n%s", st)
	}
	out, _, code = b.run(t, nil, "rollback")
	if code != 0 {
		t.Fatalf("haguard rollback with the drop-in: exit %d\n%s", code, out)
	}
}
