package config

import (
	"path/filepath"
	"testing"
)

// TestForUnit: systemd.unit keeps haguard.yaml as written; another unit
// gets its own state dir and none of the overrides that describe
// systemd.unit's haproxy, which would refuse it or probe the wrong one.
func TestForUnit(t *testing.T) {
	c := Default()
	c.StateDir = "/var/lib/haguard"
	c.HAProxy.Configs = []string{"/etc/haproxy/haproxy.cfg"}
	c.HAProxy.Binary = "/usr/sbin/haproxy"
	c.HAProxy.MasterSocket = "/run/haproxy-master.sock"
	c.HAProxy.StatsSocket = "/run/haproxy/admin.sock"
	c.Probe.Targets = []ProbeTarget{{Address: "127.0.0.1:3306"}}
	c.Probe.Count = 7

	same := ForUnit(c, c.Systemd.Unit)
	if same.StateDir != c.StateDir || len(same.HAProxy.Configs) != 1 || len(same.Probe.Targets) != 1 {
		t.Errorf("systemd.unit's own config changed: %+v", same)
	}
	o := ForUnit(c, "haproxy@second.service")
	if o.Systemd.Unit != "haproxy@second.service" || o.StateDir != filepath.Join(c.StateDir, "units", "haproxy@second.service") {
		t.Errorf("unit %q state dir %q", o.Systemd.Unit, o.StateDir)
	}
	if o.HAProxy.Configs != nil || o.HAProxy.Binary != "" || o.HAProxy.MasterSocket != "" || o.HAProxy.StatsSocket != "" || o.Probe.Targets != nil {
		t.Errorf("another unit kept systemd.unit's overrides: %+v %+v", o.HAProxy, o.Probe.Targets)
	}
	if o.Probe.Count != 7 || len(c.Probe.Targets) != 1 {
		t.Errorf("settings for every unit lost, or the original changed: count %d, original targets %v", o.Probe.Count, c.Probe.Targets)
	}
}
