package probe

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"
)

// How Learn looks at a target.
const (
	// LearnWindow is how long a learning tcp attempt waits for the
	// server's first bytes: greetings come within milliseconds.
	LearnWindow = 500 * time.Millisecond
	// LearnCount is the number of attempts per target Learn makes (less
	// when the target asks for fewer).
	LearnCount = 4
)

// Expectation is what probes of one target saw before a change.
type Expectation struct {
	Target   string         `json:"target"`
	Kind     string         `json:"kind"`
	Attempts int            `json:"attempts"`
	OK       int            `json:"ok"`
	Errors   map[string]int `json:"errors,omitempty"`
	// Greets: a tcp server sent bytes first, unasked, on at least one
	// attempt; Greeting is the first such greeting.
	Greets   bool   `json:"greets,omitempty"`
	Greeting string `json:"greeting,omitempty"`
	// Statuses are the http statuses servers answered (haproxy's own
	// pages excluded), in ascending order.
	Statuses []int `json:"statuses,omitempty"`
}

// Baseline is what each target looked like before a change (a reload):
// Learn makes it, Apply hands it to the targets of the run after.
type Baseline struct {
	Targets []Expectation `json:"targets"`
}

// Learn probes targets briefly (LearnCount attempts each, a tcp attempt
// waiting LearnWindow for a greeting) and returns what it saw: which tcp
// servers speak first, which statuses the http servers answer, and the
// failures there were already. Idle-holds, and targets whose Expect or
// ExpectStatus already say what to expect, are not learned. The reload
// calls it before reloading (beside the check, which takes longer), then
// Apply and Run after.
func Learn(ctx context.Context, targets []Target, opts Options) Baseline {
	var ts []Target
	for _, t := range targets {
		switch {
		case t.Kind == KindIdleHold,
			t.Kind == KindTCP && t.Expect != "",
			t.Kind == KindHTTP && t.ExpectStatus != 0:
			continue
		}
		t.Baseline = nil
		if t.Count <= 0 || t.Count > LearnCount {
			t.Count = LearnCount
		}
		if t.Kind == KindTCP {
			t.Linger = LearnWindow
		}
		ts = append(ts, t)
	}
	opts.Count, opts.Progress, opts.ListenerCount, opts.learning = 0, nil, nil, true
	return BaselineOf(Run(ctx, ts, opts))
}

// BaselineOf turns a report into a baseline (see Learn).
func BaselineOf(rep Report) Baseline {
	b := Baseline{Targets: []Expectation{}}
	for _, tr := range rep.Targets {
		e := Expectation{Target: tr.Target, Kind: tr.Kind, Attempts: tr.AttemptsTotal, OK: tr.OK}
		if len(tr.Errors) > 0 {
			e.Errors = maps.Clone(tr.Errors)
		}
		for _, a := range tr.Attempts {
			if a.Greeting != "" && !e.Greets {
				e.Greets, e.Greeting = true, a.Greeting
			}
			if a.HTTPStatus != 0 && !a.ByHAProxy && !slices.Contains(e.Statuses, a.HTTPStatus) {
				e.Statuses = append(e.Statuses, a.HTTPStatus)
			}
		}
		slices.Sort(e.Statuses)
		b.Targets = append(b.Targets, e)
	}
	return b
}

// Apply sets each target's Baseline to what was learned at the same
// address with the same kind; a target the baseline does not know (a new
// bind, a changed mode) is judged on its own.
func (b Baseline) Apply(ts []Target) {
	for i := range ts {
		j := slices.IndexFunc(b.Targets, func(e Expectation) bool { return e.Target == ts[i].Address && e.Kind == ts[i].Kind })
		if j >= 0 {
			e := b.Targets[j]
			ts[i].Baseline = &e
		}
	}
}

// judgeGreetings decides what one run alone can about a lingering tcp
// target with no baseline: a server that greets on some attempts and not
// on others is missing behind some paths (a ghost forwarding to a dead or
// unreachable server, say), so the silent attempts fail.
func judgeGreetings(t Target, tr *TargetReport) {
	if !lingers(t) || t.Send != "" {
		return
	}
	greeted := 0
	for _, a := range tr.Attempts {
		if a.Greeting != "" {
			greeted++
		}
	}
	if greeted == 0 {
		return
	}
	for i := range tr.Attempts {
		if a := &tr.Attempts[i]; a.OK && a.Greeting == "" {
			a.OK, a.Reason = false, ReasonNoGreeting
			a.Error = fmt.Sprintf("%s: nothing in %s, while %d of %d attempts were greeted (a path with no server behind it?)",
				ReasonNoGreeting, fmtMS(a.LatencyMS), greeted, len(tr.Attempts))
		}
	}
}
