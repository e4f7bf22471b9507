package reload

import (
	"encoding/json"
	"errors"
	"fmt"
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
	// BeforeSHA256 is the config that ran before (the rollback snapshot);
	// empty when haguard did not know it.
	BeforeSHA256 string `json:"before_sha256"`
	AfterSHA256  string `json:"after_sha256"`
	// Outcome: running, committed, unchanged, refused, rolled_back, broken,
	// recovered (a run that died and the next run rolled back).
	Outcome    string `json:"outcome"`
	DurationMS int64  `json:"duration_ms"`
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

func (s store) putBlob(data []byte) (string, error) {
	sum := sha(data)
	if err := os.MkdirAll(s.blobDir(), 0o750); err != nil {
		return "", fmt.Errorf("history dir: %w", err)
	}
	if _, err := os.Stat(s.blobPath(sum)); err == nil {
		return sum, nil
	}
	if _, err := writeAtomic(s.blobPath(sum), data, 0o640); err != nil {
		return "", fmt.Errorf("snapshot: %w", err)
	}
	return sum, nil
}

func (s store) blob(sum string) ([]byte, error) {
	if sum == "" {
		return nil, fs.ErrNotExist
	}
	b, err := os.ReadFile(s.blobPath(sum))
	if err != nil {
		return nil, fmt.Errorf("history blob %s: %w", short(sum), err)
	}
	if sha(b) != sum {
		return nil, fmt.Errorf("history blob %s: content does not match its sha256", short(sum))
	}
	return b, nil
}

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
	for _, e := range es {
		live[e.BeforeSHA256], live[e.AfterSHA256] = true, true
	}
	if r, err := s.running(); err == nil {
		live[r.SHA256] = true
	}
	if j, err := s.journal(); err == nil {
		live[j.RollbackSHA256], live[j.CandidateSHA256] = true, true
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
	SHA256    string    `json:"sha256"`
	Target    string    `json:"target"`
	MasterPID int       `json:"master_pid"`
	Reloads   int       `json:"reloads"`
	Time      time.Time `json:"time"`
	ID        string    `json:"id"`
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

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
