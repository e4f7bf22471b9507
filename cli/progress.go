package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/haguard/haguard/reload"
	"github.com/haguard/haguard/validate"
)

// A transaction is shown as it happens (docs/cli.md, "Progress"):
//
//   - on a terminal (human format, stdout a TTY): each stage when it
//     starts, on a line that a spinner keeps alive with the elapsed time
//     and what the stage waits for, then replaced by the stage's checklist
//     line with its duration; the report's remaining lines follow;
//   - human format elsewhere (a pipe, the journal): no spinner and no
//     control characters; the report at the end, as always, and a wait
//     for the lock said at once on stderr;
//   - --format jsonl: every reload.Event as one JSON object per line, as
//     it happens, then the result as {"type":"result","result":...};
//   - --format json: one document at the end, as always.

// terminal returns w as a terminal, or nil when it is not one.
func terminal(w io.Writer) *os.File {
	f, ok := w.(*os.File)
	if !ok {
		return nil
	}
	if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err != nil {
		return nil
	}
	return f
}

// progress picks how this command shows a transaction: the callback for
// reload.Options.Progress (nil: nothing live), and the live view whose
// stages the report then leaves out (nil unless on a terminal). several
// is true when the command runs for several units (their reports are
// printed one after another: nothing live).
func (a *app) progress(several bool) (func(reload.Event), *liveView) {
	switch {
	case a.format == "jsonl":
		var mu sync.Mutex
		enc := json.NewEncoder(a.stdout)
		return func(e reload.Event) {
			mu.Lock()
			defer mu.Unlock()
			_ = enc.Encode(e)
		}, nil
	case a.format != "human":
		return nil, nil
	}
	if tty := terminal(a.stdout); tty != nil && !several && os.Getenv("TERM") != "dumb" {
		v := newLiveView(tty)
		return v.event, v
	}
	return func(e reload.Event) {
		switch {
		case e.Type == reload.EventLockWait:
			fmt.Fprintf(a.stderr, "haguard: waiting for the lock held by %s\n", e.Detail)
		case e.Type == reload.EventWait && strings.HasPrefix(e.Detail, "reload.min_interval"):
			fmt.Fprintf(a.stderr, "haguard: %s (--no-wait fails fast instead)\n", e.Detail)
		}
	}, nil
}

// liveView draws a transaction on a terminal.
type liveView struct {
	w      *os.File
	frames []string

	mu     sync.Mutex
	header bool
	stage  string // the stage (or "lock") the spinner line shows; "" for none
	label  string
	since  time.Time
	frame  int
	drawn  bool // a spinner line is on screen
	shown  map[string]bool
	stop   chan struct{}
	done   chan struct{}
}

func newLiveView(w *os.File) *liveView {
	v := &liveView{w: w, shown: map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{}),
		frames: []string{"|", "/", "-", `\`}}
	if utf8Locale() {
		v.frames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}
	}
	go v.spin()
	return v
}

func utf8Locale() bool {
	for _, k := range []string{"LC_ALL", "LC_CTYPE", "LANG"} {
		if v := os.Getenv(k); v != "" {
			v = strings.ToLower(v)
			return strings.Contains(v, "utf-8") || strings.Contains(v, "utf8")
		}
	}
	return false
}

// spin redraws the spinner line ten times a second until close.
func (v *liveView) spin() {
	defer close(v.done)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-v.stop:
			return
		case <-t.C:
			v.mu.Lock()
			v.frame++
			v.draw()
			v.mu.Unlock()
		}
	}
}

// close stops the spinner and clears its line; the report follows.
func (v *liveView) close() {
	if v == nil {
		return
	}
	select {
	case <-v.stop:
		return
	default:
	}
	close(v.stop)
	<-v.done
	v.mu.Lock()
	defer v.mu.Unlock()
	v.clear()
}

// shownStage reports whether the stage's line was printed live.
func (v *liveView) shownStage(name string) bool {
	if v == nil {
		return false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.shown[name]
}

// headerShown reports whether "haguard reload ID" was printed live.
func (v *liveView) headerShown() bool {
	if v == nil {
		return false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.header
}

func (v *liveView) clear() {
	if v.drawn {
		fmt.Fprint(v.w, "\r\033[K")
		v.drawn = false
	}
}

func (v *liveView) draw() {
	if v.stage == "" {
		return
	}
	line := fmt.Sprintf("%s %s (%s)", v.frames[v.frame%len(v.frames)], v.label, elapsed(time.Since(v.since)))
	if ws, err := unix.IoctlGetWinsize(int(v.w.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 1 {
		if r := []rune(line); len(r) >= int(ws.Col) {
			line = string(r[:int(ws.Col)-2]) + "…"
		}
	}
	fmt.Fprint(v.w, "\r\033[K"+line)
	v.drawn = true
}

// println prints a line that stays, above the spinner.
func (v *liveView) println(format string, args ...any) {
	v.clear()
	fmt.Fprintf(v.w, format+"\n", args...)
}

// event is reload.Options.Progress.
func (v *liveView) event(e reload.Event) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.header && e.ID != "" {
		v.println("haguard reload %s", e.ID)
		v.header = true
	}
	switch e.Type {
	case reload.EventLockWait:
		v.println("waiting for the lock held by %s", e.Detail)
		v.stage, v.label, v.since = "lock", "waiting for the lock", time.Now()
	case reload.EventStageStart:
		v.stage, v.label, v.since = e.Stage, stageVerb(e.Stage), time.Now()
	case reload.EventWait:
		v.label = stageVerb(e.Stage) + ": waiting for " + e.Detail
	case reload.EventStep:
		if e.Stage == reload.StageRollback || e.Stage == reload.StageRecover {
			v.println("    %s: %s", e.Stage, e.Detail)
		}
		v.label = stageVerb(e.Stage) + ": " + e.Detail
	case reload.EventStageEnd:
		v.clear()
		if e.Stage == reload.StageCheck {
			writeCheckDetails(v.w, e.Findings, e.Diagnostics)
		}
		ok := e.OK != nil && *e.OK
		alerts, _ := validate.CountDiagnostics(e.Diagnostics)
		// A snapshot with nothing to roll back to is a warning (as in
		// the report).
		warn := e.Stage == reload.StageSnapshot && strings.HasPrefix(e.Detail, "no known-good")
		fmt.Fprintf(v.w, "%s %s (%s)\n", mark(ok && !warn), stageText(reload.Stage{Name: e.Stage, OK: ok, Detail: e.Detail, Error: e.Error}, alerts),
			elapsed(time.Duration(e.DurationMS)*time.Millisecond))
		v.shown[e.Stage] = true
		v.stage = ""
	}
	v.draw()
}

// stageVerb is what the spinner says while a stage runs.
func stageVerb(stage string) string {
	switch stage {
	case reload.StageRecover:
		return "recovering a run that died"
	case reload.StageCheck:
		return "checking (lint + haproxy -c)"
	case reload.StageSnapshot:
		return "snapshot"
	case reload.StageInstall:
		return "installing"
	case reload.StageReload:
		return "reloading"
	case reload.StageSettle:
		return "settling"
	case reload.StageRestore:
		return "restoring runtime server state"
	case reload.StageSweep:
		return "sweeping"
	case reload.StageProbe:
		return "probing"
	case reload.StageRollback:
		return "ROLLING BACK"
	}
	return stage
}

func mark(ok bool) string {
	if ok {
		return "[x]"
	}
	return "[!]"
}

// elapsed is a duration as the checklist prints it: 85 ms, 1.2 s, 2m3s.
func elapsed(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return d.Round(time.Second).String()
}
