package reload

import (
	"context"
	"fmt"
	"os"
)

// snapshot keeps what the install would lose: the config to roll back to
// (the running one), the file on disk when it differs from both (edited
// without a reload), and the candidate. It writes the history entry and
// the journal, and returns the sha256 to roll back to ("" when haguard
// does not know a good config).
func (t *txn) snapshot(ctx context.Context, p plan) (string, error) {
	var rollbackSHA string
	newSHA := sha(p.newBytes)
	err := t.stage(ctx, StageSnapshot, func() (string, error) {
		var detail string
		switch {
		case p.runningSHA != "" && t.hasBlob(p.runningSHA):
			rollbackSHA = p.runningSHA
			detail = fmt.Sprintf("running config %s already in history", short(rollbackSHA))
		case t.opt.Candidate != "" && p.diskBytes != nil:
			sum, err := t.store.putBlob(p.diskBytes)
			if err != nil {
				return "", err
			}
			rollbackSHA = sum
			detail = fmt.Sprintf("saved %s (sha256 %s)", t.settings.Target, short(sum))
		default:
			detail = "no known-good config to roll back to (first in-place reload, or reloaded outside haguard)"
		}
		// The install overwrites the file on disk; when that is not the
		// rollback snapshot (edited without a reload), keep it too, or
		// the edits would be lost with no copy anywhere.
		var replacedSHA string
		if p.diskBytes != nil {
			if ds := sha(p.diskBytes); ds != rollbackSHA && ds != newSHA {
				if _, err := t.store.putBlob(p.diskBytes); err != nil {
					return "", err
				}
				replacedSHA = ds
				detail += fmt.Sprintf("; %s differed from what runs: saved it as sha256 %s", t.settings.Target, short(ds))
			}
		}
		if _, err := t.store.putBlob(p.newBytes); err != nil {
			return "", err
		}
		t.entry = &Entry{ID: t.res.ID, Time: t.start.UTC(), Who: t.opt.Who, Reason: t.opt.Reason,
			Target: t.settings.Target, BeforeSHA256: rollbackSHA, AfterSHA256: newSHA, ReplacedSHA256: replacedSHA,
			Outcome: OutcomeRunning}
		if err := t.store.putEntry(*t.entry); err != nil {
			return "", err
		}
		t.journal = Journal{ID: t.res.ID, PID: os.Getpid(), Start: t.start.UTC(), Target: t.settings.Target,
			CandidateSHA256: newSHA, RollbackSHA256: rollbackSHA}
		return detail, t.store.writeJournal(t.journal)
	})
	return rollbackSHA, err
}

func (t *txn) hasBlob(sum string) bool {
	_, err := t.store.blob(sum)
	return err == nil
}

// install writes the candidate over the target (atomically: the old bytes
// or the new ones, never a mix). From here on the journal says the target
// may hold the candidate.
func (t *txn) install(ctx context.Context, data []byte) error {
	t.journal.Installed = true
	return t.stage(ctx, StageInstall, func() (string, error) {
		wrote, err := writeAtomic(t.settings.Target, data, 0o644)
		if err != nil {
			return "", err
		}
		if !wrote {
			return fmt.Sprintf("%s already holds sha256 %s; not rewritten", t.settings.Target, short(sha(data))), nil
		}
		return fmt.Sprintf("installed sha256 %s at %s", short(sha(data)), t.settings.Target), nil
	})
}
