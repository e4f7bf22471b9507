package testbed

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// RHELUnit is haproxy.service as Fedora, RHEL, Rocky, Alma and Amazon
// Linux ship it: Type=notify, a config file and a conf.d directory, an
// EnvironmentFile, ExecStartPre and ExecReload checking the config, and
// no master CLI (-S). config, cfgdir and envfile are paths in the run
// directory (the host's /etc stays untouched).
func RHELUnit(config, cfgdir, envfile string) string {
	bin := HAProxyBin()
	return fmt.Sprintf(`[Unit]
Description=HAProxy Load Balancer (RHEL-style unit)
After=network-online.target
Wants=network-online.target

[Service]
Environment="CONFIG=%[2]s" "PIDFILE=/run/haproxy.pid" "CFGDIR=%[3]s"
EnvironmentFile=-%[4]s
ExecStartPre=%[1]s -f $CONFIG -f $CFGDIR -c -q $OPTIONS
ExecStart=%[1]s -Ws -f $CONFIG -f $CFGDIR -p $PIDFILE $OPTIONS
ExecReload=%[1]s -f $CONFIG -f $CFGDIR -c -q $OPTIONS
ExecReload=/bin/kill -USR2 $MAINPID
KillMode=mixed
SuccessExitStatus=143
Type=notify

[Install]
WantedBy=multi-user.target
`, bin, config, cfgdir, envfile)
}

// InstallUnit writes a unit file into the box's /run/systemd/system
// (which wins over the host's /lib/systemd/system there) and reloads
// systemd. A unit of Debian's name replaces Debian's in the box only.
func (s *Sandbox) InstallUnit(t testing.TB, name, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := s.HostPath(filepath.Join("/run/systemd/system", name))
	if err := writeAtomic(p, text); err != nil {
		t.Fatalf("testbed: %v", err)
	}
	// Debian's drop-in for haproxy.service would override this unit's
	// Environment and Exec lines.
	if name == "haproxy.service" {
		if err := os.Remove(s.HostPath(dropIn)); err != nil && !os.IsNotExist(err) {
			t.Fatalf("testbed: %v", err)
		}
	}
	if _, err := s.Systemctl(ctx, "daemon-reload"); err != nil {
		t.Fatalf("testbed: daemon-reload: %v", err)
	}
}

// StartUnit starts a unit and waits until it is active.
func (s *Sandbox) StartUnit(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.Systemctl(ctx, "start", name); err != nil {
		journal, _, _ := s.Run(ctx, "journalctl", "--no-pager", "-n", "40", "-u", name)
		t.Fatalf("testbed: start %s: %v\n%s", name, err, journal)
	}
	for {
		state, _ := s.Systemctl(ctx, "is-active", name)
		if strings.TrimSpace(state) == "active" {
			return
		}
		select {
		case <-ctx.Done():
			journal, _, _ := s.Run(context.Background(), "journalctl", "--no-pager", "-n", "40", "-u", name)
			t.Fatalf("testbed: %s not active (%q): %v\n%s", name, strings.TrimSpace(state), ctx.Err(), journal)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// WriteFiles writes files (absolute paths inside the run directory, or
// relative to it) with mode 0644, creating their directories.
func (s *Sandbox) WriteFiles(t testing.TB, files map[string]string) {
	t.Helper()
	for p, body := range files {
		if !filepath.IsAbs(p) {
			p = filepath.Join(s.dir, p)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatalf("testbed: %v", err)
		}
		if err := writeAtomic(p, body); err != nil {
			t.Fatalf("testbed: %v", err)
		}
	}
}

// TemplateUnit is a haproxy@.service template (Debian 12 ships none): the
// instance %i runs <dir>/%i.cfg with a master CLI at /run/haproxy-%i.sock.
func TemplateUnit(dir string) string {
	bin := HAProxyBin()
	return fmt.Sprintf(`[Unit]
Description=HAProxy instance %%i

[Service]
Environment="CONFIG=%[2]s/%%i.cfg" "PIDFILE=/run/haproxy-%%i.pid" "EXTRAOPTS=-S /run/haproxy-%%i.sock"
ExecStart=%[1]s -Ws -f $CONFIG -p $PIDFILE $EXTRAOPTS
ExecReload=%[1]s -Ws -f $CONFIG -c -q $EXTRAOPTS
ExecReload=/bin/kill -USR2 $MAINPID
KillMode=mixed
Restart=always
SuccessExitStatus=143
Type=notify
`, bin, dir)
}
