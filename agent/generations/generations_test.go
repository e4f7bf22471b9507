package generations

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/haguard/haguard/agent/procs"
)

var t0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

// table: master 1, three draining generations (1, 2, 3) and the current (4).
func table() procs.Report {
	p := func(pid int32, class procs.Class, gen int, ago time.Duration) procs.Process {
		return procs.Process{PID: pid, Class: class, Generation: gen, Created: t0.Add(-ago), StartTicks: uint64(pid)}
	}
	return procs.Report{MasterPID: 1, Processes: []procs.Process{
		p(1, procs.Current, 0, 10*time.Hour),
		p(40, procs.Current, 4, time.Minute),
		p(30, procs.Draining, 3, time.Hour),
		p(10, procs.Draining, 1, 3*time.Hour),
		p(20, procs.Draining, 2, 2*time.Hour),
	}}
}

func rss(pid int32) (int64, error) { return int64(pid) << 20, nil }

func TestAssessCountAgeRSS(t *testing.T) {
	r := Assess(table(), rss, t0, Limits{MaxDraining: 2, MaxAge: 150 * time.Minute, MaxTotalRSS: 50 << 20}, false)
	var got []string
	for _, g := range r.Generations {
		got = append(got, g.State+":"+strings.Join(g.Over, "+"))
	}
	want := []string{"draining:count+age+total_rss", "draining:", "draining:", "current:"}
	if !slices.Equal(got, want) {
		t.Fatalf("generations = %v, want %v", got, want)
	}
	if r.Draining != 3 || r.Over != 1 || r.TotalRSSBytes != 60<<20 {
		t.Fatalf("report = %+v", r)
	}
	if o, _ := r.Oldest(); o.Generation != 1 || o.AgeSeconds != 3*3600 {
		t.Fatalf("oldest = %+v", o)
	}
	if len(Assess(table(), rss, t0, Limits{}, false).Exceeded()) != 0 {
		t.Fatal("no limits, yet a generation is over")
	}
}

const sessOut = `0x557db3cade80: proto=tcpv4 src=127.0.0.1:51736 fe=echo be=echo srv=s1 ts=00 epoch=0 age=8s calls=3 rate=0 cpu=0 lat=0 rq[f=848000h,i=0,an=00h,rx=59m51s,wx=,ax=] rp[f=80048000h,i=0,an=00h,rx=59m51s,wx=,ax=] scf=[8,0h,fd=13] scb=[8,1h,fd=14] exp=59m51s rc=0 c_exp=
0x7ff7e0039e60: proto=sockpair src=unix:2 fe=GLOBAL be=<NONE> srv=<none> ts=00 epoch=0 age=0s calls=1 rate=0 cpu=0 lat=0 rq[f=c08000h,i=0,an=00h,rx=,wx=,ax=] rp[f=80008002h,i=0,an=00h,rx=,wx=,ax=] scf=[8,200h,fd=7] scb=[8,1h,fd=-1] exp= rc=0 c_exp=
`

func TestParseShowSess(t *testing.T) {
	ss := ParseShowSess(sessOut)
	if len(ss) != 1 || ss[0].ID != "0x557db3cade80" || ss[0].Calls != "3" || ss[0].Holder() != "127.0.0.1:51736 -> echo/s1 (age 8s)" {
		t.Fatalf("sessions = %+v", ss)
	}
}

type fakeCLI struct {
	mu    sync.Mutex
	cmds  []string
	out   string
	looks int
	// fail, when set, is the answer to the next command (then cleared).
	fail func() (string, error)
}

func (f *fakeCLI) Command(_ context.Context, cmd string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, cmd)
	if fail := f.fail; fail != nil {
		f.fail = nil
		return fail()
	}
	if strings.HasSuffix(cmd, "show sess") {
		// A minute passes between looks (the grace), and the session
		// stays idle: its read deadline counts down.
		f.looks++
		return strings.ReplaceAll(f.out, "rx=59m51s", "rx="+strconv.Itoa(60-f.looks)+"m51s"), nil
	}
	return "", nil
}

func TestEscalateStepsOldestOnlyAfterGrace(t *testing.T) {
	cli := &fakeCLI{out: sessOut}
	var steps []Step
	var sigs []string
	e := NewEscalator(cli, Grace{Sessions: time.Minute, SoftStop: time.Minute, Terminate: time.Minute}, nil, func(s Step) { steps = append(steps, s) })
	e.signal = func(pid int32, _ uint64, sig syscall.Signal) error {
		sigs = append(sigs, sig.String()+":"+string(rune('0'+pid/10)))
		return nil
	}
	now := t0
	e.now = func() time.Time { return now }
	run := func() Report {
		r := Assess(table(), rss, t0, Limits{MaxDraining: 2}, true)
		e.Escalate(context.Background(), 1, &r)
		return r
	}
	r := run()
	if r.Generations[0].Escalation == nil || r.Generations[0].Escalation.Step != StepReport || r.Generations[1].Escalation != nil {
		t.Fatalf("after the first sweep: %+v", r.Generations)
	}
	run() // inside the grace: nothing
	if len(steps) != 1 {
		t.Fatalf("a step ran inside the grace: %+v", steps)
	}
	for _, d := range []time.Duration{time.Minute, time.Minute, time.Minute, time.Minute} {
		now = now.Add(d)
		run()
	}
	var names []string
	for _, s := range steps {
		names = append(names, s.Step)
		if s.Generation != 1 {
			t.Fatalf("generation %d escalated; only 1 is over", s.Generation)
		}
	}
	if !slices.Equal(names, Steps) || steps[1].Closed != 1 {
		t.Fatalf("steps = %v (closed %d), want %v with the idle session closed", names, steps[1].Closed, Steps)
	}
	if !slices.Equal(sigs, []string{"user defined signal 1:1", "terminated:1"}) {
		t.Fatalf("signals = %v", sigs)
	}
	if !slices.Contains(cli.cmds, "@!10 shutdown session 0x557db3cade80") {
		t.Fatalf("commands = %v", cli.cmds)
	}
	for _, c := range cli.cmds {
		if !strings.HasPrefix(c, "@!10 ") {
			t.Fatalf("a command went to another process than the oldest generation's: %q", c)
		}
	}
}

// Measured on haproxy 2.6: in TCP mode a busy session keeps calls=3 (the
// stream is not woken to forward), but its read deadline keeps being
// pushed back; an idle one's counts down.
func TestIdleByReadDeadline(t *testing.T) {
	line := func(rx string) Session {
		return ParseShowSess("0x1: proto=tcpv4 src=127.0.0.1:1 fe=f be=b srv=s calls=3 rq[f=848000h,i=0,an=00h,rx=" + rx + ",wx=,ax=] rp[f=80048000h,i=0,an=00h,rx=" + rx + ",wx=,ax=] exp=\n")[0]
	}
	a, b := t0, t0.Add(2*time.Second)
	idle := func(s, prev Session, rtt time.Duration) bool {
		ok, why := s.idleSince(prev, a, b, rtt)
		if ok != (why == "") {
			t.Errorf("idle %v, why %q", ok, why)
		}
		return ok
	}
	if s := line("59m40s"); s.ReqRead != 59*time.Minute+40*time.Second {
		t.Fatalf("rx parsed as %v", s.ReqRead)
	}
	if !idle(line("59m38s"), line("59m40s"), 0) {
		t.Error("a session whose deadline did not move is not idle")
	}
	if idle(line("59m59s"), line("59m59s"), 0) {
		t.Error("a session whose deadline moved 2s later is idle")
	}
	// haproxy 3.0 keeps the read timeouts on the stream connectors
	// (measured with 3.0.11: rq[]/rp[] have no rx= there).
	line30 := func(rex string) Session {
		return ParseShowSess("0x2: proto=tcpv4 src=127.0.0.1:2 fe=fe be=be srv=s1 ts=00 epoch=0 age=2s calls=2 rate=0 cpu=0 lat=0 rq[f=848101h,i=0,an=00h,ax=] rp[f=80048101h,i=0,an=00h,ax=] scf=[8,0h,fd=13,rex=" + rex + ",wex=] scb=[8,1h,fd=14,rex=" + rex + ",wex=] exp=2s rc=0 c_exp=\n")[0]
	}
	if s := line30("59s"); s.ReqRead != 59*time.Second || s.ResRead != 59*time.Second {
		t.Fatalf("3.0 rex parsed as %v, %v", s.ReqRead, s.ResRead)
	}
	if idle(line30("59s"), line30("59s"), 0) {
		t.Error("a busy 3.0 session (rex pushed back to 59s at each read) is idle")
	}
	if !idle(line30("57s"), line30("59s"), 0) {
		t.Error("a 3.0 session whose deadline did not move is not idle")
	}
	// Whole seconds and a slow answer: 59m40s at a, then 59m39s at b
	// (2 s later) reads as a deadline 1 s later; with the second look's
	// answer 800 ms in coming that is no read, without it it is.
	if !idle(line("59m39s"), line("59m40s"), 800*time.Millisecond) {
		t.Error("a deadline within 1 s + the answer's round trip is called moved")
	}
	if idle(line("59m39s"), line("59m40s"), 0) {
		t.Error("a deadline 1 s later with an instant answer is called idle")
	}
	if _, why := line("59m59s").idleSince(line("59m40s"), a, b, 0); why != "read on the client side (its read deadline moved 21s later)" {
		t.Errorf("why: %q", why)
	}
	// Woken once with no read on either side (3.0's soft stop wakes an
	// old worker's streams): idle; with one side unseen, not.
	woken := func(calls, rx string, both bool) Session {
		res := "rx=" + rx
		if !both {
			res = "ax="
		}
		return ParseShowSess("0x4: proto=tcpv4 src=127.0.0.1:4 fe=f be=b srv=s calls=" + calls + " rq[f=848000h,i=0,an=00h,rx=" + rx + ",wx=,ax=] rp[f=80048000h,i=0,an=00h," + res + ",wx=] exp=\n")[0]
	}
	if !idle(woken("3", "57s", true), woken("2", "59s", true), 0) {
		t.Error("a session woken once with neither deadline moved is not idle")
	}
	if idle(woken("3", "57s", false), woken("2", "59s", false), 0) {
		t.Error("a woken session with one side's deadline unknown is idle")
	}
	if !idle(woken("2", "57s", false), woken("2", "59s", false), 0) {
		t.Error("an unwoken session with one side's deadline unmoved is not idle")
	}
	// No read deadline on either side: nothing tells busy from idle, so
	// it is left to the signals.
	none := ParseShowSess("0x3: proto=tcpv4 src=127.0.0.1:3 fe=f be=b srv=s calls=3 rq[f=848000h,i=0,an=00h,ax=] rp[f=80048000h,i=0,an=00h,ax=] exp=\n")[0]
	if idle(none, none, 0) {
		t.Error("a session without read deadlines is called idle")
	}
	if parseHumanTime("1d2h3m4s") != 26*time.Hour+3*time.Minute+4*time.Second || parseHumanTime("") != -1 || parseHumanTime("<PAST>") != -1 {
		t.Error("parseHumanTime")
	}
}

// A sweep taken while the master re-executes for a reload (no `show
// proc`: generations by start order, the new worker counted current
// before it serves) or while the new worker is missing from `show proc`
// takes no step and forgets nothing; the next settled sweep carries on
// where the escalation stood.
func TestEscalateWaitsOutUnsettledSweeps(t *testing.T) {
	cli := &fakeCLI{out: sessOut}
	var steps []Step
	e := NewEscalator(cli, Grace{Sessions: time.Minute}, nil, func(s Step) { steps = append(steps, s) })
	now := t0
	e.now = func() time.Time { return now }
	sweep := func(unsettled string, rep procs.Report) {
		rep.Unsettled = unsettled
		r := Assess(rep, rss, t0, Limits{MaxDraining: 2}, true)
		if r.Unsettled != unsettled {
			t.Fatalf("Assess dropped the sweep's unsettled reason: %q", r.Unsettled)
		}
		e.Escalate(context.Background(), 1, &r)
	}
	sweep("the master CLI did not answer `show proc`", table())
	if len(steps) != 0 || len(cli.cmds) != 0 {
		t.Fatalf("an unsettled sweep escalated: steps %+v, commands %v", steps, cli.cmds)
	}
	sweep("", table())
	if len(steps) != 1 || steps[0].Step != StepReport {
		t.Fatalf("the settled sweep: steps %+v", steps)
	}
	// Mid-reload, numbered by start order: generation 1 is missing.
	now = now.Add(2 * time.Minute)
	mid := table()
	mid.Processes = slices.DeleteFunc(mid.Processes, func(p procs.Process) bool { return p.PID == 10 })
	sweep("worker 50 started after `show proc` was read", mid)
	if len(steps) != 1 {
		t.Fatalf("an unsettled sweep took a step or forgot generation 1: steps %+v", steps)
	}
	sweep("", table())
	if len(steps) != 2 || steps[1].Step != StepSessions || steps[1].Generation != 1 {
		t.Fatalf("after the reload: steps %+v, want the session step of generation 1", steps)
	}
}

// A master that re-executes between the sweep and the step (it refuses
// the relay, or 2.6 answers nothing) has not taken the step: it is not
// recorded, and the next sweep takes it.
func TestEscalateStepNotRelayedIsRetried(t *testing.T) {
	for name, fail := range map[string]func() (string, error){
		"refused": func() (string, error) {
			return "", fmt.Errorf("master cli /run/haproxy-master.sock: %w", &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)})
		},
		"reset": func() (string, error) {
			return "", fmt.Errorf("master cli /run/haproxy-master.sock: read: %w", syscall.ECONNRESET)
		},
		"empty answer": func() (string, error) { return "", nil },
	} {
		t.Run(name, func(t *testing.T) {
			cli := &fakeCLI{out: sessOut, fail: fail}
			var steps []Step
			e := NewEscalator(cli, Grace{}, nil, func(s Step) { steps = append(steps, s) })
			e.now = func() time.Time { return t0 }
			r := Assess(table(), rss, t0, Limits{MaxDraining: 2}, true)
			e.Escalate(context.Background(), 1, &r)
			if len(steps) != 0 {
				t.Fatalf("a step the master did not relay was recorded: %+v", steps)
			}
			e.Escalate(context.Background(), 1, &r)
			if len(steps) != 1 || steps[0].Step != StepReport || len(steps[0].Holders) != 1 || len(steps[0].Errors) != 0 {
				t.Fatalf("the retried report step: %+v", steps)
			}
		})
	}
}
