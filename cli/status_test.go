package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/haguard/haguard/agent/generations"
	"github.com/haguard/haguard/reload"
)

// TestStatusHumanStatusText: the unit line shows systemd's StatusText when
// there is one, and no empty quotes when there is none (haproxy sends no
// STATUS= until its first reload, and not at all with Type=forking).
func TestStatusHumanStatusText(t *testing.T) {
	st := reload.Status{Unit: "haproxy.service", ActiveState: "active", SubState: "running", MainPID: 106,
		Generation: 2, Workers: 1, Target: "/etc/haproxy/haproxy.cfg", Errors: []string{}}
	var b bytes.Buffer
	writeStatusHuman(&b, statusDoc{Status: st})
	first, _, _ := strings.Cut(b.String(), "\n")
	if want := "unit:       haproxy.service active/running (main pid 106)"; first != want {
		t.Errorf("unit line %q, want %q", first, want)
	}
	if strings.Contains(b.String(), `""`) {
		t.Errorf("empty quotes in:\n%s", b.String())
	}

	st.StatusText = "Ready."
	b.Reset()
	writeStatusHuman(&b, statusDoc{Status: st})
	first, _, _ = strings.Cut(b.String(), "\n")
	if want := `unit:       haproxy.service active/running (main pid 106), status "Ready."`; first != want {
		t.Errorf("unit line %q, want %q", first, want)
	}

	st.ActiveState, st.SubState, st.StatusText, st.MainPID = "", "", "", 0
	st.Errors = []string{"unit: dial unix /run/dbus/system_bus_socket: connect: no such file or directory"}
	b.Reset()
	writeStatusHuman(&b, statusDoc{Status: st})
	first, _, _ = strings.Cut(b.String(), "\n")
	if want := "unit:       haproxy.service state unknown (see the errors below)"; first != want {
		t.Errorf("unit line %q, want %q", first, want)
	}

	st.Last = &reload.Entry{ID: "20261128T020000.000Z-bbbb", Outcome: reload.OutcomeRefused, Who: "bob",
		Error: "check: haproxy -c refused the config:\n[ALERT] unknown keyword"}
	b.Reset()
	writeStatusHuman(&b, statusDoc{Status: st})
	if want := "last:       20261128T020000.000Z-bbbb refused by bob: check: haproxy -c refused the config: [ALERT] unknown keyword\n"; !strings.Contains(b.String(), want) {
		t.Errorf("status lacks %q:\n%s", want, b.String())
	}
}

// The limits line says when the sweep behind it was unsettled (taken
// during a reload): the generations it counts may be a worker short.
func TestStatusHumanUnsettledGenerations(t *testing.T) {
	st := reload.Status{Unit: "haproxy.service", ActiveState: "active", SubState: "running", MainPID: 106, Errors: []string{}}
	g := generations.Report{Enforce: true, Draining: 3, Over: 1, Generations: []generations.Generation{
		{Generation: 0, State: generations.Draining, PIDs: []int32{110}, Over: []string{generations.OverCount}},
	}, Unsettled: "the master CLI did not answer `show proc`"}
	var b bytes.Buffer
	writeStatusHuman(&b, statusDoc{Status: st, Generations: &g})
	want := "limits:     1 of 3 draining generations over the generations limits (haguard serve escalates them; this sweep is unsettled: the master CLI did not answer `show proc`)\n"
	if !strings.Contains(b.String(), want) {
		t.Errorf("status lacks %q:\n%s", want, b.String())
	}
}
