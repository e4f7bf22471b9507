package config

import (
	"strings"
	"testing"
	"time"
)

func TestProbeTargetOverAndHost(t *testing.T) {
	cfg, err := Parse([]byte(`probe:
  targets:
    - address: 127.0.0.1:3307
      kind: idle-hold
      over: mysql
      idle: 45s
    - address: 127.0.0.1:9200
      kind: http
      host: db1.example
`))
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Probe.Targets
	if got[0].Over != "mysql" || got[0].Idle.D() != 45*time.Second || got[1].Host != "db1.example" {
		t.Fatalf("targets = %+v", got)
	}
	_, err = Parse([]byte("probe:\n  targets:\n    - address: 127.0.0.1:3307\n      over: http\n"))
	if err == nil || !strings.Contains(err.Error(), "probe.targets[0].over") {
		t.Fatalf("over: http accepted (err %v)", err)
	}
}
