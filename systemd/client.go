// Package systemd is haguard's concrete client for systemd: reload or
// restart a unit over D-Bus and wait for the job's result, read the unit
// properties the ghost sweep and the reload transaction need, and speak
// sd_notify for haguard's own daemon.
//
// It wraps go-systemd's *dbus.Conn. Callers declare the small interfaces
// they need (for example `Reload(ctx, unit) error`) on their side.
package systemd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"

	"github.com/haguard/haguard/internal/async"
)

// JobError is a systemd job that finished with a result other than "done":
// canceled, timeout, failed, dependency, skipped (or "" if the bus went away).
type JobError struct {
	Unit   string
	Job    string // "reload" or "restart"
	Result string
}

func (e *JobError) Error() string {
	return fmt.Sprintf("%s %s: job result %q", e.Job, e.Unit, e.Result)
}

// ErrUnitNotFound is returned by Unit when systemd has no unit of that name.
var ErrUnitNotFound = errors.New("unit not found")

// Unit is the state of one service unit as systemd sees it.
type Unit struct {
	Name        string `json:"name"`
	LoadState   string `json:"load_state"`
	ActiveState string `json:"active_state"`
	SubState    string `json:"sub_state"`
	// MainPID is the service's main process (haproxy's master); 0 when none.
	MainPID int32 `json:"main_pid"`
	// ControlPID runs ExecReload/ExecStartPre and similar; 0 when none.
	ControlPID int32 `json:"control_pid"`
	// ControlGroup is the unit's cgroup path as systemd names it,
	// for example "/system.slice/haproxy.service".
	ControlGroup string `json:"control_group"`
	// ExecMainStartTimestamp is when the main process was started; zero
	// when it never was.
	ExecMainStartTimestamp time.Time `json:"exec_main_start"`
	StatusText             string    `json:"status_text"`

	// What the service runs, as the unit file (and its drop-ins) says:
	// FragmentPath is the unit file; ExecStart and ExecReload are the
	// command lines before systemd expands $VARIABLES (from Environment
	// and the EnvironmentFiles) at exec; WorkingDirectory is "" for the
	// default (/). Empty for units other than services.
	FragmentPath     string    `json:"fragment_path"`
	DropInPaths      []string  `json:"drop_in_paths,omitempty"`
	Type             string    `json:"type,omitempty"`
	ExecStart        []Exec    `json:"exec_start,omitempty"`
	ExecReload       []Exec    `json:"exec_reload,omitempty"`
	Environment      []string  `json:"environment,omitempty"`
	EnvironmentFiles []EnvFile `json:"environment_files,omitempty"`
	WorkingDirectory string    `json:"working_directory,omitempty"`
}

// Exec is one ExecStart= or ExecReload= command line as systemd holds it:
// the program and its argv (argv[0] included), unexpanded.
type Exec struct {
	Path string   `json:"path"`
	Argv []string `json:"argv"`
}

// EnvFile is one EnvironmentFile= line; Optional is the "-" prefix (a
// missing file is not an error).
type EnvFile struct {
	Path     string `json:"path"`
	Optional bool   `json:"optional"`
}

// Client talks to systemd over one D-Bus connection. It is safe for
// concurrent use. Close it when done.
type Client struct {
	conn *sddbus.Conn
}

// Dial connects to systemd. An empty address means the system bus
// (/run/dbus/system_bus_socket, or $DBUS_SYSTEM_BUS_ADDRESS); otherwise
// address is a D-Bus address such as "unix:path=/proc/123/root/run/dbus/system_bus_socket".
func Dial(ctx context.Context, address string) (*Client, error) {
	dial := func() (*dbus.Conn, error) { return authHello(dbus.Dial(address, dbus.WithContext(ctx))) }
	where := "bus " + address
	if address == "" {
		dial = func() (*dbus.Conn, error) { return authHello(dbus.SystemBusPrivate(dbus.WithContext(ctx))) }
		where = "the system bus"
	}
	next, closeRest := dialTwo(dial)
	conn, err := sddbus.NewConnection(next)
	if err != nil {
		closeRest()
		return nil, fmt.Errorf("connect to %s: %w", where, err)
	}
	return &Client{conn: conn}, nil
}

// dialTwo dials two connections at once. go-systemd's NewConnection asks
// for two (one for calls, one for job signals), one after the other, and
// each costs a connect, an auth and a Hello: dialed side by side they
// cost one. next hands them out; closeRest closes those next did not
// hand out (NewConnection failed before taking both).
func dialTwo(dial func() (*dbus.Conn, error)) (next func() (*dbus.Conn, error), closeRest func()) {
	type dialed struct {
		conn *dbus.Conn
		err  error
	}
	var tasks [2]*async.Task[dialed]
	for i := range tasks {
		tasks[i] = async.Go(func() dialed {
			c, err := dial()
			return dialed{c, err}
		})
	}
	taken := 0
	next = func() (*dbus.Conn, error) {
		d := tasks[taken].Wait()
		taken++
		return d.conn, d.err
	}
	closeRest = func() {
		for ; taken < len(tasks); taken++ {
			if d := tasks[taken].Wait(); d.conn != nil {
				d.conn.Close()
			}
		}
	}
	return next, closeRest
}

// authHello authenticates a private connection with EXTERNAL as our uid
// and says Hello, as go-systemd's own dialers do.
func authHello(conn *dbus.Conn, err error) (*dbus.Conn, error) {
	if err != nil {
		return nil, err
	}
	if err := conn.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("auth: %w", err)
	}
	if err := conn.Hello(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("hello: %w", err)
	}
	return conn, nil
}

// Close closes the connection.
func (c *Client) Close() { c.conn.Close() }

// Reload queues a reload job for unit (mode "replace") and waits for its
// result. A result other than "done" is a *JobError.
func (c *Client) Reload(ctx context.Context, unit string) error {
	return waitJob(ctx, unit, "reload", func(ch chan<- string) (int, error) {
		return c.conn.ReloadUnitContext(ctx, unit, "replace", ch)
	})
}

// Restart queues a restart job for unit and waits for its result, like Reload.
func (c *Client) Restart(ctx context.Context, unit string) error {
	return waitJob(ctx, unit, "restart", func(ch chan<- string) (int, error) {
		return c.conn.RestartUnitContext(ctx, unit, "replace", ch)
	})
}

// waitJob starts a job and waits for its result. The result channel is
// buffered to one, so go-systemd's dispatcher never blocks on it even when
// we stop waiting because ctx ended: an undrained, unbuffered channel
// would stall every later job on the connection.
func waitJob(ctx context.Context, unit, job string, start func(ch chan<- string) (int, error)) error {
	ch := make(chan string, 1)
	if _, err := start(ch); err != nil {
		return fmt.Errorf("%s %s: %w", job, unit, err)
	}
	select {
	case res := <-ch:
		if res != "done" {
			return &JobError{Unit: unit, Job: job, Result: res}
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s %s: waiting for the job: %w", job, unit, ctx.Err())
	}
}

// Unit reads the properties of unit. It returns ErrUnitNotFound (wrapped)
// when systemd does not know the unit.
func (c *Client) Unit(ctx context.Context, unit string) (Unit, error) {
	iface := "Service"
	if i := strings.LastIndexByte(unit, '.'); i >= 0 && unit[i+1:] != "service" {
		// Scopes and others carry ControlGroup too; only services have
		// MainPID/ControlPID/ExecMain*.
		iface = strings.ToUpper(unit[i+1:i+2]) + unit[i+2:]
	}
	// The two reads are independent round trips to systemd: asked at
	// once, a unit costs one instead of two (docs/benchmarks.md, reload).
	type props struct {
		m   map[string]any
		err error
	}
	typed := async.Go(func() props {
		m, err := c.conn.GetUnitTypePropertiesContext(ctx, unit, iface)
		return props{m, err}
	})
	up, err := c.conn.GetUnitPropertiesContext(ctx, unit)
	tp := typed.Wait()
	if err != nil {
		return Unit{}, fmt.Errorf("read unit %s: %w", unit, err)
	}
	u := Unit{
		Name:         unit,
		LoadState:    str(up["LoadState"]),
		ActiveState:  str(up["ActiveState"]),
		SubState:     str(up["SubState"]),
		FragmentPath: str(up["FragmentPath"]),
		DropInPaths:  strs(up["DropInPaths"]),
	}
	if u.LoadState == "not-found" {
		return u, fmt.Errorf("read unit %s: %w", unit, ErrUnitNotFound)
	}
	sp, err := tp.m, tp.err
	if err != nil {
		return u, fmt.Errorf("read unit %s (%s properties): %w", unit, iface, err)
	}
	u.MainPID = int32(num(sp["MainPID"]))
	u.ControlPID = int32(num(sp["ControlPID"]))
	u.ControlGroup = str(sp["ControlGroup"])
	u.StatusText = str(sp["StatusText"])
	if us := num(sp["ExecMainStartTimestamp"]); us > 0 {
		u.ExecMainStartTimestamp = time.UnixMicro(int64(us))
	}
	u.Type = str(sp["Type"])
	u.ExecStart = execs(sp["ExecStart"])
	u.ExecReload = execs(sp["ExecReload"])
	u.Environment = strs(sp["Environment"])
	u.WorkingDirectory = str(sp["WorkingDirectory"])
	if efs, ok := sp["EnvironmentFiles"].([][]any); ok {
		for _, ef := range efs {
			if len(ef) == 2 {
				opt, _ := ef[1].(bool)
				u.EnvironmentFiles = append(u.EnvironmentFiles, EnvFile{Path: str(ef[0]), Optional: opt})
			}
		}
	}
	return u, nil
}

// State reads the unit's state alone: LoadState, ActiveState, SubState,
// and for a service its MainPID, ControlPID, ControlGroup and StatusText;
// the rest of Unit is left empty. It is what a reload asks between its
// stages (is the unit reloading, did its status move, which processes are
// the unit's) at a fraction of Unit's cost: a few small answers asked at
// once instead of every property of the unit (BenchmarkState against
// BenchmarkStatusUnit, docs/benchmarks.md).
func (c *Client) State(ctx context.Context, unit string) (Unit, error) {
	if !strings.HasSuffix(unit, ".service") {
		return c.Unit(ctx, unit)
	}
	get := func(iface, name string) *async.Task[propRead] {
		return async.Go(func() propRead {
			p, err := c.conn.GetUnitTypePropertyContext(ctx, unit, iface, name)
			if err != nil {
				return propRead{err: err}
			}
			return propRead{v: p.Value.Value()}
		})
	}
	pid, cpid, cg, text := get("Service", "MainPID"), get("Service", "ControlPID"), get("Service", "ControlGroup"), get("Service", "StatusText")
	u, err := c.states(ctx, unit, get)
	p, cp, g, t := pid.Wait(), cpid.Wait(), cg.Wait(), text.Wait()
	if err != nil {
		return u, err
	}
	if err := errors.Join(p.err, cp.err, g.err, t.err); err != nil {
		return u, fmt.Errorf("read unit %s (Service properties): %w", unit, err)
	}
	u.MainPID, u.ControlPID = int32(num(p.v)), int32(num(cp.v))
	u.ControlGroup, u.StatusText = str(g.v), str(t.v)
	return u, nil
}

// propRead is one property read, or why it could not be.
type propRead struct {
	v   any
	err error
}

// states reads the unit's load, active and sub states in one answer
// (ListUnitsByNames), or, from a systemd older than 230 that lacks it
// (RHEL 7's 219), as three properties.
func (c *Client) states(ctx context.Context, unit string, get func(iface, name string) *async.Task[propRead]) (Unit, error) {
	u := Unit{Name: unit}
	st, err := c.conn.ListUnitsByNamesContext(ctx, []string{unit})
	var de dbus.Error
	switch {
	case errors.As(err, &de) && de.Name == "org.freedesktop.DBus.Error.UnknownMethod":
		load, active, sub := get("Unit", "LoadState"), get("Unit", "ActiveState"), get("Unit", "SubState")
		l, a, su := load.Wait(), active.Wait(), sub.Wait()
		if err := errors.Join(l.err, a.err, su.err); err != nil {
			return Unit{}, fmt.Errorf("read unit %s: %w", unit, err)
		}
		u.LoadState, u.ActiveState, u.SubState = str(l.v), str(a.v), str(su.v)
	case err != nil:
		return Unit{}, fmt.Errorf("read unit %s: %w", unit, err)
	case len(st) != 1:
		return Unit{}, fmt.Errorf("read unit %s: systemd answered %d units", unit, len(st))
	default:
		u.LoadState, u.ActiveState, u.SubState = st[0].LoadState, st[0].ActiveState, st[0].SubState
	}
	if u.LoadState == "not-found" {
		return u, fmt.Errorf("read unit %s: %w", unit, ErrUnitNotFound)
	}
	return u, nil
}

func strs(v any) []string {
	s, _ := v.([]string)
	return s
}

// execs reads an a(sasbttttuii) property: (path, argv, ignore-failure,
// timestamps, pid, code, status) per command line.
func execs(v any) []Exec {
	rows, ok := v.([][]any)
	if !ok {
		return nil
	}
	var out []Exec
	for _, r := range rows {
		if len(r) >= 2 {
			out = append(out, Exec{Path: str(r[0]), Argv: strs(r[1])})
		}
	}
	return out
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// num reads the unsigned integer types D-Bus properties come in.
func num(v any) uint64 {
	switch n := v.(type) {
	case uint32:
		return uint64(n)
	case uint64:
		return n
	case int32:
		return uint64(max(n, 0))
	case int64:
		return uint64(max(n, 0))
	}
	return 0
}

// Units resolves unit names and glob patterns ("haproxy@*.service") to
// the names of the units systemd has loaded that match, in order, each
// once. A name without glob characters is kept as it is.
func (c *Client) Units(ctx context.Context, patterns []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	for _, p := range patterns {
		if !strings.ContainsAny(p, "*?[") {
			add(p)
			continue
		}
		us, err := c.conn.ListUnitsByPatternsContext(ctx, nil, []string{p})
		if err != nil {
			return nil, fmt.Errorf("list units %s: %w", p, err)
		}
		var names []string
		for _, u := range us {
			if u.LoadState != "not-found" {
				names = append(names, u.Name)
			}
		}
		sort.Strings(names)
		for _, n := range names {
			add(n)
		}
	}
	return out, nil
}

// Transient describes a service systemd runs on haguard's behalf, outside
// the caller's session: it survives the terminal that started it.
type Transient struct {
	// Name is the unit name (must end in .service).
	Name        string
	Description string
	// Argv is the command line; Argv[0] an absolute path.
	Argv []string
	// RuntimeMax stops the service if it runs longer (0: no limit).
	RuntimeMax time.Duration
}

// StartTransient starts t as a transient service and waits for the start
// job. The unit is garbage-collected once it ends, failed or not.
func (c *Client) StartTransient(ctx context.Context, t Transient) error {
	if !strings.HasSuffix(t.Name, ".service") || len(t.Argv) == 0 || !strings.HasPrefix(t.Argv[0], "/") {
		return fmt.Errorf("transient unit %q: want a .service name and an absolute command", t.Name)
	}
	props := []sddbus.Property{
		sddbus.PropDescription(t.Description),
		sddbus.PropExecStart(t.Argv, true),
		sddbus.PropType("exec"),
		{Name: "CollectMode", Value: dbus.MakeVariant("inactive-or-failed")},
	}
	if t.RuntimeMax > 0 {
		props = append(props, sddbus.Property{Name: "RuntimeMaxUSec", Value: dbus.MakeVariant(uint64(t.RuntimeMax / time.Microsecond))})
	}
	return waitJob(ctx, t.Name, "start", func(ch chan<- string) (int, error) {
		return c.conn.StartTransientUnitContext(ctx, t.Name, "fail", props, ch)
	})
}
