package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/haguard/haguard/agent/probe"
	"github.com/haguard/haguard/agent/sweep"
	"github.com/haguard/haguard/api"
	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/host"
	"github.com/haguard/haguard/reload"
)

// pieces are the concrete values one haguard.yaml builds for the daemon.
// SIGHUP builds a new set and swaps it in; the API's adapters load the
// current set on every call, so a reload that is running keeps the set it
// started with.
type pieces struct {
	host    *host.Host
	rel     *reload.Reloader
	sweeper *sweep.Sweeper
}

func (p *pieces) cfg() config.Config { return p.host.Config() }

// buildPieces builds the reloader and the sweeper of h, the host opened
// over the daemon's one D-Bus connection (the same host.Host `haguard
// reload` builds).
func buildPieces(h *host.Host, sweeps *sweeps) (*pieces, error) {
	rel, err := h.Reloader()
	if err != nil {
		return nil, err
	}
	return &pieces{host: h, rel: rel, sweeper: sweeps.build(h)}, nil
}

// apiAdapter implements every interface api declares over the current
// pieces.
type apiAdapter struct {
	cur *atomic.Pointer[pieces]
	log *slog.Logger
	// afterReload runs after every transaction (the sweep loop's Trigger).
	afterReload func()
}

func (a apiAdapter) p() *pieces { return a.cur.Load() }

// scratch writes body to a new 0600 file in <state_dir>/api: the only
// place the API writes besides the managed config, which the reload
// transaction installs. The caller removes it.
func scratch(stateDir, prefix string, body []byte) (string, error) {
	dir := filepath.Join(stateDir, "api")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("state dir: %w", err)
	}
	f, err := os.CreateTemp(dir, prefix+"-*.cfg")
	if err != nil {
		return "", fmt.Errorf("state dir: %w", err)
	}
	if _, err := f.Write(body); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", fmt.Errorf("write %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write %s: %w", f.Name(), err)
	}
	return f.Name(), nil
}

// cleanScratch removes the scratch files and trees a killed daemon left
// in <state_dir>/api (candidate-*, check-*): at start, before the queue
// runs, nothing else can be using them.
func cleanScratch(stateDir string, log *slog.Logger) {
	dir := filepath.Join(stateDir, "api")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, "candidate-") && !strings.HasPrefix(name, "check-") {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			log.Warn("scratch file left by an earlier run", "path", filepath.Join(dir, name), "err", err)
			continue
		}
		log.Info("removed a scratch file left by an earlier run", "path", filepath.Join(dir, name))
	}
}

// scratchTree writes a config set (absolute path -> content; a path
// ending in "/" is a directory) under a new 0700 directory in
// <state_dir>/api, mirroring the paths: the candidate tree reload.Run
// installs. The caller removes it.
func scratchTree(stateDir, prefix string, files map[string][]byte) (string, error) {
	base := filepath.Join(stateDir, "api")
	if err := os.MkdirAll(base, 0o700); err != nil {
		return "", fmt.Errorf("state dir: %w", err)
	}
	dir, err := os.MkdirTemp(base, prefix+"-*")
	if err != nil {
		return "", fmt.Errorf("state dir: %w", err)
	}
	for p, b := range files {
		dst := filepath.Join(dir, filepath.Clean("/"+p))
		if !strings.HasPrefix(dst, dir+"/") {
			os.RemoveAll(dir)
			return "", fmt.Errorf("candidate path %q is outside the tree", p)
		}
		if strings.HasSuffix(p, "/") {
			err = os.MkdirAll(dst, 0o700)
		} else if err = os.MkdirAll(filepath.Dir(dst), 0o700); err == nil {
			err = os.WriteFile(dst, b, 0o600)
		}
		if err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("write the candidate: %w", err)
		}
	}
	return dir, nil
}

// Check implements api.Checker.
func (a apiAdapter) Check(ctx context.Context, cfg []byte) (api.CheckReport, error) {
	p := a.p()
	path, err := scratch(p.cfg().StateDir, "check", cfg)
	if err != nil {
		return api.CheckReport{}, err
	}
	defer os.Remove(path)
	// An API candidate: the policy decides first, haproxy -c runs
	// confined, and its output names no other file (security.md).
	rep, err := p.host.Check(ctx, host.CheckOptions{Files: []string{path}, Candidate: true, Untrusted: true})
	if err != nil {
		return api.CheckReport{}, err
	}
	return api.CheckReport{Valid: rep.Syntax.OK, Output: rep.Syntax.Output, Findings: rep.Findings, Counts: severityCounts(rep.Findings)}, nil
}

func severityCounts(fs []reload.Finding) map[string]int {
	c := map[string]int{}
	for _, f := range fs {
		c[string(f.Severity)]++
	}
	return c
}

// Reload implements api.Reloader: the candidate becomes a scratch file
// that reload.Run installs over the managed config.
func (a apiAdapter) Reload(ctx context.Context, req api.ReloadRequest) (api.Outcome, error) {
	p := a.p() // one set of pieces for the whole transaction, whatever SIGHUP does
	opt := reload.Options{Reason: "api " + req.ID, Who: apiWho, KillGhosts: p.cfg().Reload.KillGhosts, Untrusted: true,
		IfMatch: req.IfMatch, ID: req.ID, ConfirmWithin: req.ConfirmWithin}
	switch {
	case req.Files != nil:
		dir, err := scratchTree(p.cfg().StateDir, "candidate-"+req.ID, req.Files)
		if err != nil {
			return api.Outcome{}, err
		}
		defer os.RemoveAll(dir)
		opt.Candidate = dir
	case req.Candidate != nil:
		path, err := scratch(p.cfg().StateDir, "candidate-"+req.ID, req.Candidate)
		if err != nil {
			return api.Outcome{}, err
		}
		defer os.Remove(path)
		opt.Candidate = path
	}
	res, err := p.rel.Run(ctx, opt)
	a.after()
	return outcome(res, err)
}

// Rollback implements api.Reloader.
func (a apiAdapter) Rollback(ctx context.Context, req api.RollbackRequest) (api.Outcome, error) {
	res, err := a.p().rel.RollbackTo(ctx, req.To, reload.Options{Reason: "api " + req.ID, Who: apiWho, IfMatch: req.IfMatch, ID: req.ID})
	a.after()
	if errors.Is(err, reload.ErrNoHistory) {
		return api.Outcome{}, &api.ValidationError{Field: "to", Reason: err.Error()}
	}
	return outcome(res, err)
}

func (a apiAdapter) after() {
	if a.afterReload != nil {
		a.afterReload()
	}
}

func msDuration(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }

// outcome maps reload's sentinels to the API's result names. Unchanged is
// not an error for the API.
func outcome(res reload.Result, err error) (api.Outcome, error) {
	o := outcomeOf(res, api.ResultOK)
	switch {
	case err == nil:
	case errors.Is(err, reload.ErrUnchanged):
		o.Result = api.ResultUnchanged
		if !res.OK {
			o.Result = api.ResultFailed
			return o, err
		}
		return o, nil
	case errors.Is(err, reload.ErrRefused), errors.Is(err, reload.ErrLocked):
		// Nothing was touched: the check failed, or `haguard reload` on the
		// command line held the lock past reload.lock_timeout.
		o.Result = api.ResultRefused
	case errors.Is(err, reload.ErrRolledBack):
		o.Result = api.ResultRolledBack
	default:
		o.Result = api.ResultFailed
	}
	return o, err
}

// outcomeOf is res as the API and the metrics see it, with result.
func outcomeOf(res reload.Result, result string) api.Outcome {
	return api.Outcome{ID: res.ID, Result: result, Duration: msDuration(res.DurationMS),
		Counts: severityCounts(res.Findings), Probes: api.ProbeTotals{OK: res.Probes.OK, Failed: res.Probes.Failed}, Body: res}
}

// History implements api.Reloader: newest first, at most limit.
func (a apiAdapter) History(_ context.Context, limit int) (any, error) {
	h, err := a.p().rel.History()
	if err != nil {
		return nil, err
	}
	slices.Reverse(h)
	if len(h) > limit {
		h = h[:limit]
	}
	if h == nil {
		h = []reload.Entry{}
	}
	return h, nil
}

// Get implements api.Reloader from the history entries.
func (a apiAdapter) Get(_ context.Context, id string) (api.Outcome, error) {
	h, err := a.p().rel.History()
	if err != nil {
		return api.Outcome{}, err
	}
	for _, e := range h {
		if e.ID == id {
			return api.Outcome{ID: e.ID, Result: entryResult(e.Outcome), Duration: msDuration(e.DurationMS), Body: e}, nil
		}
	}
	return api.Outcome{}, fmt.Errorf("%w: no transaction %s in the history", api.ErrNotFound, id)
}

// entryResult is a history outcome as an API result ("" while it runs).
func entryResult(outcome string) string {
	switch outcome {
	case reload.OutcomeCommitted, reload.OutcomeProvisional:
		return api.ResultOK
	case reload.OutcomeUnchanged:
		return api.ResultUnchanged
	case reload.OutcomeRefused:
		return api.ResultRefused
	case reload.OutcomeRolledBack, reload.OutcomeRecovered:
		return api.ResultRolledBack
	case reload.OutcomeRunning:
		return ""
	}
	return api.ResultFailed
}

// Confirm implements api.Reloader: `haguard confirm ID` by the API.
func (a apiAdapter) Confirm(ctx context.Context, id string) (api.Outcome, error) {
	e, err := a.p().rel.Confirm(ctx, id, apiWho)
	switch {
	case errors.Is(err, reload.ErrNothingPending):
		return api.Outcome{}, fmt.Errorf("%w: %w", api.ErrNotPending, err)
	case errors.Is(err, reload.ErrLocked):
		return api.Outcome{}, &api.BusyError{Running: err.Error()}
	case err != nil:
		return api.Outcome{}, err
	}
	a.after()
	return api.Outcome{ID: e.ID, Result: api.ResultOK, Body: e}, nil
}

// RunningSHA256 implements api.ConfigHasher: reload's identity of the
// running config.
func (a apiAdapter) RunningSHA256(context.Context) (string, error) {
	return a.p().rel.Identity()
}

// Status implements api.StatusSource.
func (a apiAdapter) Status(ctx context.Context) (api.UnitStatus, error) {
	st, err := a.p().rel.Status(ctx, false) // never block an API call on a reload
	if err != nil {
		return api.UnitStatus{}, err
	}
	if st.ActiveState == "" && len(st.Errors) > 0 {
		return api.UnitStatus{}, errors.New(st.Errors[0])
	}
	return api.UnitStatus{Unit: st.Unit, ActiveState: st.ActiveState, SubState: st.SubState,
		MainPID: st.MainPID, Generation: st.Generation, Drift: st.Drift, DriftReason: st.DriftReason}, nil
}

// Probe implements api.Prober over the configured (or inferred) targets;
// a request may narrow them, never add an address of its own.
func (a apiAdapter) Probe(ctx context.Context, req api.ProbeRequest) (api.ProbeReport, error) {
	p := a.p()
	targets, err := p.host.ProbeTargets(nil)
	if err != nil {
		return api.ProbeReport{}, err
	}
	if len(req.Targets) > 0 {
		var pick []probe.Target
		for _, want := range req.Targets {
			i := slices.IndexFunc(targets, func(t probe.Target) bool { return t.Address == want })
			if i < 0 {
				return api.ProbeReport{}, &api.ValidationError{Field: "targets",
					Reason: fmt.Sprintf("%s is not a configured probe target or bind", want)}
			}
			pick = append(pick, targets[i])
		}
		targets = pick
	}
	if n := req.Count * len(targets); n > api.MaxProbeConnections {
		return api.ProbeReport{}, &api.ValidationError{Field: "count", Reason: fmt.Sprintf(
			"%d targets × %d attempts is %d connections; at most %d in one request (name fewer targets)", len(targets), req.Count, n, api.MaxProbeConnections)}
	}
	opts := p.host.ProbeOptions()
	opts.Logger = a.log
	if req.Count > 0 {
		opts.Count = req.Count
		for i := range targets {
			targets[i].Count = req.Count
		}
	}
	if socks, err := probe.ListenSockets(ctx); err == nil {
		opts.ListenerCount = probe.ListenerCounter(socks)
	}
	rep := probe.Run(ctx, targets, opts)
	out := api.ProbeReport{Report: rep}
	for _, t := range rep.Targets {
		out.Totals.OK += t.OK
		out.Totals.Failed += t.Fail
	}
	return out, nil
}
