package reload

import (
	"context"
	"errors"
)

// commit records the candidate as what runs: the journal's last stage,
// then running.json (which status compares with the disk for drift).
func (t *txn) commit(ctx context.Context, newSHA string) error {
	if t.deps.Pause != nil {
		t.deps.Pause(ctx, stageCommit)
	}
	if t.gen == nil {
		return errors.New("no generation after settle")
	}
	t.journal.Stage = stageCommit
	if err := t.store.writeJournal(t.journal); err != nil {
		return err
	}
	return t.setRunning(newSHA)
}

// setRunning records sum as the config the settled generation runs.
func (t *txn) setRunning(sum string) error {
	return t.store.setRunning(Running{SHA256: sum, Target: t.settings.Target, MasterPID: t.gen.MasterPID,
		Reloads: t.gen.Reloads, Time: t.now().UTC(), ID: t.res.ID})
}
