package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// stateLost is a job the daemon accepted and never saw finish: it was
// killed (or crashed) while the job waited or ran. Its transaction, if it
// started, is in the reload history under the same id.
const stateLost = "lost"

// lostMessage is the error of a lost job.
const lostMessage = "accepted, but haguard serve stopped before the job finished (killed or crashed); " +
	"the transaction, if it ran, is in the history under this id, and the next transaction recovered the host"

// ledger keeps one small JSON file per job (its JobView, without the
// transaction) in a directory of haguard's state dir: written when the job
// is accepted and again when it ends. After a restart the queue loads it:
// a job that had finished answers as before, one that had not answers
// "lost", never 404. A zero ledger (no dir) keeps nothing.
type ledger struct {
	dir string
	log *slog.Logger
}

func (l ledger) path(id string) string { return filepath.Join(l.dir, id+".json") }

// put writes v (temp file and rename: a reader never sees half a file).
// A failure is logged, not returned: the job runs either way, and only
// its answer after a restart is at stake.
func (l ledger) put(v JobView) {
	if l.dir == "" {
		return
	}
	v.Transaction = nil
	b, err := json.Marshal(v)
	if err == nil {
		err = os.MkdirAll(l.dir, 0o700)
	}
	if err == nil {
		tmp := l.path(v.ID) + ".tmp"
		if err = os.WriteFile(tmp, b, 0o600); err == nil {
			err = os.Rename(tmp, l.path(v.ID))
		}
	}
	if err != nil {
		l.log.Warn("job ledger: cannot record the job; its id will not resolve after a restart", "id", v.ID, "err", err)
	}
}

func (l ledger) drop(id string) {
	if l.dir == "" {
		return
	}
	if err := os.Remove(l.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		l.log.Warn("job ledger: remove", "id", id, "err", err)
	}
}

// load reads the newest keep jobs, oldest first, and removes the files of
// older ones and of half-written ones. A job that had not finished is
// returned as lost.
func (l ledger) load(keep int) ([]JobView, error) {
	if l.dir == "" {
		return nil, nil
	}
	ents, err := os.ReadDir(l.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("job ledger: %w", err)
	}
	var ids []string
	for _, e := range ents {
		name := e.Name()
		id, ok := strings.CutSuffix(name, ".json")
		if !ok || !e.Type().IsRegular() || !validID(id) {
			if strings.HasSuffix(name, ".tmp") {
				_ = os.Remove(filepath.Join(l.dir, name))
			}
			continue
		}
		ids = append(ids, id)
	}
	sort.Strings(ids) // ids sort by the time they were accepted
	for len(ids) > keep {
		l.drop(ids[0])
		ids = ids[1:]
	}
	out := make([]JobView, 0, len(ids))
	for _, id := range ids {
		b, err := os.ReadFile(l.path(id))
		var v JobView
		if err == nil {
			err = json.Unmarshal(b, &v)
		}
		if err != nil || v.ID != id {
			l.log.Warn("job ledger: unreadable record, dropped", "id", id, "err", err)
			l.drop(id)
			continue
		}
		switch v.State {
		case stateQueued, stateRunning:
			v.State = stateLost
			v.Error = lostMessage
		}
		out = append(out, v)
	}
	return out, nil
}
