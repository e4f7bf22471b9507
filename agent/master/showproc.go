package master

import (
	"bufio"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ShowProc is the master CLI's `show proc`: the master, its current and
// old workers, and its programs. The format is the same from HAProxy 2.0
// to 3.x: HAProxy 3.1 added optional debug columns (`show proc debug`)
// and prints "# programs" only when there are programs; both parse here.
type ShowProc struct {
	Master Proc `json:"master"`
	// Reloads counts the master's reloads since it was started, failed ones
	// included.
	Reloads int `json:"reloads"`
	// FailedReloads counts failed reloads since the last successful one
	// (HAProxy resets it on success), so FailedReloads > 0 means the most
	// recent reload failed and the workers still run an older config.
	FailedReloads int `json:"failed_reloads"`
	// Workers are the current workers; OldWorkers were told to leave
	// (they finish their connections, then exit).
	Workers     []Proc `json:"workers"`
	OldWorkers  []Proc `json:"old_workers"`
	Programs    []Proc `json:"programs,omitempty"`
	OldPrograms []Proc `json:"old_programs,omitempty"`
}

// Proc is one row of `show proc`.
type Proc struct {
	PID int32 `json:"pid"`
	// Type is "master", "worker", or a program's name.
	Type string `json:"type"`
	// Reloads: for the master, its total reloads; for a worker or program,
	// the reloads since it was forked (0 for the newest generation).
	Reloads int           `json:"reloads"`
	Uptime  time.Duration `json:"uptime"`
	Version string        `json:"version"`
	// Generation is the master's reload count when this process was
	// forked: Master.Reloads - Reloads (the master's own is its Reloads).
	Generation int `json:"generation"`
	// Old is set for rows under "# old workers" / "# old programs".
	Old bool `json:"old"`
}

// ErrEmptyOutput means the master answered nothing. HAProxy 2.6 does this
// while it re-executes itself during a reload; ask again shortly.
var ErrEmptyOutput = errors.New("empty answer from the master CLI (is it reloading?)")

// Reexecuting reports whether err is how a master answers while it
// re-executes itself during a reload: 2.6 answers nothing
// (ErrEmptyOutput), and every version refuses or resets connections for
// a moment (measured on 3.0.11: resets, then refusals, for 60-90 ms
// after SIGUSR2 on an idle VM). Such a master is asked again shortly.
func Reexecuting(err error) bool {
	return errors.Is(err, ErrEmptyOutput) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// ParseShowProc parses the text of `show proc` (or `show proc debug`).
func ParseShowProc(text string) (*ShowProc, error) {
	if strings.TrimSpace(text) == "" {
		return nil, ErrEmptyOutput
	}
	sp := &ShowProc{}
	section := ""
	sawMaster := false
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), " \t\r")
		switch {
		case line == "":
			continue
		case strings.HasPrefix(line, "#<PID>"):
			continue
		case strings.HasPrefix(line, "# "):
			section = strings.TrimPrefix(line, "# ")
			switch section {
			case "workers", "old workers", "programs", "old programs":
			default:
				return nil, fmt.Errorf("show proc line %d: unknown section %q", n, section)
			}
			continue
		}
		if !sawMaster {
			m, reloads, failed, err := parseMasterLine(line)
			if err != nil {
				return nil, fmt.Errorf("show proc line %d: %w", n, err)
			}
			sp.Master, sp.Reloads, sp.FailedReloads, sawMaster = m, reloads, failed, true
			continue
		}
		p, err := parseRow(line)
		if err != nil {
			return nil, fmt.Errorf("show proc line %d: %w", n, err)
		}
		p.Generation = sp.Reloads - p.Reloads
		switch section {
		case "workers":
			sp.Workers = append(sp.Workers, p)
		case "old workers":
			p.Old = true
			sp.OldWorkers = append(sp.OldWorkers, p)
		case "programs":
			sp.Programs = append(sp.Programs, p)
		case "old programs":
			p.Old = true
			sp.OldPrograms = append(sp.OldPrograms, p)
		default:
			return nil, fmt.Errorf("show proc line %d: a process row outside any section", n)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("show proc: %w", err)
	}
	if !sawMaster {
		return nil, fmt.Errorf("show proc: no master line in %q", firstLine(text))
	}
	return sp, nil
}

// parseMasterLine reads "PID master N [failed: F] UPTIME VERSION"; the
// "[failed: F]" part is absent before HAProxy 2.0.
func parseMasterLine(line string) (Proc, int, int, error) {
	f := strings.Fields(line)
	if len(f) < 3 || f[1] != "master" {
		return Proc{}, 0, 0, fmt.Errorf("want the master line, got %q", line)
	}
	pid, err := parsePID(f[0])
	if err != nil {
		return Proc{}, 0, 0, err
	}
	reloads, err := strconv.Atoi(f[2])
	if err != nil || reloads < 0 {
		return Proc{}, 0, 0, fmt.Errorf("bad reload count %q", f[2])
	}
	failed := 0
	rest := f[3:]
	if len(rest) >= 2 && rest[0] == "[failed:" {
		failed, err = strconv.Atoi(strings.TrimSuffix(rest[1], "]"))
		if err != nil || failed < 0 || !strings.HasSuffix(rest[1], "]") {
			return Proc{}, 0, 0, fmt.Errorf("bad failed count %q", rest[1])
		}
		rest = rest[2:]
	}
	m := Proc{PID: pid, Type: "master", Reloads: reloads, Generation: reloads}
	if len(rest) > 0 {
		if m.Uptime, err = parseUptime(rest[0]); err != nil {
			return Proc{}, 0, 0, err
		}
	}
	if len(rest) > 1 {
		m.Version = rest[1]
	}
	return m, reloads, failed, nil
}

// parseRow reads "PID TYPE RELOADS UPTIME VERSION [<tab><tab> IPC_FD0 IPC_FD1]".
func parseRow(line string) (Proc, error) {
	if i := strings.Index(line, "\t"); i >= 0 {
		line = line[:i] // 3.1+ `show proc debug` columns
	}
	f := strings.Fields(line)
	if len(f) < 4 {
		return Proc{}, fmt.Errorf("short process row %q", line)
	}
	pid, err := parsePID(f[0])
	if err != nil {
		return Proc{}, err
	}
	reloads, err := strconv.Atoi(f[2])
	if err != nil || reloads < 0 {
		return Proc{}, fmt.Errorf("bad reload count %q", f[2])
	}
	up, err := parseUptime(f[3])
	if err != nil {
		return Proc{}, err
	}
	p := Proc{PID: pid, Type: f[1], Reloads: reloads, Uptime: up}
	if len(f) > 4 && f[4] != "-" {
		p.Version = f[4]
	}
	return p, nil
}

func parsePID(s string) (int32, error) {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad pid %q", s)
	}
	return int32(n), nil
}

// parseUptime reads HAProxy's "%dd%02dh%02dm%02ds".
func parseUptime(s string) (time.Duration, error) {
	var d, h, m, sec int
	if n, err := fmt.Sscanf(s, "%dd%dh%dm%ds", &d, &h, &m, &sec); err != nil || n != 4 {
		return 0, fmt.Errorf("bad uptime %q", s)
	}
	return time.Duration(d)*24*time.Hour + time.Duration(h)*time.Hour +
		time.Duration(m)*time.Minute + time.Duration(sec)*time.Second, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

// Find returns the row of pid: the master, a worker or a program.
func (s *ShowProc) Find(pid int32) (Proc, bool) {
	if s.Master.PID == pid {
		return s.Master, true
	}
	for _, list := range [][]Proc{s.Workers, s.OldWorkers, s.Programs, s.OldPrograms} {
		for _, p := range list {
			if p.PID == pid {
				return p, true
			}
		}
	}
	return Proc{}, false
}

// LastReloadFailed reports whether the most recent reload failed, so the
// workers still run the configuration of an earlier generation.
func (s *ShowProc) LastReloadFailed() bool { return s.FailedReloads > 0 }

// ReloadInProgress returns a worker that shows the master between a
// reload and its new worker: listed as current, yet of a generation
// before the master's reload counter, with no failed reload to explain
// it (2.6 reloads asynchronously, and `show proc` counts the reload
// before the new worker is forked). After a failed reload the same
// listing is settled: the workers before it keep serving.
func (s *ShowProc) ReloadInProgress() (Proc, bool) {
	if s.LastReloadFailed() {
		return Proc{}, false
	}
	for _, w := range s.Workers {
		if w.Generation != s.Reloads {
			return w, true
		}
	}
	return Proc{}, false
}
