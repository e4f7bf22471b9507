package reload

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Entry is one transaction in the history dir: what was running before,
// what it tried to install, and how it ended. The config bytes themselves
// are content-addressed blobs next to it, so every config haguard ever
// replaced can be recovered while its entry is kept.
type Entry struct {
	ID     string    `json:"id"`
	Time   time.Time `json:"time"`
	Who    string    `json:"who"`
	Reason string    `json:"reason"`
	Target string    `json:"target"`
	// BeforeSHA256 is the config set that ran before (the rollback
	// snapshot, by its identity); empty when haguard did not know it.
	BeforeSHA256 string `json:"before_sha256"`
	AfterSHA256  string `json:"after_sha256"`
	// Files are the files the transaction changed, with what a rollback
	// puts back in each (an entry of an older haguard has none: see
	// files).
	Files []FileChange `json:"files,omitempty"`
	// Adopted: what it rolls back to is the set haguard found on disk at
	// its first reload (untouched since the running generation started),
	// not one it installed.
	Adopted bool `json:"adopted,omitempty"`
	// Runtime is the runtime change this entry wrote to the set without
	// a reload (haguard server set, map add...); absent for a reload.
	Runtime string `json:"runtime,omitempty"`
	// ReplacedSHA256 is the file the install overwrote when it was not
	// BeforeSHA256 (edited by hand without a reload): kept so that those
	// edits are not lost, but never a rollback target (never verified).
	ReplacedSHA256 string `json:"replaced_sha256,omitempty"`
	// Kept are the files a rollback of this transaction found edited by
	// someone else during it (neither what it installed nor what it
	// restores) and kept in history/blobs before putting the old config
	// back, so that those edits are not lost.
	Kept []KeptFile `json:"kept,omitempty"`
	// Confirmation is the --confirm-within window of a provisional
	// reload, and how it closed.
	Confirmation *Confirmation `json:"confirmation,omitempty"`
	// Outcome: running, committed, provisional (awaiting confirmation),
	// unchanged, refused, rolled_back, broken, recovered (a run that
	// died and the next run rolled back).
	Outcome    string `json:"outcome"`
	DurationMS int64  `json:"duration_ms"`
	// Error is the first failed stage as "stage: error", read from
	// audit.log when the history is listed; "" when no stage failed.
	Error string `json:"error"`
}

// KeptFile is a file's content kept in history/blobs before a rollback
// overwrote it.
type KeptFile struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// Outcomes.
const (
	OutcomeRunning    = "running"
	OutcomeCommitted  = "committed"
	OutcomeUnchanged  = "unchanged"
	OutcomeRefused    = "refused"
	OutcomeRolledBack = "rolled_back"
	OutcomeBroken     = "broken"
	OutcomeRecovered  = "recovered"
	// OutcomeRaced: the set on disk changed during the transaction;
	// haproxy runs one of the two versions, both kept (Entry.Kept).
	OutcomeRaced = "raced"
)

// store is the state dir's layout:
//
//	lock               flock, holder's id and pid
//	journal.json       the running transaction's stage (absent when idle)
//	running.json       what haguard last saw running (sha + master counters)
//	audit.log          one JSON line per transaction
//	history/<id>.json  Entry
//	history/blobs/<sha256>
type store struct {
	dir string
}

func (s store) historyDir() string { return filepath.Join(s.dir, "history") }
func (s store) blobDir() string    { return filepath.Join(s.dir, "history", "blobs") }

// BlobPath is where the config with this sha256 is kept.
func (s store) blobPath(sum string) string { return filepath.Join(s.blobDir(), sum) }

func (s store) putEntry(e Entry) error {
	if err := os.MkdirAll(s.historyDir(), 0o750); err != nil {
		return fmt.Errorf("history dir: %w", err)
	}
	return writeJSONFile(filepath.Join(s.historyDir(), e.ID+".json"), e)
}

func (s store) entry(id string) (Entry, error) {
	var e Entry
	if strings.ContainsAny(id, "/\\") || id == "" {
		return e, fmt.Errorf("history: bad id %q", id)
	}
	if err := readJSONFile(filepath.Join(s.historyDir(), id+".json"), &e); err != nil {
		return e, fmt.Errorf("history %s: %w", id, err)
	}
	return e, nil
}

// entries lists the history, oldest first (ids sort by time).
func (s store) entries() ([]Entry, error) {
	names, err := filepath.Glob(filepath.Join(s.historyDir(), "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := make([]Entry, 0, len(names))
	for _, n := range names {
		var e Entry
		if err := readJSONFile(n, &e); err != nil {
			return nil, fmt.Errorf("history: %w", err)
		}
		out = append(out, e)
	}
	return out, nil
}

// prune keeps the newest keep entries and the blobs they (or running.json)
// reference.
func (s store) prune(keep int) error {
	es, err := s.entries()
	if err != nil {
		return err
	}
	for len(es) > keep {
		if err := os.Remove(filepath.Join(s.historyDir(), es[0].ID+".json")); err != nil {
			return fmt.Errorf("prune history: %w", err)
		}
		es = es[1:]
	}
	live := map[string]bool{}
	keepAll := func(cs []FileChange) {
		for _, c := range cs {
			live[c.Restore], live[c.After], live[c.Replaced] = true, true, true
		}
	}
	for _, e := range es {
		live[e.BeforeSHA256], live[e.AfterSHA256], live[e.ReplacedSHA256] = true, true, true
		keepAll(e.files())
		for _, k := range e.Kept {
			live[k.SHA256] = true
		}
	}
	if r, err := s.running(); err == nil {
		live[r.SHA256] = true
		for _, m := range r.Manifest {
			live[m.SHA256] = true
		}
	}
	if j, err := s.journal(); err == nil {
		live[j.RollbackSHA256], live[j.CandidateSHA256] = true, true
		keepAll(j.files())
	}
	blobs, _ := os.ReadDir(s.blobDir())
	for _, b := range blobs {
		if !live[b.Name()] {
			_ = os.Remove(s.blobPath(b.Name()))
		}
	}
	return nil
}

// Running is what haguard last saw running: the config's sha256 and the
// master's counters at that moment. If the master still shows the same
// pid and reload counter, nobody reloaded since, so the running config is
// SHA256 (this is how drift is detected).
type Running struct {
	// SHA256 is the set's identity (the file's sha256 for a set of one).
	SHA256    string    `json:"sha256"`
	Target    string    `json:"target"`
	MasterPID int       `json:"master_pid"`
	Reloads   int       `json:"reloads"`
	Time      time.Time `json:"time"`
	ID        string    `json:"id"`
	// Manifest is every file of the set that runs; nil when written by
	// an haguard that managed one file (SHA256 is then Target's).
	Manifest Manifest `json:"manifest,omitempty"`
	// Worker is the current worker's pid when the master keeps no reload
	// counter (no master CLI: Reloads is -1), which tells a reload
	// instead.
	Worker int `json:"worker,omitempty"`
	// Adopted: haguard did not install this set; it found it on disk,
	// untouched since the running generation started, and took it as
	// what runs.
	Adopted bool `json:"adopted,omitempty"`
}

// sameGeneration reports whether g is the generation this record was
// made at: the same master, at the same reload count; where either side
// lacks the counter (no master CLI, and a master environment that did
// not carry it at that read), with the same current worker, since every
// reload forks a new one.
func (r Running) sameGeneration(g Generation) bool {
	if r.MasterPID != g.MasterPID {
		return false
	}
	if r.Reloads >= 0 && g.Reloads >= 0 {
		return r.Reloads == g.Reloads
	}
	return r.Worker != 0 && r.Worker == newestWorker(g)
}

func (r Running) generation() string {
	if r.Reloads < 0 {
		return fmt.Sprintf("master %d with worker %d", r.MasterPID, r.Worker)
	}
	return fmt.Sprintf("master %d at %d reloads", r.MasterPID, r.Reloads)
}

func describeGeneration(g Generation) string {
	if g.Reloads < 0 {
		return fmt.Sprintf("master %d with worker %d", g.MasterPID, newestWorker(g))
	}
	return fmt.Sprintf("master %d at %d reloads", g.MasterPID, g.Reloads)
}

// newestWorker is the pid of g's current worker (the last listed), 0
// when none.
func newestWorker(g Generation) int {
	if len(g.Workers) == 0 {
		return 0
	}
	return g.Workers[len(g.Workers)-1].PID
}

// identity is the running set's identity.
func (r Running) identity() string { return r.SHA256 }

// manifest is the running set, with a legacy record read as a set of one.
func (r Running) manifest() Manifest {
	if r.Manifest != nil {
		return r.Manifest
	}
	return Manifest{{Path: r.Target, SHA256: r.SHA256}}
}

// files are the entry's changes; an entry of an haguard that managed one
// file names it by Target and the two sha256s.
func (e Entry) files() []FileChange {
	if len(e.Files) > 0 || e.BeforeSHA256 == "" {
		return e.Files
	}
	return []FileChange{{Path: e.Target, Restore: e.BeforeSHA256, After: e.AfterSHA256, Replaced: e.ReplacedSHA256}}
}

func (s store) running() (Running, error) {
	var r Running
	err := readJSONFile(filepath.Join(s.dir, "running.json"), &r)
	return r, err
}

// setRunning is not fsynced: losing it to a power cut only makes the next
// run reload instead of saying "unchanged".
func (s store) setRunning(r Running) error {
	return writeJSON(filepath.Join(s.dir, "running.json"), r, false)
}

func writeJSONFile(path string, v any) error { return writeJSON(path, v, true) }

func writeJSON(path string, v any, durable bool) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if _, err := writeFile(path, append(b, '\n'), 0o640, durable); err != nil {
		return err
	}
	return nil
}

func readJSONFile(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}

// auditLine is the part of an audit.log line the history needs (the full
// Result, with every probe attempt, is not kept in memory).
type auditLine struct {
	Time    time.Time `json:"time"`
	Who     string    `json:"who"`
	Reason  string    `json:"reason"`
	Target  string    `json:"target"`
	Outcome string    `json:"outcome"`
	Result  struct {
		ID         string  `json:"id"`
		Stages     []Stage `json:"stages"`
		DurationMS int64   `json:"duration_ms"`
	} `json:"result"`
}

// firstError is the first failed stage as "stage: error".
func (l auditLine) firstError() string {
	for _, st := range l.Result.Stages {
		if !st.OK {
			if st.Error == "" {
				return st.Name + ": failed"
			}
			return st.Name + ": " + st.Error
		}
	}
	return ""
}

// auditLines reads audit.log, oldest first. A line that does not parse (a
// torn write when the host lost power) is skipped: the log is a record,
// and one bad line must not hide the rest.
func (s store) auditLines() ([]auditLine, error) {
	f, err := os.Open(filepath.Join(s.dir, auditFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []auditLine
	rd := bufio.NewReader(f)
	for {
		line, rerr := rd.ReadBytes('\n')
		if line = bytes.TrimSpace(line); len(line) > 0 {
			var l auditLine
			if json.Unmarshal(line, &l) == nil && l.Result.ID != "" {
				out = append(out, l)
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return out, nil
			}
			return out, fmt.Errorf("audit log: %w", rerr)
		}
	}
}

// listing is the history as `haguard history` shows it: the entries in
// history/, plus the refused transactions that never reached the snapshot
// stage (they have no entry, since they installed nothing and have no
// snapshot, but audit.log records them), each with the first failed
// stage from audit.log in Error. Oldest first. Refused transactions are
// not entries on purpose: they would push rollback targets out of
// reload.history_keep.
func (s store) listing() ([]Entry, error) {
	es, err := s.entries()
	if err != nil {
		return nil, err
	}
	lines, err := s.auditLines()
	if err != nil && !isNotExist(err) {
		return es, err
	}
	have := make(map[string]int, len(es))
	for i, e := range es {
		have[e.ID] = i
	}
	added := false
	for _, l := range lines {
		if i, ok := have[l.Result.ID]; ok {
			if es[i].Error == "" {
				es[i].Error = l.firstError()
			}
			continue
		}
		if l.Outcome != OutcomeRefused {
			continue // unchanged runs: audit.log only
		}
		have[l.Result.ID] = len(es)
		es = append(es, Entry{ID: l.Result.ID, Time: l.Time.UTC(), Who: l.Who, Reason: l.Reason, Target: l.Target,
			Outcome: OutcomeRefused, DurationMS: l.Result.DurationMS, Error: l.firstError()})
		added = true
	}
	if added {
		sort.SliceStable(es, func(i, j int) bool { return es[i].ID < es[j].ID })
	}
	return es, nil
}

// refusedError says why transaction e cannot be rolled back.
func refusedError(e Entry) error {
	why := ""
	if e.Error != "" {
		why = " (" + e.Error + ")"
	}
	return fmt.Errorf("%w: transaction %s was refused%s: nothing was installed, so there is no earlier config to return to",
		ErrNoHistory, e.ID, why)
}

// RollbackTarget is the history entry `haguard rollback ID` would undo
// (empty id: the last committed transaction with a snapshot). Every error
// wraps ErrNoHistory and names what is wrong: an unknown or pruned id, a
// refused transaction, or one without a snapshot. It needs no systemd, so
// the command can check its argument before connecting.
func RollbackTarget(stateDir, id string) (Entry, error) {
	s := store{dir: stateDir}
	if id == "" {
		es, err := s.entries()
		if err != nil && !isNotExist(err) {
			return Entry{}, err
		}
		for i := len(es) - 1; i >= 0; i-- {
			if (es[i].Outcome == OutcomeCommitted || es[i].Outcome == OutcomeProvisional) && es[i].BeforeSHA256 != "" {
				return es[i], nil
			}
		}
		return Entry{}, fmt.Errorf("%w: no committed transaction with a snapshot in %s", ErrNoHistory, s.historyDir())
	}
	if strings.ContainsAny(id, "/\\") {
		return Entry{}, fmt.Errorf("%w: %q is not a transaction id ('haguard history' lists them)", ErrNoHistory, id)
	}
	es, err := s.listing()
	if err != nil && !isNotExist(err) {
		return Entry{}, err
	}
	for _, e := range es {
		if e.ID != id {
			continue
		}
		switch {
		case e.Outcome == OutcomeRefused:
			return Entry{}, refusedError(e)
		case e.BeforeSHA256 == "":
			return Entry{}, fmt.Errorf("%w: transaction %s (%s) has no snapshot of the config before it (a first in-place reload, or reloaded outside haguard)",
				ErrNoHistory, id, e.Outcome)
		}
		return e, nil
	}
	return Entry{}, fmt.Errorf("%w: no transaction %s in %s (a wrong id, or pruned by reload.history_keep; 'haguard history' lists them)",
		ErrNoHistory, id, s.historyDir())
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// History lists past transactions, oldest first, including refused ones
// that never reached the snapshot stage (from audit.log).
func (r *Reloader) History() ([]Entry, error) {
	es, err := r.store.listing()
	if err != nil && !isNotExist(err) {
		return nil, err
	}
	return es, nil
}

// ErrNoHistory: there is no transaction to roll back to.
var ErrNoHistory = errors.New("nothing in history to roll back to")

// RollbackTo undoes transaction id (empty = the last committed one): it
// reinstalls the config that ran before it, as a full transaction (check,
// snapshot, reload, settle, sweep, probe, and a rollback of the rollback if
// that fails). The history entry's reason says what it undid. A refused
// transaction installed nothing and is not a target (ErrNoHistory).
func (r *Reloader) RollbackTo(ctx context.Context, id string, opt Options) (Result, error) {
	e, err := RollbackTarget(r.settings.StateDir, id)
	if err != nil {
		return Result{}, err
	}
	// The config before it, file by file, checked before anything runs.
	opt.candidateSet = candidate{}
	for _, c := range e.files() {
		if c.Restore == "" {
			opt.candidateSet[c.Path] = nil
			continue
		}
		b, err := r.store.blob(c.Restore)
		if err != nil {
			return Result{}, fmt.Errorf("%w: %w", ErrNoHistory, err)
		}
		opt.candidateSet[c.Path] = b
	}
	opt.Candidate = ""
	if p, err := r.store.pending(); err == nil && p.ID == e.ID {
		opt.resolving = e.ID // rejecting a provisional reload closes its window
	}
	if opt.Reason == "" {
		opt.Reason = "rollback of " + e.ID
	} else {
		opt.Reason += " (rollback of " + e.ID + ")"
	}
	return r.Run(ctx, opt)
}

// ReadHistory lists the transactions kept in stateDir, oldest first,
// without a Reloader (history needs no systemd): the entries in history/
// and the refused transactions recorded only in audit.log.
func ReadHistory(stateDir string) ([]Entry, error) {
	es, err := store{dir: stateDir}.listing()
	if err != nil && !isNotExist(err) {
		return nil, err
	}
	return es, nil
}
