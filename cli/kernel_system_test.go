package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/internal/testbed"
	"github.com/haguard/haguard/reload"
	"github.com/haguard/haguard/validate"
)

// TestSystemKernelFactsInHAProxysNamespace (issue 14 item 5): haproxy.service
// runs in a network namespace of its own (NetworkNamespacePath=, made with
// `ip netns add`) whose tcp_keepalive_time is 5400 s; haguard runs in the
// box's (the host's) namespace, where it is 7200 s. The KN201 finding must
// quote haproxy's 90m, never haguard's 2h: through `haguard check` of a
// candidate (the master found over the master CLI) and through the
// reload's check stage, which refuses it (systemd's MainPID).
func TestSystemKernelFactsInHAProxysNamespace(t *testing.T) {
	testbed.Require(t, testbed.TierSystem)
	s := testbed.Boot(t)
	bin := testbed.BuildHaguard(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	ns := s.AddNetns(t, "hgk")
	s.SysctlIn(t, ns, "net.ipv4.tcp_keepalive_time", "5400")
	own, err := os.ReadFile("/proc/sys/net/ipv4/tcp_keepalive_time")
	if err != nil || strings.TrimSpace(string(own)) == "5400" {
		t.Fatalf("haguard's own namespace must differ: %q %v", own, err)
	}
	dropIn := s.HostPath("/run/systemd/system/haproxy.service.d/netns.conf")
	if err := os.WriteFile(dropIn, []byte("[Service]\nNetworkNamespacePath="+ns+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Systemctl(ctx, "daemon-reload"); err != nil {
		t.Fatal(err)
	}
	// The running config has no keepalive; the candidate turns it on, so
	// KN201 is the candidate's own (new) error and stops the reload at its
	// check stage.
	listen := fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	running := testbed.TCPProxyConfig(listen, "127.0.0.1:9")
	s.StartHAProxy(t, running)
	candidate := filepath.Join(s.Dir(), "candidate.cfg")
	if err := os.WriteFile(candidate, []byte(strings.Replace(running, "\nbackend be_test\n", "\nbackend be_test\n\toption srvtcpka\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}

	yaml := filepath.Join(s.Dir(), "haguard.yaml")
	y := "haproxy:\n  configs: [" + strconv.Quote(s.HAProxyConfig()) + "]\nstate_dir: " + strconv.Quote(filepath.Join(s.Dir(), "state")) +
		"\nreload:\n  min_interval: 0s\nfacts:\n  mode: live\npath:\n  middleboxes:\n    - name: fw\n      kind: generic\n      hop: server\n      idle_timeout: 1h\n"
	if err := os.WriteFile(yaml, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, int) {
		out, errOut, err := s.Run(ctx, append([]string{bin, "--config-file", yaml, "--format", "json"}, args...)...)
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			return out, ee.ExitCode()
		case err != nil:
			t.Fatalf("haguard %v: %v\n%s", args, err, errOut)
		}
		return out, 0
	}
	kn201 := func(fs []validate.Finding, out string) string {
		for _, f := range fs {
			if f.Rule == "KN201" {
				return f.Message
			}
		}
		t.Fatalf("no KN201 among %+v\n%s", fs, out)
		return ""
	}

	out, code := run("check", "-f", candidate)
	var rep validate.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("check JSON: %v\n%s", err, out)
	}
	msg := kn201(rep.Findings, out)
	t.Logf("haguard check: exit %d; KN201: %s", code, msg)
	if code != exitNegative || !strings.Contains(msg, "tcp_keepalive_time=90m") || strings.Contains(msg, "=2h") {
		t.Fatalf("check read the keepalive of another namespace than haproxy's: exit %d, %s", code, msg)
	}

	out, code = run("reload", "--candidate", candidate)
	var res reload.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("reload JSON: %v\n%s", err, out)
	}
	msg = kn201(res.Findings, out)
	t.Logf("haguard reload: exit %d; KN201: %s", code, msg)
	if st, ok := stage(res, reload.StageCheck); code != exitNegative || res.OK || !ok || st.OK || !strings.Contains(msg, "tcp_keepalive_time=90m") {
		t.Fatalf("reload: exit %d ok %v, check stage %+v, %s", code, res.OK, st, msg)
	}
}
