package probe

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Run.
const (
	DefaultMinCount    = 20
	DefaultPerListener = 4
	DefaultConcurrency = 8
	DefaultTimeout     = 3 * time.Second
	// WaitFactor: lingering tcp attempts, which mostly wait on a silent
	// connection, may run WaitFactor × Concurrency at once, so that the
	// default 20 attempts of a target linger together instead of in
	// three waves (a linger is up to 5.3 s).
	WaitFactor = 4
)

// Options tune Run. The zero value works.
type Options struct {
	// Count is the number of attempts per target when the target does not
	// say; 0 means the default (see AttemptsFor).
	Count int
	// Concurrency bounds the attempts in flight, over all targets;
	// lingering tcp attempts have a pool of their own, WaitFactor times
	// as large.
	Concurrency int
	// Timeout is the deadline of one attempt when the target does not
	// say. An attempt gets haproxy's give-up time on top (a lingering tcp
	// attempt its linger), an idle-hold Idle plus twice this.
	Timeout time.Duration
	// ListenerCount returns how many processes LISTEN on addr (host:port);
	// nil means 1. It sets the default count, so that SO_REUSEPORT
	// spreading reaches every process, ghosts included.
	ListenerCount func(addr string) int
	// Probers maps kinds to probes; nil means Probers().
	Probers map[string]Prober
	// Logger receives debug output; nil means none.
	Logger *slog.Logger
	// Progress, when set, is called every ProgressEvery while idle-holds
	// run, with a line for a human.
	Progress      func(line string)
	ProgressEvery time.Duration

	// learning: Learn's run, which records what it sees and judges
	// nothing across attempts.
	learning bool
}

// Attempt is one probe attempt.
type Attempt struct {
	Target    string  `json:"target"`
	Kind      string  `json:"kind"`
	OK        bool    `json:"ok"`
	Error     string  `json:"error"`
	Reason    string  `json:"reason,omitempty"`
	LatencyMS float64 `json:"latency_ms"`
	Result
}

// Latency summarises the attempts' latencies, in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	Max float64 `json:"max"`
}

// TargetReport is every attempt against one target and their totals.
type TargetReport struct {
	Target        string `json:"target"`
	Kind          string `json:"kind"`
	AttemptsTotal int    `json:"attempts_total"`
	OK            int    `json:"ok"`
	Fail          int    `json:"fail"`
	// Errors counts the failed attempts by Reason.
	Errors    map[string]int `json:"errors"`
	LatencyMS Latency        `json:"latency_ms"`
	// Listeners is the number of processes found LISTENing on the target
	// (0 when not counted).
	Listeners int `json:"listeners,omitempty"`
	// LingerMS is how long a tcp attempt watched the accepted connection
	// for a close (0: it did not).
	LingerMS float64 `json:"linger_ms,omitempty"`
	// Backends are the backends the listener routes to (from the config).
	Backends []string `json:"backends,omitempty"`
	// Baseline is what the probe before the change saw here, if any.
	Baseline *Expectation `json:"baseline,omitempty"`
	Attempts []Attempt    `json:"attempts"`
}

// Report is the result of Run plus, when the caller read it, the runtime
// health of haproxy's servers. Its JSON is the `haguard probe` contract.
type Report struct {
	// OK is true when every attempt passed and (when the health was
	// read, see WithHealth) every backend a probed listener routes to
	// has a server UP.
	OK      bool           `json:"ok"`
	Targets []TargetReport `json:"targets"`
	// Servers and BackendsDown come from `show stat` (see ReadStats);
	// they do not change OK.
	Servers      []ServerStatus `json:"servers"`
	BackendsDown []BackendDown  `json:"backends_down"`
	// NoServerUp are the backends that probed listeners route to and
	// that have no server UP (see WithHealth); any makes OK false.
	NoServerUp []NoServerUp `json:"no_server_up"`
	StatsError string       `json:"stats_error,omitempty"`
	DurationMS float64      `json:"duration_ms"`
}

// AttemptsFor is the number of attempts Run makes against t: t.Count,
// else opts.Count, else max(20, 4 × listeners) (for idle-hold: one per
// listener, at least one, since each holds for the whole idle time).
func AttemptsFor(t Target, opts Options) int {
	if t.Count > 0 {
		return t.Count
	}
	if opts.Count > 0 {
		return opts.Count
	}
	n := 1
	if opts.ListenerCount != nil {
		n = max(1, opts.ListenerCount(t.Address))
	}
	if t.Kind == KindIdleHold {
		return n
	}
	return max(DefaultMinCount, DefaultPerListener*n)
}

// Run probes every target and returns the report. It never fails as a
// whole: a broken target shows up as failed attempts. Attempts from all
// targets share the concurrency bound (lingering tcp attempts a larger
// one of their own); each has its own deadline. Run
// returns when every attempt has ended; cancelling ctx ends them early
// (they then count as failed). A lingering tcp target whose server
// greeted on some attempts fails the silent ones ("no greeting"): some
// paths have no server behind them.
func Run(ctx context.Context, targets []Target, opts Options) Report {
	start := time.Now()
	probers := opts.Probers
	if probers == nil {
		probers = Probers()
	}
	conc := opts.Concurrency
	if conc <= 0 {
		conc = DefaultConcurrency
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	targets = slices.Clone(targets)
	reports := make([]TargetReport, len(targets))
	var holds int
	for i := range targets {
		t := &targets[i]
		if lingers(*t) && !opts.learning {
			t.greeted = new(atomic.Bool)
		}
		n := AttemptsFor(*t, opts)
		reports[i] = TargetReport{Target: t.Address, Kind: t.Kind, AttemptsTotal: n, Backends: t.Backends,
			Baseline: t.Baseline, Errors: map[string]int{}, Attempts: make([]Attempt, n)}
		if lingers(*t) {
			reports[i].LingerMS = ms(LingerFor(*t))
		}
		if opts.ListenerCount != nil {
			reports[i].Listeners = opts.ListenerCount(t.Address)
		}
		if t.Kind == KindIdleHold {
			holds += n
		}
	}

	var done sync.WaitGroup
	stopProgress := make(chan struct{})
	if opts.Progress != nil && holds > 0 {
		done.Add(1)
		go func() {
			defer done.Done()
			progress(ctx, targets, start, opts, stopProgress)
		}()
	}

	// Two pools: attempts that connect and talk, bounded by conc, and
	// lingering tcp attempts, which mostly wait on a silent connection
	// and may hold WaitFactor times as many at once.
	active, waiting := make(chan struct{}, conc), make(chan struct{}, WaitFactor*conc)
	var attempts sync.WaitGroup
	for i, t := range targets {
		pool := active
		if lingers(t) {
			pool = waiting
		}
		for j := range reports[i].Attempts {
			attempts.Add(1)
			go func() {
				defer attempts.Done()
				pool <- struct{}{}
				defer func() { <-pool }()
				reports[i].Attempts[j] = attempt(ctx, t, probers, opts, logger.With("target", t.Address, "kind", t.Kind, "attempt", j))
			}()
		}
	}
	attempts.Wait()
	close(stopProgress)
	done.Wait()

	rep := Report{OK: true, Targets: reports, Servers: []ServerStatus{}, BackendsDown: []BackendDown{}, NoServerUp: []NoServerUp{}}
	for i := range rep.Targets {
		if !opts.learning {
			judgeGreetings(targets[i], &rep.Targets[i])
		}
		summarise(&rep.Targets[i])
		if rep.Targets[i].Fail > 0 {
			rep.OK = false
		}
	}
	rep.DurationMS = ms(time.Since(start))
	return rep
}

func attempt(ctx context.Context, t Target, probers map[string]Prober, opts Options, logger *slog.Logger) Attempt {
	a := Attempt{Target: t.Address, Kind: t.Kind}
	p, ok := probers[t.Kind]
	if !ok {
		a.Error, a.Reason = fmt.Sprintf("unknown probe kind %q", t.Kind), ReasonUnknownKind
		return a
	}
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = opts.Timeout
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	actx, cancel := context.WithTimeout(ctx, deadline(t, timeout))
	defer cancel()
	begin := time.Now()
	err := p(actx, t, &a.Result, logger)
	a.LatencyMS = ms(time.Since(begin))
	if err != nil {
		a.Error, a.Reason = err.Error(), Reason(err)
		logger.Debug("probe failed", "err", err, "latency_ms", a.LatencyMS)
		return a
	}
	a.OK = true
	return a
}

func summarise(tr *TargetReport) {
	lat := make([]float64, 0, len(tr.Attempts))
	for _, a := range tr.Attempts {
		if a.OK {
			tr.OK++
		} else {
			tr.Fail++
			tr.Errors[a.Reason]++
		}
		lat = append(lat, a.LatencyMS)
	}
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	tr.LatencyMS = Latency{P50: lat[(len(lat)-1)/2], Max: lat[len(lat)-1]}
}

func progress(ctx context.Context, targets []Target, start time.Time, opts Options, stop <-chan struct{}) {
	every := opts.ProgressEvery
	if every <= 0 {
		every = 5 * time.Second
	}
	var longest time.Duration
	for _, t := range targets {
		if t.Kind == KindIdleHold {
			longest = max(longest, t.Idle)
		}
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-tick.C:
			opts.Progress(fmt.Sprintf("idle-hold: %s of %s elapsed", time.Since(start).Round(time.Second), longest))
		}
	}
}
