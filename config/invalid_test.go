package config

import (
	"os"
	"path/filepath"
	"testing"
)

// TestInvalidFiles maps every testdata/invalid-*.yaml to the exact error
// an operator reads, as blackbox_exporter's config tests do: each names
// the line or the field, in haguard.yaml's words.
func TestInvalidFiles(t *testing.T) {
	want := map[string]string{
		"invalid-client-kind.yaml":              `path.clients[0].kind: unknown kind "rails"`,
		"invalid-duplicate-key.yaml":            `line 3: mapping key "lock" already defined at line 2`,
		"invalid-empty-unit.yaml":               `systemd.unit: must not be empty`,
		"invalid-facts-mode.yaml":               `facts.mode: "sometimes" is not none, declared or live`,
		"invalid-history-keep.yaml":             `reload.history_keep: must be at least 1`,
		"invalid-lint-ignore-field.yaml":        `line 4: unknown field "sektion" in lint.ignore[] (known: file, reason, rule, section)`,
		"invalid-lint-severity.yaml":            `lint.severity.HA010: "fatal" is not error, warning or info`,
		"invalid-generations-max-draining.yaml": `generations.max_draining: must be >= 0 (0: no limit)`,
		"invalid-generations-grace.yaml":        `generations.grace.soft_stop: must be a time (0s or more), not unlimited`,
		"invalid-min-interval.yaml":             `reload.min_interval: must be a time (0s: no minimum), not unlimited`,
		"invalid-lock.yaml":                     `reload.lock: "maybe" is not wait or fail`,
		"invalid-max-body.yaml":                 `api.max_body_bytes: must be positive`,
		"invalid-middlebox-hop.yaml":            `path.middleboxes[0].hop: "both" is not client or server`,
		"invalid-middlebox-kind.yaml":           `path.middleboxes[0].kind: unknown kind "f6-ltm"`,
		"invalid-empty-config-path.yaml":        `haproxy.configs[1]: empty path`,
		"invalid-not-a-mapping.yaml":            `line 1: want a mapping of settings at the top level, got a list`,
		"invalid-probe-target-address.yaml":     `probe.targets[0].address: required`,
		"invalid-probe-target-kind.yaml":        `probe.targets[0].kind: "ping" is not tcp, mysql, http or idle-hold`,
		"invalid-sweep-interval.yaml":           `sweep.interval: must be positive`,
		"invalid-time-without-unit.yaml":        `line 2: duration "15" has no unit; write 15s or 15ms`,
		"invalid-two-documents.yaml":            `more than one YAML document (a second '---'): haguard.yaml is one mapping`,
		"invalid-unknown-field.yaml":            `line 2: unknown field "config" in haproxy (did you mean configs?)`,
		"invalid-unknown-field-far.yaml":        `line 2: unknown field "unknown_knob" in reload (known: backend_wait, backends, confirm_every, history_keep, kill_ghosts, kill_grace, lock, lock_timeout, min_interval, probe, settle_timeout)`,
		"invalid-wrong-type.yaml":               `line 2: want a whole number, got a string (many)`,
	}
	files, err := filepath.Glob("testdata/invalid-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range files {
		name := filepath.Base(f)
		seen[name] = true
		w, ok := want[name]
		if !ok {
			t.Errorf("%s has no expected error in the table", name)
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Parse(data)
		if err == nil {
			t.Errorf("%s: parsed without an error, want %q", name, w)
			continue
		}
		if err.Error() != w {
			t.Errorf("%s:\n got  %q\n want %q", name, err.Error(), w)
		}
		if _, err := Load(f, true); err == nil || err.Error() != f+": "+w {
			t.Errorf("Load(%s) = %v, want the same error prefixed with the file", name, err)
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("%s is in the table but not in testdata", name)
		}
	}
}
