package config

import (
	"testing"
	"time"
)

func TestGenerationsDefaultsAndParse(t *testing.T) {
	d := Default().Generations
	if d.Enforce || d.MaxDraining != 10 || d.MaxAge.D() != 24*time.Hour || !d.MaxRSS.IsUnlimited() || !d.Limited() {
		t.Fatalf("defaults = %+v; want conservative limits, enforce off", d)
	}
	cfg, err := Parse([]byte("generations:\n  max_draining: 2\n  max_age: unlimited\n  max_rss: 512MiB\n  enforce: true\n  grace: {sessions: 1s, soft_stop: 2s, terminate: 0s}\nreload:\n  min_interval: 0s\n"))
	if err != nil {
		t.Fatal(err)
	}
	g := cfg.Generations
	if !g.Enforce || g.MaxDraining != 2 || !g.MaxAge.IsUnlimited() || g.MaxRSS.Bytes() != 512<<20 || g.Grace.SoftStop.D() != 2*time.Second || g.Grace.Terminate != 0 {
		t.Fatalf("parsed %+v", g)
	}
	if cfg.Reload.MinInterval != 0 {
		t.Fatalf("min_interval = %v, want 0s", cfg.Reload.MinInterval)
	}
	off, err := Parse([]byte("generations: {max_draining: 0, max_age: unlimited}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if off.Generations.Limited() {
		t.Fatal("no limit set, yet Limited() is true")
	}
}
