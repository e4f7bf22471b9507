// Package generations keeps old haproxy worker generations in bounds
// (docs/generations.md). Assess groups a sweep's draining workers by
// generation and tells which are over a limit of haguard.yaml's
// generations block (count, age, RSS per generation and in total); an
// Escalator takes a generation over a limit through the graceful steps,
// oldest first, when enforcement is on. The current generation is never
// assessed as over, nor touched.
package generations

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/haguard/haguard/agent/procs"
	"github.com/haguard/haguard/config"
)

// Limits are the bounds; a zero or negative field means no limit.
type Limits struct {
	MaxDraining int           `json:"max_draining"`
	MaxAge      time.Duration `json:"-"`
	MaxRSS      int64         `json:"max_rss_bytes"`
	MaxTotalRSS int64         `json:"max_total_rss_bytes"`
	// MaxAgeSeconds is MaxAge for JSON (0: no limit).
	MaxAgeSeconds float64 `json:"max_age_seconds"`
}

// LimitsFrom reads haguard.yaml's generations block.
func LimitsFrom(g config.Generations) Limits {
	l := Limits{MaxDraining: g.MaxDraining}
	if !g.MaxAge.IsUnlimited() {
		l.MaxAge = g.MaxAge.D()
		l.MaxAgeSeconds = l.MaxAge.Seconds()
	}
	if !g.MaxRSS.IsUnlimited() {
		l.MaxRSS = g.MaxRSS.Bytes()
	}
	if !g.MaxTotalRSS.IsUnlimited() {
		l.MaxTotalRSS = g.MaxTotalRSS.Bytes()
	}
	return l
}

// The reasons a generation is over a limit.
const (
	OverCount    = "count"     // more than max_draining generations drain
	OverAge      = "age"       // older than max_age
	OverRSS      = "rss"       // its RSS passes max_rss
	OverTotalRSS = "total_rss" // all old generations together pass max_total_rss
)

// The states of a generation.
const (
	Current  = "current"
	Draining = "draining"
)

// Generation is one worker generation.
type Generation struct {
	// Generation is the master's reload counter when it was forked.
	Generation int    `json:"generation"`
	State      string `json:"state"`
	// PIDs are its workers; Started is the oldest one's start.
	PIDs       []int32   `json:"pids"`
	Started    time.Time `json:"started"`
	AgeSeconds float64   `json:"age_seconds"`
	// RSSBytes is the sum of its workers' resident memory (0 when
	// unreadable).
	RSSBytes int64 `json:"rss_bytes"`
	// Over lists the limits it exceeds (count, age, rss, total_rss).
	Over []string `json:"over,omitempty"`
	// Escalation is where enforcement has taken it (nil: not escalated).
	Escalation *Escalation `json:"escalation,omitempty"`

	procs []procs.Process
}

// Report is the assessment of one sweep.
type Report struct {
	Limits  Limits `json:"limits"`
	Enforce bool   `json:"enforce"`
	// Generations are every worker generation, oldest first; the
	// current one is last.
	Generations []Generation `json:"generations"`
	// Draining counts the draining generations; Over those over a limit.
	Draining int `json:"draining"`
	Over     int `json:"over"`
	// TotalRSSBytes is the RSS of every draining generation together.
	TotalRSSBytes int64 `json:"total_rss_bytes"`
	// Unsettled is the sweep's procs.Report.Unsettled: why its
	// generations are not the master's settled word. No escalation step
	// is taken on such a sweep.
	Unsettled string `json:"unsettled,omitempty"`
}

// Oldest is the oldest draining generation (ok false when none drains).
func (r Report) Oldest() (Generation, bool) {
	for _, g := range r.Generations {
		if g.State == Draining {
			return g, true
		}
	}
	return Generation{}, false
}

// Exceeded are the generations over a limit, oldest first.
func (r Report) Exceeded() []Generation {
	var out []Generation
	for _, g := range r.Generations {
		if len(g.Over) > 0 {
			out = append(out, g)
		}
	}
	return out
}

// RSSFunc reads a process's resident memory in bytes.
type RSSFunc func(pid int32) (int64, error)

// Assess groups the sweep's current workers and draining workers by
// generation and marks the draining ones over a limit. The master is no
// generation. rss may be nil (RSS is then 0 and its limits never hit).
func Assess(rep procs.Report, rss RSSFunc, now time.Time, l Limits, enforce bool) Report {
	out := Report{Limits: l, Enforce: enforce, Generations: []Generation{}, Unsettled: rep.Unsettled}
	byGen := map[string]*Generation{}
	var order []string
	for _, p := range rep.Processes {
		if p.PID == rep.MasterPID || (p.Class != procs.Current && p.Class != procs.Draining) {
			continue
		}
		state := Draining
		if p.Class == procs.Current {
			state = Current
		}
		k := state + "/" + strconv.Itoa(p.Generation)
		g := byGen[k]
		if g == nil {
			g = &Generation{Generation: p.Generation, State: state}
			byGen[k] = g
			order = append(order, k)
		}
		g.PIDs = append(g.PIDs, p.PID)
		g.procs = append(g.procs, p)
		if g.Started.IsZero() || (!p.Created.IsZero() && p.Created.Before(g.Started)) {
			g.Started = p.Created
		}
		if rss != nil {
			if n, err := rss(p.PID); err == nil {
				g.RSSBytes += n
			}
		}
	}
	for _, k := range order {
		g := byGen[k]
		if !g.Started.IsZero() {
			g.AgeSeconds = now.Sub(g.Started).Seconds()
		}
		out.Generations = append(out.Generations, *g)
	}
	// Oldest first, the current generation last.
	sort.SliceStable(out.Generations, func(i, j int) bool {
		a, b := out.Generations[i], out.Generations[j]
		if (a.State == Current) != (b.State == Current) {
			return b.State == Current
		}
		if a.Generation != b.Generation {
			return a.Generation < b.Generation
		}
		return a.Started.Before(b.Started)
	})
	gs := out.Generations
	for i := range gs {
		if gs[i].State == Draining {
			out.Draining++
			out.TotalRSSBytes += gs[i].RSSBytes
		}
	}
	excess := 0
	if l.MaxDraining > 0 && out.Draining > l.MaxDraining {
		excess = out.Draining - l.MaxDraining
	}
	total := out.TotalRSSBytes
	for i := range gs {
		g := &gs[i]
		if g.State != Draining {
			continue
		}
		if excess > 0 {
			g.Over = append(g.Over, OverCount)
			excess--
		}
		if l.MaxAge > 0 && g.AgeSeconds > l.MaxAge.Seconds() {
			g.Over = append(g.Over, OverAge)
		}
		if l.MaxRSS > 0 && g.RSSBytes > l.MaxRSS {
			g.Over = append(g.Over, OverRSS)
		}
		if l.MaxTotalRSS > 0 && total > l.MaxTotalRSS {
			g.Over = append(g.Over, OverTotalRSS)
			total -= g.RSSBytes // the oldest go until the rest fit
		}
		if len(g.Over) > 0 {
			out.Over++
		}
	}
	return out
}

// ReadRSS reads a process's resident memory from /proc/PID/statm.
func ReadRSS(pid int32) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, fmt.Errorf("/proc/%d/statm: %q", pid, b)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/statm: %w", pid, err)
	}
	return pages * int64(os.Getpagesize()), nil
}
