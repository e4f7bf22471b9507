package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/reload"
)

func TestReloadExit(t *testing.T) {
	for _, tc := range []struct {
		name string
		res  reload.Result
		err  error
		want int
	}{
		{"committed", reload.Result{OK: true}, nil, exitOK},
		{"unchanged and verified", reload.Result{OK: true, Unchanged: true}, reload.ErrUnchanged, exitOK},
		{"unchanged, ghosts", reload.Result{Unchanged: true}, errors.Join(reload.ErrUnchanged, reload.ErrVerify), exitNegative},
		{"refused", reload.Result{}, fmt.Errorf("%w: check", reload.ErrRefused), exitNegative},
		{"rolled back", reload.Result{RolledBack: true}, fmt.Errorf("%w: probe", reload.ErrRolledBack), exitNegative},
		{"locked", reload.Result{}, &reload.LockedError{Holder: "x"}, exitNegative},
		{"rollback failed", reload.Result{Broken: true}, fmt.Errorf("%w: rollback", reload.ErrBroken), exitBroken},
	} {
		if got := reloadExit(tc.res, tc.err); got != tc.want {
			t.Errorf("%s: exit %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestReloadHumanChecklist(t *testing.T) {
	res := reload.Result{ID: "x", OK: true, Stages: []reload.Stage{
		{Name: "check", OK: true, Detail: "haproxy -c: valid; 0 findings (0 errors)"},
		{Name: "reload", OK: true, Detail: "reload job done"},
		{Name: "settle", OK: true, Detail: "generation 7 running (2 workers); old generation draining (1 workers, since 2026-11-28T01:00:00Z)"},
		{Name: "sweep", OK: true, Detail: "ghosts: 0, divergent: 0, current: 3, draining: 1"},
		{Name: "probe", OK: true, Detail: "probes: 20/20 OK; backends: 3 servers UP (L7OK 3)"},
	},
		Settle: &reload.SettleResult{Generation: 7, Workers: 2, OldWorkers: 1, OldestDraining: time.Date(2026, 11, 28, 1, 0, 0, 0, time.UTC)},
		Probes: reload.ProbeReport{Total: 20, OK: 20, Servers: []reload.ServerHealth{
			{Backend: "galera", Server: "n1", Status: "UP", Check: "L7OK"},
			{Backend: "galera", Server: "n2", Status: "UP", Check: "L7OK"},
			{Backend: "galera", Server: "n3", Status: "UP", Check: "L7OK"},
		}},
	}
	var b bytes.Buffer
	writeReloadHuman(&b, res, nil, nil)
	for _, want := range []string{"[x] config valid", "[x] reload job done", "[x] generation 7 running", "[x] old generation draining (1 workers",
		"[x] ghosts: 0", "[x] probes: 20/20 OK", "[x] backends: 3 servers UP (L7OK 3)", "COMMITTED"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in:\n%s", want, b.String())
		}
	}
}

// A refusal by haproxy -c reads like nginx -t: each ALERT once, as
// file:line: error: message, the findings with their fix, and no reason
// line repeating the stage's error.
func TestReloadHumanRefusal(t *testing.T) {
	out := "[NOTICE]   (275) : haproxy version is 2.6.12-1+deb12u4\n[NOTICE]   (275) : path to executable is /usr/sbin/haproxy\n" +
		"[ALERT]    (275) : config : parsing [/etc/haproxy/haproxy.cfg:19] : unknown keyword 'server-typo' in 'backend' section; did you mean 'server' maybe ?\n" +
		"[ALERT]    (275) : config : Error(s) found in configuration file : /etc/haproxy/haproxy.cfg\n"
	stageErr := "haproxy -c: /etc/haproxy/haproxy.cfg:19: error: unknown keyword 'server-typo' in 'backend' section; did you mean 'server' maybe ?"
	res := reload.Result{ID: "x", CheckOutput: out, Stages: []reload.Stage{
		{Name: "check", Detail: "haproxy -c: invalid; 1 findings (0 errors)", Error: stageErr}},
		Findings: []reload.Finding{{Rule: "HA010", Severity: "warning", Message: "no hard-stop-after", Fix: "hard-stop-after 30m", File: "/etc/haproxy/haproxy.cfg", Line: 1}},
	}
	var b bytes.Buffer
	writeReloadHuman(&b, res, fmt.Errorf("%w: %s", reload.ErrRefused, stageErr), nil)
	got := b.String()
	want := `haguard reload x
    /etc/haproxy/haproxy.cfg:1: warning HA010: no hard-stop-after
        fix: hard-stop-after 30m
    /etc/haproxy/haproxy.cfg:19: error: unknown keyword 'server-typo' in 'backend' section; did you mean 'server' maybe ?
[!] config invalid: haproxy -c found 1 error(s), above
REFUSED in 0 ms
`
	if got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

// The drop-in the package ships is the one doctor writes for the
// package's binary and the default haguard.yaml.
func TestShippedDropIn(t *testing.T) {
	b, err := os.ReadFile("../deploy/haproxy-reload.conf")
	if err != nil {
		t.Fatal(err)
	}
	if got := dropInText(packagedBinary, ""); string(b) != got {
		t.Fatalf("deploy/haproxy-reload.conf differs from dropInText:\n%s", got)
	}
	if got := dropInText("/opt/my haguard", "/etc/other.yaml"); !strings.HasSuffix(got, "ExecReload=\"/opt/my haguard\" --config-file /etc/other.yaml exec-reload --unit %n\n") {
		t.Fatalf("non-default: %s", got)
	}
}
