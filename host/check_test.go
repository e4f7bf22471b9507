package host

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/internal/testbed"
	"github.com/haguard/haguard/reload"
)

// A config with an error finding (a backend with no timeout server) can
// still be changed: the reload blocks only on error findings the running
// config does not have, unless strict. Against the real haproxy -c.
func TestCheckBlocksOnNewErrorsOnly(t *testing.T) {
	testbed.Require(t, testbed.TierBinary)
	dir := t.TempDir()
	running := filepath.Join(dir, "haproxy.cfg")
	base := "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 30s\nfrontend fe\n    bind 127.0.0.1:1\n    default_backend be\nbackend be\n    server s 127.0.0.1:2\n"
	if err := os.WriteFile(running, []byte(base), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.HAProxy.Configs, cfg.HAProxy.Binary = []string{running}, testbed.HAProxyBin()
	cfg.Policy.CLI = false
	h, err := OpenWithoutSystemd(cfg, errors.New("no systemd in this test"), nil)
	if err != nil {
		t.Fatal(err)
	}
	check := func(body string, strict bool) reload.CheckReport {
		t.Helper()
		cand := filepath.Join(t.TempDir(), "cand.cfg")
		if err := os.WriteFile(cand, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		rep, err := checkPort{h}.Check(context.Background(), reload.CheckRequest{Files: []string{running},
			Staged: map[string]string{running: cand}, Strict: strict})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	// The same missing timeout as the running config: it does not block.
	rep := check(base+"    # a comment\n", false)
	if countRule(rep.Findings, "HA003") == 0 || rep.Blocking == nil || len(rep.Blocking) != 0 {
		t.Fatalf("findings %v, blocking %v: want HA003 reported and nothing blocking", rep.Findings, rep.Blocking)
	}
	// Strict: every error blocks (nil Blocking).
	if rep := check(base+"    # a comment\n", true); rep.Blocking != nil {
		t.Fatalf("strict: blocking %v, want nil (every error)", rep.Blocking)
	}
	// A new missing timeout in a new backend blocks.
	rep = check(base+"backend be2\n    server s 127.0.0.1:3\nfrontend fe2\n    bind 127.0.0.1:4\n    default_backend be2\n", false)
	if len(rep.Blocking) == 0 {
		t.Fatalf("a new error finding does not block: findings %v", rep.Findings)
	}
	for _, f := range rep.Blocking {
		if f.File != running {
			t.Errorf("a blocking finding names %s, not the real path %s", f.File, running)
		}
	}
}

func countRule(fs []reload.Finding, rule string) int {
	n := 0
	for _, f := range fs {
		if f.Rule == rule {
			n++
		}
	}
	return n
}
