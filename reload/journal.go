package reload

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Journal is written (atomically) before each stage, and removed when the
// transaction ends. If it is there when a run takes the lock, the run that
// wrote it died: the next run reads it to know whether anything was
// installed and what to roll back to.
type Journal struct {
	ID     string    `json:"id"`
	PID    int       `json:"pid"`
	Start  time.Time `json:"start"`
	Stage  string    `json:"stage"`
	Target string    `json:"target"`
	// Installed is true from the install stage on: the target may hold
	// the candidate.
	Installed       bool   `json:"installed"`
	CandidateSHA256 string `json:"candidate_sha256"`
	// RollbackSHA256 names the set to restore (its identity); empty when
	// there is none.
	RollbackSHA256 string `json:"rollback_sha256"`
	// Changes are the files the install writes and what a rollback puts
	// back in each (a journal of an older haguard has none: see files).
	Changes []FileChange `json:"changes,omitempty"`
	// Candidate is the set the run installs, file by file, so that the
	// next run can tell whether the disk still holds it (a commit that
	// could not be recorded is adopted: recover.go).
	Candidate Manifest  `json:"candidate,omitempty"`
	Updated   time.Time `json:"updated"`
}

// files are the journal's changes; a journal written by an haguard that
// managed one file names it by Target and the two sha256s.
func (j Journal) files() []FileChange {
	if len(j.Changes) > 0 || j.RollbackSHA256 == "" {
		return j.Changes
	}
	return []FileChange{{Path: j.Target, Restore: j.RollbackSHA256, After: j.CandidateSHA256}}
}

func (s store) journalPath() string { return filepath.Join(s.dir, "journal.json") }

func (s store) journal() (Journal, error) {
	var j Journal
	err := readJSONFile(s.journalPath(), &j)
	return j, err
}

// writeJournal writes j durably when recovery depends on it (a new
// journal, installed, rollback, commit); a plain stage-name update is
// written without fsync.
func (s store) writeJournal(j Journal) error {
	durable := true
	switch j.Stage {
	case StageReload, StageSettle, StageSweep, StageProbe:
		durable = false
	}
	if err := writeJSON(s.journalPath(), j, durable); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

func (s store) clearJournal() error {
	_ = os.Remove(s.commitJournalPath())
	if err := os.Remove(s.journalPath()); err != nil && !isNotExist(err) {
		return fmt.Errorf("journal: %w", err)
	}
	return syncDir(s.dir)
}

// commitJournalPath is the journal of the commit stage, written ahead (at
// install, while the state dir takes writes) so that the commit can still
// say "verified" when the state dir has filled up since: a rename onto
// journal.json needs no free space.
func (s store) commitJournalPath() string { return filepath.Join(s.dir, "journal.commit.json") }

// prepareCommitJournal writes j as the commit stage will record it.
func (s store) prepareCommitJournal(j Journal) error {
	j.Stage = stageCommit
	if err := writeJSON(s.commitJournalPath(), j, false); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// writeCommitJournal records the commit stage: a fresh write, else the
// journal prepared at install renamed into place.
func (s store) writeCommitJournal(j Journal) error {
	err := s.writeJournal(j)
	if err == nil {
		_ = os.Remove(s.commitJournalPath())
		return nil
	}
	if rerr := os.Rename(s.commitJournalPath(), s.journalPath()); rerr != nil {
		return fmt.Errorf("%w (and the prepared one: %w)", err, rerr)
	}
	return nil
}

// auditFile is the audit log's name in the state dir.
const auditFile = "audit.log"

// AuditRecord is one line of <state>/audit.log.
type AuditRecord struct {
	Time         time.Time `json:"time"`
	Who          string    `json:"who"`
	Reason       string    `json:"reason"`
	Target       string    `json:"target"`
	Outcome      string    `json:"outcome"`
	BeforeSHA256 string    `json:"before_sha256"`
	AfterSHA256  string    `json:"after_sha256"`
	// SkipLint are the rules --skip-lint silenced for this run.
	SkipLint []string `json:"skip_lint,omitempty"`
	Result   Result   `json:"result"`
}

// StageStart names, in audit.log only, why a run was refused before it
// could start a transaction (the lock busy, systemd unreachable): no
// stage ran.
const StageStart = "start"

// AuditRefused appends the audit line of a run refused before it started,
// so that automation reading audit.log (and `haguard history`) sees it:
// outcome refused, an id of its own, and why as its "start" stage. It
// takes no lock: one O_APPEND write of a line.
func AuditRefused(stateDir string, rec AuditRecord, start time.Time, why error) error {
	rec.Time = start.UTC()
	rec.Outcome = OutcomeRefused
	if rec.Result.ID == "" {
		rec.Result.ID = newID(start)
	}
	rec.Result.Stages = append(rec.Result.Stages, Stage{Name: StageStart, Error: why.Error()})
	if rec.Result.Findings == nil {
		rec.Result.Findings, rec.Result.Processes = []Finding{}, []Process{}
		rec.Result.Probes.Attempts = []ProbeAttempt{}
	}
	if err := os.MkdirAll(stateDir, 0o750); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	return store{dir: stateDir}.audit(rec)
}

func (s store) audit(rec AuditRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(s.dir, auditFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	return f.Sync()
}
