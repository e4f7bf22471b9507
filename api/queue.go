package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Job kinds and states.
const (
	kindReload   = "reload"
	kindRollback = "rollback"

	stateQueued    = "queued"
	stateRunning   = "running"
	stateDone      = "done"
	stateCancelled = "cancelled"
)

// errShuttingDown refuses new work while the server stops (503).
var errShuttingDown = errors.New("haguard is shutting down")

// job is one queued transaction. Requests that arrive while an identical
// job is still waiting join it (coalesce) and get its id.
type job struct {
	id         string
	kind       string
	key        string
	candidate  []byte
	files      map[string][]byte
	ifMatch    string
	rollbackTo string
	within     time.Duration

	state      string
	coalesced  int
	merged     int
	submitted  time.Time
	started    time.Time
	finished   time.Time
	outcome    *Outcome
	errMessage string
	// loaded is the job as the ledger kept it, for a job of an earlier
	// run of the daemon (then the fields above are empty).
	loaded *JobView
}

// JobView is the JSON form of a queued, running or finished transaction.
type JobView struct {
	ID        string `json:"id"`
	Kind      string `json:"kind"`
	State     string `json:"state"`
	Coalesced int    `json:"coalesced"`
	// Merged counts the requests with another candidate that joined
	// this reload while it waited (reload.min_interval): it runs the
	// newest of them. Joined, in the answer to a request, says that the
	// request joined this waiting reload rather than queued its own.
	Merged      int        `json:"merged"`
	Joined      bool       `json:"joined,omitempty"`
	SubmittedAt time.Time  `json:"submitted_at"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
	Result      string     `json:"result,omitempty"`
	DurationMS  int64      `json:"duration_ms,omitempty"`
	Error       string     `json:"error,omitempty"`
	// Transaction is the reload's Result as the Reloader reported it.
	Transaction any `json:"transaction,omitempty"`
}

func (j *job) view() JobView {
	if j.loaded != nil {
		return *j.loaded
	}
	v := JobView{ID: j.id, Kind: j.kind, State: j.state, Coalesced: j.coalesced, Merged: j.merged,
		SubmittedAt: j.submitted, Error: j.errMessage}
	if !j.started.IsZero() {
		t := j.started
		v.StartedAt = &t
	}
	if !j.finished.IsZero() {
		t := j.finished
		v.FinishedAt = &t
	}
	if j.outcome != nil {
		v.Result = j.outcome.Result
		v.DurationMS = j.outcome.Duration.Milliseconds()
		v.Transaction = j.outcome.Body
	}
	return v
}

// queue runs reloads and rollbacks one at a time, in arrival order, and
// coalesces identical waiting requests.
type queue struct {
	rel        Reloader
	hasher     ConfigHasher
	metrics    *Metrics
	log        *slog.Logger
	maxPending int
	keep       int
	ledger     ledger
	// merge, when set and true, lets a reload without If-Match replace
	// the candidate of the last waiting one without If-Match.
	merge func() bool

	mu       sync.Mutex
	running  *job
	pending  []*job
	jobs     map[string]*job
	finished []string // ids of finished jobs, oldest first
	last     *job
	closed   bool
	wake     chan struct{}
}

func newQueue(rel Reloader, hasher ConfigHasher, m *Metrics, log *slog.Logger, maxPending, keep int, l ledger) *queue {
	q := &queue{rel: rel, hasher: hasher, metrics: m, log: log, maxPending: maxPending, keep: keep, ledger: l,
		jobs: map[string]*job{}, wake: make(chan struct{}, 1)}
	views, err := l.load(keep)
	if err != nil {
		log.Warn("jobs of the previous run are not known", "err", err)
	}
	for i := range views {
		v := views[i]
		j := &job{id: v.ID, kind: v.Kind, state: v.State, loaded: &v}
		q.jobs[j.id] = j
		q.finished = append(q.finished, j.id)
		if v.State == stateDone {
			q.last = j
		}
		if v.State == stateLost {
			log.Warn("a job accepted by the previous run never finished", "id", v.ID, "kind", v.Kind, "submitted_at", v.SubmittedAt)
		}
	}
	return q
}

// submission is one request for the queue.
type submission struct {
	kind       string
	candidate  []byte
	files      map[string][]byte
	ifMatch    string
	rollbackTo string
	// confirmWithin opens a confirmation window (reloads only).
	confirmWithin time.Duration
	// wait=false refuses with *BusyError when anything runs or waits.
	wait bool
}

// submit queues s, or joins an identical waiting job. It reports whether
// the request was coalesced.
func (q *queue) submit(s submission) (JobView, bool, error) {
	sum := sha256.Sum256(s.candidate)
	cand := ""
	switch {
	case len(s.files) > 0:
		cand = "set:" + filesKey(s.files)
	case len(s.candidate) > 0:
		cand = hex.EncodeToString(sum[:])
	}
	key := s.kind + "\x00" + cand + "\x00" + s.ifMatch + "\x00" + s.rollbackTo + "\x00" + s.confirmWithin.String()

	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return JobView{}, false, errShuttingDown
	}
	if !s.wait && (q.running != nil || len(q.pending) > 0) {
		busy := &BusyError{}
		if q.running != nil {
			busy.Running = q.running.id
		} else {
			busy.Running = q.pending[0].id
		}
		return JobView{}, false, busy
	}
	for _, p := range q.pending {
		if p.key == key {
			p.coalesced++
			v := p.view()
			v.Joined = true
			return v, true, nil
		}
	}
	if n := len(q.pending); n > 0 && q.merge != nil && s.kind == kindReload && s.ifMatch == "" && q.merge() {
		// A newer full candidate supersedes the waiting one: installed
		// one after the other, the first would run only until the next.
		if p := q.pending[n-1]; p.kind == kindReload && p.ifMatch == "" {
			p.key, p.candidate, p.files = key, s.candidate, s.files
			p.merged++
			v := p.view()
			v.Joined = true
			return v, true, nil
		}
	}
	if len(q.pending) >= q.maxPending {
		return JobView{}, false, &QueueFullError{Depth: len(q.pending)}
	}
	j := &job{id: newJobID(), kind: s.kind, key: key, candidate: s.candidate, files: s.files, ifMatch: s.ifMatch,
		rollbackTo: s.rollbackTo, within: s.confirmWithin, state: stateQueued, submitted: time.Now().UTC()}
	q.pending = append(q.pending, j)
	q.jobs[j.id] = j
	q.ledger.put(j.view()) // before the 202: the id must survive a crash
	select {
	case q.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
	return j.view(), false, nil
}

// get returns a job the queue still remembers.
func (q *queue) get(id string) (JobView, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	j, ok := q.jobs[id]
	if !ok {
		return JobView{}, false
	}
	return j.view(), true
}

// active lists the running job, then the waiting ones.
func (q *queue) active() []JobView {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]JobView, 0, len(q.pending)+1)
	if q.running != nil {
		out = append(out, q.running.view())
	}
	for _, p := range q.pending {
		out = append(out, p.view())
	}
	return out
}

// lastFinished is the most recent finished job.
func (q *queue) lastFinished() (JobView, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.last == nil {
		return JobView{}, false
	}
	return q.last.view(), true
}

// run executes jobs until ctx ends. A job that has started is never cut
// short by ctx: it runs on a context without cancel, so that the
// transaction finishes or rolls back on its own terms (its own timeouts
// bound it). Jobs still waiting when ctx ends are cancelled.
func (q *queue) run(ctx context.Context) error {
	jobCtx := context.WithoutCancel(ctx)
	for {
		if ctx.Err() != nil {
			q.close()
			return nil
		}
		j := q.next()
		if j == nil {
			select {
			case <-ctx.Done():
				q.close()
				return nil
			case <-q.wake:
			}
			continue
		}
		q.execute(jobCtx, j)
	}
}

func (q *queue) next() *job {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) == 0 {
		return nil
	}
	j := q.pending[0]
	q.pending[0] = nil
	q.pending = q.pending[1:]
	j.state = stateRunning
	j.started = time.Now().UTC()
	q.running = j
	return j
}

func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	now := time.Now().UTC()
	for _, p := range q.pending {
		p.state = stateCancelled
		p.errMessage = errShuttingDown.Error()
		p.finished = now
		p.candidate, p.files = nil, nil
		q.remember(p)
		q.ledger.put(p.view())
	}
	q.pending = nil
}

// execute runs one job and records its outcome.
func (q *queue) execute(ctx context.Context, j *job) {
	log := q.log.With("id", j.id, "kind", j.kind)
	// If-Match was checked at submission (412); the Reloader checks it
	// again under its lock, where nothing can change the config between
	// the comparison and the install (a stale tag ends the job refused).
	out, err := q.call(ctx, j)
	if out.Result == "" {
		out.Result = ResultOK
		if err != nil {
			out.Result = ResultFailed
		}
	}
	q.metrics.ObserveReload(out)
	if sha, herr := q.hasher.RunningSHA256(ctx); herr == nil {
		q.metrics.SetConfig(sha)
	}

	q.mu.Lock()
	j.state = stateDone
	j.finished = time.Now().UTC()
	j.outcome = &out
	j.candidate, j.files = nil, nil
	if err != nil {
		j.errMessage = err.Error()
	}
	q.running = nil
	q.remember(j)
	q.ledger.put(j.view())
	q.mu.Unlock()

	if err != nil {
		log.Warn("transaction finished with an error", "result", out.Result, "err", err)
		return
	}
	log.Info("transaction finished", "result", out.Result, "duration", out.Duration, "coalesced", j.coalesced)
}

// call runs the transaction. A panic in it fails the job instead of the
// daemon: the reload's journal lets the next transaction recover the host.
func (q *queue) call(ctx context.Context, j *job) (out Outcome, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, err = Outcome{Result: ResultFailed}, fmt.Errorf("transaction panicked: %v", p)
		}
	}()
	if j.kind == kindRollback {
		return q.rel.Rollback(ctx, RollbackRequest{ID: j.id, To: j.rollbackTo, IfMatch: j.ifMatch})
	}
	return q.rel.Reload(ctx, ReloadRequest{ID: j.id, Candidate: j.candidate, Files: j.files, IfMatch: j.ifMatch, ConfirmWithin: j.within})
}

// remember keeps a finished job for GET /v1/reloads/{id}, forgetting the
// oldest beyond q.keep. The caller holds q.mu.
func (q *queue) remember(j *job) {
	q.last = j
	q.finished = append(q.finished, j.id)
	for len(q.finished) > q.keep {
		delete(q.jobs, q.finished[0])
		q.ledger.drop(q.finished[0])
		q.finished = q.finished[1:]
	}
}

// newJobID is a sortable, unique, path-safe id in the reload history's
// format, 20261128T020304.567Z-1a2b3c4d: the Reloader uses it as the
// transaction's id, so a job's Location is its history entry too.
func newJobID() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return time.Now().UTC().Format("20060102T150405.000Z") + "-" + hex.EncodeToString(b[:])
}
