package daemon

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/haguard/haguard/api"
	"github.com/haguard/haguard/host"
)

// lintTimeout bounds one check of the running config (haproxy -c and the
// facts of facts.mode).
const lintTimeout = time.Minute

// runningLint keeps haguard_findings equal to the findings of the running
// config, and of nothing else: a candidate checked through the API, or
// one a reload refused, never reaches the metric. The running config is
// checked again whenever its identity changes (after a transaction, or an
// edit made outside haguard, seen by the next sweep) and after SIGHUP
// (haguard.yaml may change the facts or the lint).
type runningLint struct {
	metrics *api.Metrics
	log     *slog.Logger
	check   func(ctx context.Context) (map[string]int, error)

	mu     sync.Mutex
	linted string // the identity whose findings the metric shows
}

func newRunningLint(m *api.Metrics, log *slog.Logger, check func(ctx context.Context) (map[string]int, error)) *runningLint {
	return &runningLint{metrics: m, log: log.With("loop", "lint"), check: check}
}

// follow checks the running config if its identity is not the one last
// checked. A check that cannot run leaves the metric as it was and is
// tried again at the next call.
func (l *runningLint) follow(sha string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if sha == "" || sha == l.linted {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), lintTimeout)
	defer cancel()
	counts, err := l.check(ctx)
	if err != nil {
		l.log.Warn("checking the running config for haguard_findings", "err", err)
		return
	}
	l.metrics.ObserveFindings(counts)
	l.linted = sha
}

// reset makes the next follow check again (SIGHUP).
func (l *runningLint) reset() {
	l.mu.Lock()
	l.linted = ""
	l.mu.Unlock()
}

// checkRunning is the check of the running config by the current pieces.
func checkRunning(cur func() *pieces) func(ctx context.Context) (map[string]int, error) {
	return func(ctx context.Context) (map[string]int, error) {
		rep, err := cur().host.Check(ctx, host.CheckOptions{})
		if err != nil {
			return nil, err
		}
		return severityCounts(rep.Findings), nil
	}
}
