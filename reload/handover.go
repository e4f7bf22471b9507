package reload

import (
	"context"
	"fmt"
)

// StageRestore sets again, in the new generation, the runtime server
// state the reload would lose (handover.go).
const StageRestore = "restore"

// stateKeeper carries runtime server state across a reload: Keep reads
// the servers from the current generation before the reload; restore
// sets again in the new one what carries over, given the config set
// before and after (a server whose line changed starts fresh).
type stateKeeper interface {
	Keep(ctx context.Context) (restore func(ctx context.Context, before, after ConfigSet) (string, error), err error)
}

// keepState reads the servers' runtime state before the install; nil
// without a keeper, or when it cannot be read (the reload goes on: the
// state is then lost, as with a plain reload, and the log says so).
func (t *txn) keepState(ctx context.Context) func(context.Context, ConfigSet, ConfigSet) (string, error) {
	if t.deps.State == nil {
		return nil
	}
	restore, err := t.deps.State.Keep(ctx)
	if err != nil {
		t.log.Warn("server state not kept across the reload", "id", t.res.ID, "err", err)
		return nil
	}
	return restore
}

// restoreState runs the restore stage. It never fails the reload: a
// state it could not set again is said in the stage's detail and logged.
// restore returns "" when there was nothing to carry or drop.
func (t *txn) restoreState(ctx context.Context, p plan, restore func(context.Context, ConfigSet, ConfigSet) (string, error)) {
	before := ConfigSet{Files: expandFiles(t.settings.Files, nil), Read: func(path string) ([]byte, bool) {
		b, ok := p.disk[path]
		return b, ok && b != nil
	}}
	after := ConfigSet{Files: p.configs, Read: func(path string) ([]byte, bool) {
		b := p.content(path)
		return b, b != nil
	}}
	// Recorded only when there was something to carry or to drop: most
	// reloads have no runtime state, and their report stays as it was.
	begin := t.now()
	detail, err := restore(ctx, before, after)
	if detail == "" && err == nil {
		return
	}
	if err != nil {
		t.log.Warn("server state not fully restored", "id", t.res.ID, "err", err)
		detail = fmt.Sprintf("%s; not restored: %v", detail, err)
	}
	t.prog.stageStarted(StageRestore)
	st := Stage{Name: StageRestore, OK: true, DurationMS: t.now().Sub(begin).Milliseconds(), Detail: detail}
	t.res.Stages = append(t.res.Stages, st)
	t.prog.stageEnded(st, t.res)
}
