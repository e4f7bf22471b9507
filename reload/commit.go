package reload

import (
	"context"
	"errors"
)

// commit records the candidate as what runs: the journal's last stage,
// then running.json (which status compares with the disk for drift).
func (t *txn) commit(ctx context.Context, m Manifest) error {
	if t.deps.Pause != nil {
		t.deps.Pause(ctx, stageCommit)
	}
	if t.gen == nil {
		return errors.New("no generation after settle")
	}
	t.journal.Stage = stageCommit
	if err := t.store.writeCommitJournal(t.journal); err != nil {
		t.unrecorded(err) // running.json below is the record that counts
	}
	return t.setRunning(m.Identity(), m)
}

// setRunning records the set (its identity and manifest) as what the
// settled generation runs.
func (t *txn) setRunning(id string, m Manifest) error {
	return t.store.setRunning(Running{SHA256: id, Target: t.settings.Target, MasterPID: t.gen.MasterPID,
		Reloads: t.gen.Reloads, Time: t.now().UTC(), ID: t.res.ID, Manifest: m, Worker: newestWorker(*t.gen)})
}
