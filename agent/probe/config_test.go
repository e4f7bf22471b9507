package probe

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/validate"
)

func TestConfiguredTargets(t *testing.T) {
	vc, err := validate.ParseReader("haproxy.cfg", strings.NewReader(`listen galera
    mode tcp
    bind 127.0.0.1:3307
    option mysql-check
    server db1 10.0.0.1:3306 check
`))
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Probe.Targets = []config.ProbeTarget{
		{Address: "127.0.0.1:3307"},                    // kind from the section
		{Address: "127.0.0.1:3307", Kind: "idle-hold"}, // over from the section
		{Address: "127.0.0.1:6379", Kind: "idle-hold"}, // over from the port
		{Address: "127.0.0.1:9200", Kind: "http", Host: "db1", Path: "/"},
		{Address: "127.0.0.1:3306"}, // kind from the port
	}
	got := Configured(cfg.Probe.Targets, vc)
	want := []struct{ kind, over string }{{"mysql", ""}, {"idle-hold", "mysql"}, {"idle-hold", "tcp"}, {"http", ""}, {"mysql", ""}}
	for i, w := range want {
		if got[i].Kind != w.kind || got[i].Over != w.over {
			t.Errorf("target %d: kind %q over %q, want %q %q", i, got[i].Kind, got[i].Over, w.kind, w.over)
		}
	}
	if got[3].Host != "db1" {
		t.Errorf("host not carried: %+v", got[3])
	}
	if g := Configured(cfg.Probe.Targets, nil); g[0].Kind != "tcp" {
		t.Errorf("without a config, 3307 infers %q, want tcp", g[0].Kind)
	}
}

// A disabled frontend or listen binds nothing: probing its address would
// fail every reload, so it is no target. A live frontend does not get the
// server ports of a disabled backend either.
func TestProbeListenersSkipDisabled(t *testing.T) {
	vc, err := validate.ParseReader("haproxy.cfg", strings.NewReader(`defaults
    mode tcp
frontend live
    bind 127.0.0.1:3390
    use_backend old
    default_backend app
frontend maint
    disabled
    bind 127.0.0.1:3391
    default_backend app
listen old_listen
    disabled
    bind 127.0.0.1:3392
    server s 127.0.0.1:3306
backend app
    server a 127.0.0.1:8080
backend old
    disabled
    server o 127.0.0.1:3306
`))
	if err != nil {
		t.Fatal(err)
	}
	ls := Listeners(vc)
	if len(ls) != 1 || ls[0].Section != "frontend live" || !slices.Equal(ls[0].Binds, []string{"127.0.0.1:3390"}) ||
		!slices.Equal(ls[0].ServerPorts, []int{8080}) {
		t.Fatalf("listeners %+v, want only frontend live on 3390 with server port 8080", ls)
	}
}

// --target with --kind needs no inference; the config is read anyway
// when the routes matter (the backend verdict, the tcp linger).
func TestSelectReadsRoutesWhenAsked(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(`defaults
    mode tcp
    retries 0
frontend fe
    bind 127.0.0.1:3390
    default_backend app
backend app
    server a 127.0.0.1:8080
`), 0o644); err != nil {
		t.Fatal(err)
	}
	sel := Selection{Addresses: []string{"127.0.0.1:3390", "127.0.0.1:3391"}, Kind: KindTCP}
	lean, _, err := Select(sel, config.Probe{}, []string{cfg})
	if err != nil {
		t.Fatal(err)
	}
	if lean[0].Backends != nil || lean[0].GiveUp != DefaultGiveUp {
		t.Errorf("without Routes: %+v, want haproxy's defaults and no backends", lean[0])
	}
	sel.Routes = true
	full, _, err := Select(sel, config.Probe{}, []string{cfg})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(full[0].Backends, []string{"app"}) || full[0].GiveUp != 0 {
		t.Errorf("with Routes: %+v, want backend app, giving up at once (retries 0)", full[0])
	}
	if full[1].Backends != nil || full[1].GiveUp != DefaultGiveUp {
		t.Errorf("an address the config does not bind: %+v", full[1])
	}
}
