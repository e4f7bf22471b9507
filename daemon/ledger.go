package daemon

import (
	"log/slog"
	"sync"

	"github.com/haguard/haguard/api"
	"github.com/haguard/haguard/reload"
)

// apiWho is the audit record's "who" of the transactions the API runs:
// the API counts those itself as they finish.
const apiWho = "api"

// ledger counts in the metrics the transactions that `haguard reload` and
// `haguard rollback` ran on the command line, read from the audit log
// after every sweep (so within one sweep interval). It starts at the end
// of the log: what ran before the daemon started is not counted, as
// counters start at zero. A change of state_dir (SIGHUP) starts over at
// the end of the new dir's log.
type ledger struct {
	metrics *api.Metrics
	log     *slog.Logger
	dir     func() string // the state dir of the current pieces

	mu   sync.Mutex
	tail *reload.AuditTail
}

func newLedger(m *api.Metrics, log *slog.Logger, dir func() string) *ledger {
	l := &ledger{metrics: m, log: log.With("loop", "audit"), dir: dir}
	l.tail = reload.NewAuditTail(dir())
	return l
}

// read counts the records appended since the last read.
func (l *ledger) read() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d := l.dir(); d != l.tail.Dir() {
		l.tail = reload.NewAuditTail(d)
		return
	}
	recs, err := l.tail.Read()
	if err != nil {
		l.log.Warn("reading the audit log for the metrics", "err", err)
	}
	for _, r := range recs {
		if r.Who == apiWho {
			continue
		}
		l.metrics.ObserveReload(outcomeOf(r.Result, recordResult(r)))
	}
}

// recordResult is an audit record's haguard_reloads_total result, as
// outcome gives it for the API's own transactions.
func recordResult(r reload.AuditRecord) string {
	switch r.Outcome {
	case reload.OutcomeCommitted:
		return api.ResultOK
	case reload.OutcomeUnchanged:
		if r.Result.OK {
			return api.ResultUnchanged
		}
	case reload.OutcomeRefused:
		return api.ResultRefused
	case reload.OutcomeRolledBack:
		return api.ResultRolledBack
	}
	return api.ResultFailed
}
