package procs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/haguard/haguard/agent/netns"
	"github.com/haguard/haguard/agent/sockets"
	"github.com/shirou/gopsutil/v3/process"
	"golang.org/x/sys/unix"
)

// Lister returns the processes whose comm or exe basename is one of names.
// The default is ListProcesses; unit tests hand in a fixed table.
type Lister func(ctx context.Context, names []string) ([]Proc, error)

// maxDepth bounds the walk up the process tree.
const maxDepth = 64

// ListProcesses reads the process table through gopsutil and /proc:
// every PID's comm and exe for the selection, then, for the selected
// processes only, ppid, cmdline, start time, cgroup, ancestors and
// listening sockets (TCP and UDP) and network namespace. Socket tables
// are read once per network namespace per call, not once per process. Zombies and `haproxy -c` checks are
// left out. Processes that exit while being read are skipped.
func ListProcesses(ctx context.Context, names []string) ([]Proc, error) {
	pids, err := process.PidsWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var out []Proc
	for i, pid := range pids {
		if i%256 == 0 && ctx.Err() != nil {
			return nil, fmt.Errorf("list processes: %w", ctx.Err())
		}
		gp := &process.Process{Pid: pid}
		comm, err := gp.NameWithContext(ctx)
		if err != nil {
			continue // gone
		}
		exe, _ := gp.ExeWithContext(ctx) // kernel threads have none
		if !selected(names, comm, exe) {
			continue
		}
		p, ok, err := describe(ctx, gp, names, comm)
		if err != nil {
			if gone(err) || errors.Is(err, errZombie) || errors.Is(err, errReplaced) {
				continue
			}
			return nil, fmt.Errorf("read process %d: %w", pid, err)
		}
		if ok {
			out = append(out, p)
		}
	}
	if err := addListeners(out, sockets.ListeningIn); err != nil {
		return nil, err
	}
	return out, nil
}

// selected matches comm (which the kernel truncates to 15 bytes) or the
// executable's basename against names.
func selected(names []string, comm, exe string) bool {
	base := filepath.Base(strings.TrimSuffix(exe, " (deleted)"))
	for _, n := range names {
		if comm == n || (len(n) > 15 && comm == n[:15]) || (exe != "" && base == n) {
			return true
		}
	}
	return false
}

var errZombie = errors.New("zombie")

// gone reports whether err from reading /proc/PID means the process has
// exited: ENOENT when it was reaped before the open, ESRCH when between
// the open and the read.
func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}

// errReplaced: the PID named another process by the end of describe.
var errReplaced = errors.New("pid reused while it was read")

// describe fills the details of one selected process. ok is false for a
// `haproxy -c` config check, and for a process that is not one of names
// after all: the selection's comm and exe were read before its start time, and the PID
// may have been reused in between. Everything it records is read between
// two reads of the start time that agree, so the start time the kill
// guard checks names the process that was selected and classified.
func describe(ctx context.Context, gp *process.Process, names []string, comm string) (Proc, bool, error) {
	pid := gp.Pid
	st, err := readStat(pid)
	if err != nil {
		return Proc{}, false, err
	}
	if st.state == 'Z' || st.state == 'X' {
		return Proc{}, false, errZombie
	}
	exe, err := gp.ExeWithContext(ctx)
	if err != nil && gone(err) {
		return Proc{}, false, err
	}
	if !selected(names, st.comm, exe) {
		return Proc{}, false, nil
	}
	args, err := gp.CmdlineSliceWithContext(ctx)
	if err != nil {
		return Proc{}, false, err
	}
	// The start time from the stat just read and the kernel's boot clock:
	// gopsutil's CreateTime reads the stat and /proc/stat again for every
	// process (its btime rounded to the second), and probes the host's
	// virtualization (ten files) in every command.
	created := TicksTime(st.start)
	if created.IsZero() {
		ms, err := gp.CreateTimeWithContext(ctx)
		if err != nil {
			return Proc{}, false, err
		}
		created = time.UnixMilli(ms)
	}
	p := Proc{
		PID:        pid,
		PPID:       st.ppid,
		Comm:       comm,
		Exe:        exe,
		Cmdline:    args,
		Created:    created,
		StartTicks: st.start,
	}
	if p.checkMode() {
		return Proc{}, false, nil
	}
	if p.CgroupUnified, p.CgroupSystemd, err = readCgroup(pid); err != nil {
		return Proc{}, false, err
	}
	p.Ancestors = ancestors(st.ppid)
	if again, err := readStat(pid); err != nil {
		return Proc{}, false, err
	} else if again.start != st.start {
		return Proc{}, false, errReplaced
	}
	return p, true, nil
}

// ancestors walks up from ppid (exclusive) to PID 1; a process that vanishes
// mid-walk ends it.
func ancestors(ppid int32) []int32 {
	out := []int32{}
	for cur := ppid; cur > 1 && len(out) < maxDepth; {
		st, err := readStat(cur)
		if err != nil {
			break
		}
		if st.ppid > 0 {
			out = append(out, st.ppid)
		}
		cur = st.ppid
	}
	return out
}

type stat struct {
	comm  string
	state byte
	ppid  int32
	start uint64
}

// readStat reads state, ppid and start time from /proc/PID/stat.
func readStat(pid int32) (stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/stat")
	if err != nil {
		return stat{}, err
	}
	return parseStat(b)
}

// parseStat splits after the last ')': comm (field 2) may hold spaces and
// parentheses.
func parseStat(b []byte) (stat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return stat{}, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return stat{}, errors.New("short /proc stat")
	}
	ppid, err := strconv.ParseInt(f[1], 10, 32)
	if err != nil {
		return stat{}, fmt.Errorf("stat ppid: %w", err)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return stat{}, fmt.Errorf("stat starttime: %w", err)
	}
	comm := ""
	if open := bytes.IndexByte(b, '('); open >= 0 && open < i {
		comm = string(b[open+1 : i])
	}
	return stat{comm: comm, state: f[0][0], ppid: int32(ppid), start: start}, nil
}

// StartTicks returns the start time of pid in clock ticks since boot, and
// whether it is a zombie (dead, not yet reaped).
func StartTicks(pid int32) (start uint64, zombie bool, err error) {
	st, err := readStat(pid)
	if err != nil {
		return 0, false, err
	}
	return st.start, st.state == 'Z' || st.state == 'X', nil
}

// readCgroup returns the unified ("0::") and name=systemd paths of pid.
func readCgroup(pid int32) (unified, systemd string, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/cgroup")
	if err != nil {
		return "", "", err
	}
	unified, systemd = parseCgroup(string(b))
	return unified, systemd, nil
}

// parseCgroup reads /proc/PID/cgroup lines "ID:CONTROLLERS:PATH".
func parseCgroup(text string) (unified, systemd string) {
	for _, line := range strings.Split(text, "\n") {
		id, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		ctrl, path, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		switch {
		case id == "0" && ctrl == "":
			unified = path
		case ctrl == "name=systemd":
			systemd = path
		}
	}
	return unified, systemd
}

// addListeners fills Netns and Listen for every process: the listening
// sockets (TCP and UDP) of each network namespace are read once, then
// each process's fds are matched against them. Our own namespace is
// asked through sock_diag; another one (a process in a container)
// through readIn (sockets.ListeningIn: sock_diag from inside it when
// permitted, else /proc/PID/net without UDP).
func addListeners(ps []Proc, readIn func(pid int32, protos sockets.Proto) (sockets.Table, error)) error {
	const protos = sockets.TCP | sockets.UDP
	own, _ := netns.Own()
	type read struct {
		tab     sockets.Table
		partial string // why the table misses a protocol, "" when whole
	}
	tables := map[netns.ID]read{}
	for i := range ps {
		ns, err := netns.Of(ps[i].PID)
		if err != nil {
			continue // gone, or no permission: no sockets known
		}
		ps[i].Netns = ns
		r, ok := tables[ns]
		if !ok {
			var tab sockets.Table
			if ns == own {
				tab, err = sockets.Listening(protos)
			} else {
				tab, err = readIn(ps[i].PID, protos)
				// A process that exited during the read leaves no
				// /proc/PID/net: its empty table is not the namespace's.
				if now, nerr := netns.Of(ps[i].PID); nerr != nil || now != ns {
					ps[i].Listen, ps[i].ListenErr = []string{}, "exited while its sockets were read"
					continue
				}
			}
			var inc *sockets.IncompleteError
			switch {
			case errors.As(err, &inc):
				r = read{tab: tab, partial: err.Error()}
			case err != nil:
				return err
			default:
				r = read{tab: tab}
			}
			tables[ns] = r
		}
		ps[i].Listen, err = listenAddrs(ps[i].PID, r.tab)
		switch {
		case err != nil:
			ps[i].ListenErr = err.Error()
		case r.partial != "":
			ps[i].ListenErr = r.partial
		}
	}
	return nil
}

// listenAddrs lists the addresses of tab that pid holds open, sorted.
func listenAddrs(pid int32, tab sockets.Table) ([]string, error) {
	out := []string{}
	inodes, err := sockets.Held(pid, tab)
	if err != nil {
		if gone(err) {
			return out, nil // exited meanwhile
		}
		return out, fmt.Errorf("read sockets: %w", err)
	}
	for _, ino := range inodes {
		if addr := tab[ino].String(); !slices.Contains(out, addr) {
			out = append(out, addr)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Child is one child process: enough to tell generations apart without
// the master CLI.
type Child struct {
	PID int32
	// StartTicks is the start time in clock ticks since boot (the newest
	// child has the largest); Started is the same as a time.
	StartTicks uint64
	Started    time.Time
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's start time: 100 on
// every Linux architecture haproxy runs on (sysconf(_SC_CLK_TCK)).
const clockTicks = 100

// bootTime is when the host booted, to the nanosecond: the wall clock
// less CLOCK_BOOTTIME, the clock that /proc/PID/stat's start times count
// on. (/proc/stat's btime is rounded down to the second, which put every
// start time up to a second early.) It is read each time, as the wall
// clock can be set while the daemon runs.
func bootTime() time.Time {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return time.Time{}
	}
	return time.Now().Add(-time.Duration(ts.Nano()))
}

// TicksTime is the wall time of a start time in clock ticks since boot
// (zero when the boot time is unknown).
func TicksTime(ticks uint64) time.Time {
	bt := bootTime()
	if bt.IsZero() {
		return bt
	}
	return bt.Add(time.Duration(ticks) * time.Second / clockTicks)
}

// Children lists the live (not zombie) children of pid, oldest first,
// from /proc/PID/task/*/children: a few small reads, cheap enough to poll
// every few milliseconds while a reload settles.
func Children(pid int32) ([]Child, error) {
	tasks, err := filepath.Glob("/proc/" + strconv.Itoa(int(pid)) + "/task/*/children")
	if err != nil {
		return nil, err
	}
	if len(tasks) == 0 {
		return nil, fmt.Errorf("pid %d: %w", pid, os.ErrNotExist)
	}
	var out []Child
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the task exited meanwhile
		}
		for _, f := range strings.Fields(string(b)) {
			n, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			start, zombie, err := StartTicks(int32(n))
			if err != nil || zombie {
				continue
			}
			out = append(out, Child{PID: int32(n), StartTicks: start, Started: TicksTime(start)})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].StartTicks < out[j].StartTicks || out[i].StartTicks == out[j].StartTicks && out[i].PID < out[j].PID
	})
	return out, nil
}
