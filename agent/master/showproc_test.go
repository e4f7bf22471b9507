package master

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type row struct {
	pid     int32
	typ     string
	reloads int
	gen     int
}

func rows(ps []Proc) []row {
	var out []row
	for _, p := range ps {
		out = append(out, row{p.PID, p.Type, p.Reloads, p.Generation})
	}
	return out
}

func sameRows(t *testing.T, what string, got []Proc, want []row) {
	t.Helper()
	g := rows(got)
	if len(g) != len(want) {
		t.Fatalf("%s: got %v, want %v", what, g, want)
	}
	for i := range g {
		if g[i] != want[i] {
			t.Fatalf("%s[%d]: got %+v, want %+v", what, i, g[i], want[i])
		}
	}
}

func TestParseShowProcCaptures(t *testing.T) {
	for _, tc := range []struct {
		file            string
		masterPID       int32
		reloads, failed int
		version         string
		uptime          time.Duration
		workers, old    []row
		programs, oldPr []row
	}{
		{
			file: "2.6-two-old-workers.txt", masterPID: 10280, reloads: 6, failed: 0,
			version: "2.6.12-1+deb12u4", uptime: 3*time.Minute + 7*time.Second,
			workers: []row{{18771, "worker", 0, 6}},
			old:     []row{{18628, "worker", 1, 5}, {18457, "worker", 2, 4}},
		},
		{
			file: "2.6-fresh.txt", masterPID: 25310, reloads: 0, failed: 0,
			version: "2.6.12-1+deb12u4", uptime: time.Second,
			workers: []row{{25314, "worker", 0, 0}},
		},
		{
			file: "2.6-old-worker.txt", masterPID: 25310, reloads: 1, failed: 0,
			version: "2.6.12-1+deb12u4", uptime: 4 * time.Second,
			workers: []row{{25453, "worker", 0, 1}},
			old:     []row{{25314, "worker", 1, 0}},
		},
		{
			// The reload failed: the worker under "# workers" is still the
			// one of generation 1, while the master counts 2 reloads.
			file: "2.6-failed-reload.txt", masterPID: 25310, reloads: 2, failed: 1,
			version: "2.6.12-1+deb12u4", uptime: 6 * time.Second,
			workers: []row{{25453, "worker", 1, 1}},
			old:     []row{{25314, "worker", 2, 0}},
		},
		{
			// A successful reload resets the failed count.
			file: "2.6-failed-then-ok.txt", masterPID: 25310, reloads: 3, failed: 0,
			version: "2.6.12-1+deb12u4", uptime: 8 * time.Second,
			workers: []row{{25719, "worker", 0, 3}},
			old:     []row{{25453, "worker", 2, 1}, {25314, "worker", 3, 0}},
		},
		{
			file: "2.6-program.txt", masterPID: 10280, reloads: 8, failed: 0,
			version: "2.6.12-1+deb12u4", uptime: 3*time.Minute + 17*time.Second,
			workers:  []row{{18882, "worker", 0, 8}},
			old:      []row{{18628, "worker", 3, 5}, {18457, "worker", 4, 4}},
			programs: []row{{18881, "p1", 0, 8}},
		},
		// Captured from 2.8.0, 3.0.0 and 3.2.0 built from haproxy's tags
		// (testdata/README.md). 2.8 and 3.0 print "# programs" even when
		// there is none.
		{
			file: "2.8.0-fresh.txt", masterPID: 21490, reloads: 0, failed: 0,
			version: "2.8.0", uptime: time.Second,
			workers: []row{{21496, "worker", 0, 0}},
		},
		{
			file: "2.8.0-program.txt", masterPID: 22419, reloads: 1, failed: 0,
			version: "2.8.0", uptime: 3 * time.Second,
			workers:  []row{{22533, "worker", 0, 1}},
			old:      []row{{22424, "worker", 1, 0}},
			programs: []row{{22532, "sleeper", 0, 1}},
		},
		{
			file: "3.0.0-fresh.txt", masterPID: 22851, reloads: 0, failed: 0,
			version: "3.0.0", uptime: time.Second,
			workers: []row{{22856, "worker", 0, 0}},
		},
		{
			file: "3.0.0-old-worker.txt", masterPID: 22851, reloads: 1, failed: 0,
			version: "3.0.0", uptime: 3 * time.Second,
			workers: []row{{22945, "worker", 0, 1}},
			old:     []row{{22856, "worker", 1, 0}},
		},
		{
			// As in 2.6: the worker still serving stays under "# workers".
			file: "3.0.0-failed-reload.txt", masterPID: 22851, reloads: 2, failed: 1,
			version: "3.0.0", uptime: 6 * time.Second,
			workers: []row{{22945, "worker", 1, 1}},
			old:     []row{{22856, "worker", 2, 0}},
		},
		{
			file: "3.0.0-failed-then-ok.txt", masterPID: 22851, reloads: 3, failed: 0,
			version: "3.0.0", uptime: 7 * time.Second,
			workers: []row{{22966, "worker", 0, 3}},
			old:     []row{{22856, "worker", 3, 0}},
		},
		{
			file: "3.2.0-fresh.txt", masterPID: 21674, reloads: 0, failed: 0,
			version: "3.2.0", uptime: time.Second,
			workers: []row{{21681, "worker", 0, 0}},
		},
		{
			file: "3.2.0-old-worker.txt", masterPID: 21674, reloads: 1, failed: 0,
			version: "3.2.0", uptime: 2 * time.Second,
			workers: []row{{21767, "worker", 0, 1}},
			old:     []row{{21681, "worker", 1, 0}},
		},
		{
			// 3.1+: after a failed reload no current worker is listed; the
			// one still serving (generation 1) is under "# old workers".
			file: "3.2.0-failed-reload.txt", masterPID: 21674, reloads: 2, failed: 1,
			version: "3.2.0", uptime: 5 * time.Second,
			old: []row{{21681, "worker", 2, 0}, {21767, "worker", 1, 1}},
		},
		{
			file: "3.2.0-failed-then-ok.txt", masterPID: 21674, reloads: 3, failed: 0,
			version: "3.2.0", uptime: 6 * time.Second,
			workers: []row{{21787, "worker", 0, 3}},
			old:     []row{{21681, "worker", 3, 0}},
		},
		{
			// `show proc debug`: the ipc_fd columns after two tabs.
			file: "3.2.0-debug.txt", masterPID: 21674, reloads: 3, failed: 0,
			version: "3.2.0", uptime: 6 * time.Second,
			workers: []row{{21787, "worker", 0, 3}},
			old:     []row{{21681, "worker", 3, 0}},
		},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			sp, err := ParseShowProc(string(b))
			if err != nil {
				t.Fatal(err)
			}
			if sp.Master.PID != tc.masterPID || sp.Master.Type != "master" || sp.Reloads != tc.reloads ||
				sp.FailedReloads != tc.failed || sp.Master.Version != tc.version || sp.Master.Uptime != tc.uptime ||
				sp.Master.Generation != tc.reloads {
				t.Fatalf("master: got %+v reloads=%d failed=%d", sp.Master, sp.Reloads, sp.FailedReloads)
			}
			if sp.LastReloadFailed() != (tc.failed > 0) {
				t.Fatal("LastReloadFailed")
			}
			sameRows(t, "workers", sp.Workers, tc.workers)
			sameRows(t, "old workers", sp.OldWorkers, tc.old)
			sameRows(t, "programs", sp.Programs, tc.programs)
			sameRows(t, "old programs", sp.OldPrograms, tc.oldPr)
			for _, w := range sp.OldWorkers {
				if !w.Old {
					t.Fatalf("old worker %d not marked Old", w.PID)
				}
				if got, ok := sp.Find(w.PID); !ok || got != w {
					t.Fatalf("Find(%d) = %+v, %v", w.PID, got, ok)
				}
			}
			for _, w := range sp.Workers {
				if w.Old || w.Version != tc.version {
					t.Fatalf("worker %+v", w)
				}
			}
			if _, ok := sp.Find(1); ok {
				t.Fatal("Find(1) found a row")
			}
		})
	}
}

func TestParseShowProcErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string
	}{
		{"empty", "", "empty answer"},
		{"blank", "\n\n", "empty answer"},
		{"no master", "#<PID> <type>\n# workers\n", "no master line"},
		{"unknown section", "1 master 0 [failed: 0] 0d00h00m01s 2.6\n# zombies\n", `unknown section "zombies"`},
		{"bad pid", "x master 0 [failed: 0] 0d00h00m01s 2.6\n", `bad pid "x"`},
		{"worker first", "12 worker 0 0d00h00m01s 2.6\n", "want the master line"},
		{"bad reloads", "1 master many [failed: 0] 0d00h00m01s 2.6\n", "bad reload count"},
		{"bad failed", "1 master 0 [failed: x] 0d00h00m01s 2.6\n", "bad failed count"},
		{"bad uptime", "1 master 0 [failed: 0] yesterday 2.6\n", "bad uptime"},
		{"row outside section", "1 master 0 [failed: 0] 0d00h00m01s 2.6\n2 worker 0 0d00h00m01s 2.6\n", "outside any section"},
		{"short row", "1 master 0 [failed: 0] 0d00h00m01s 2.6\n# workers\n2 worker 0\n", "short process row"},
		{"negative pid", "1 master 0 [failed: 0] 0d00h00m01s 2.6\n# workers\n-2 worker 0 0d00h00m01s 2.6\n", "bad pid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseShowProc(tc.text)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := ParseShowProc(""); !errors.Is(err, ErrEmptyOutput) {
		t.Fatalf("empty: %v is not ErrEmptyOutput", err)
	}
}

// Before 2.0 the master line had no "[failed: N]".
func TestParseShowProcWithoutFailed(t *testing.T) {
	sp, err := ParseShowProc("#<PID> <type> <relative PID> <reloads> <uptime>\n1234 master 2 0d00h01m00s\n# workers\n1300 worker 0 0d00h00m10s\n")
	if err != nil {
		t.Fatal(err)
	}
	if sp.Reloads != 2 || sp.FailedReloads != 0 || len(sp.Workers) != 1 || sp.Workers[0].Generation != 2 {
		t.Fatalf("%+v", sp)
	}
}

func FuzzParseShowProc(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.txt")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, text string) {
		sp, err := ParseShowProc(text)
		if err != nil {
			return
		}
		if sp.Master.PID <= 0 || sp.Reloads < 0 || sp.FailedReloads < 0 {
			t.Fatalf("accepted an impossible master: %+v", sp)
		}
		for _, w := range append(sp.Workers, sp.OldWorkers...) {
			if w.PID <= 0 || w.Generation != sp.Reloads-w.Reloads {
				t.Fatalf("bad row %+v", w)
			}
		}
	})
}
