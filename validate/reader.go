package validate

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ReadOptions say who reads the configuration, so that haguard reads it
// the same way: the environment its variables come from and the binary
// its conditional blocks are evaluated for.
type ReadOptions struct {
	// Env is haproxy's environment: for a reload, what the unit gives
	// haproxy (Environment=, EnvironmentFile=); on the command line,
	// haguard's own. nil means this process's environment; an empty map,
	// no variable at all.
	Env map[string]string
	// Target is the binary that will read the files (ProbeTarget,
	// Targets.Get). nil: unknown, so version_atleast() is true,
	// version_before() and feature() false.
	Target *Target
	// MasterWorker says the files are read by a master-worker reload (-W,
	// -Ws, or "master-worker" in global): the master re-executes itself
	// with the environment of its first start, so HAPROXY_MWORKER=1 and
	// HAPROXY_CFGFILES are defined. `haproxy -c` and a first start do not
	// define them.
	MasterWorker bool
	// LocalPeer is haproxy's -L, which sets HAPROXY_LOCALPEER; "" means
	// the host name, haproxy's default.
	LocalPeer string
	// Raw reads every line as written, for the candidate policy: words
	// split and kept with their quotes and escapes (the policy decodes
	// them as haproxy does), no variable expanded, and the lines of every
	// .if branch kept, the .if/.elif/.else/.endif lines among them. A
	// raw reading notes nothing and refuses nothing.
	Raw bool
}

// NoteKind says what the reader noticed.
type NoteKind string

// What the reader notices on its way, for the rules of reader.go's family.
const (
	// NoteUnsetVar: a live line reads a variable that is not set and has
	// no default.
	NoteUnsetVar NoteKind = "unset-variable"
	// NoteRefused: haproxy refuses the line (or the file): a quote left
	// open, a bad variable reference, a malformed .if, an .alert, a file
	// without a final LF...
	NoteRefused NoteKind = "refused"
	// NoteMessage: a .warning, .notice or .diag line in a live block.
	NoteMessage NoteKind = "message"
	// NoteLiteralVar: "$NAME" written outside double quotes, which haproxy
	// reads as it is.
	NoteLiteralVar NoteKind = "literal-variable"
)

// Note is one thing the reader noticed.
type Note struct {
	Pos  Pos
	Kind NoteKind
	// Level is the severity haproxy gives a message: .warning a warning,
	// .notice and .diag info.
	Level Severity
	Text  string
	Var   string // NoteUnsetVar: the variable
}

// condState is the state of one .if level, as in src/cfgparse.c.
type condState uint8

const (
	condIfTake condState = iota
	condIfDrop
	condIfSkip // inside a dropped block: not even evaluated
	condElifTake
	condElifDrop
	condElifSkip // an earlier branch was taken
	condElseTake
	condElseDrop
)

func (s condState) live() bool { return s == condIfTake || s == condElifTake || s == condElseTake }

// branch is taken when ok, else dropped.
func branch(ok bool, taken, dropped condState) condState {
	if ok {
		return taken
	}
	return dropped
}

// maxNestedConds is MAXNESTEDCONDS.
const maxNestedConds = 100

// reading is the state haproxy carries from line to line: the
// environment (which "setenv" and friends change), the position for
// the pseudo-variables, the conditional blocks.
type reading struct {
	lex     lexer
	env     map[string]string
	target  *Target
	file    string
	line    int
	section *string // nil: no section yet in this file (unset)
	conds   []condState
	global  map[string]bool // global keywords read so far, for enabled()
	outCap  int             // readcfgfile()'s output buffer, per file
	notes   []Note
	// aborted: haproxy stops reading every file (ERR_ABORT).
	aborted bool
	// raw: see ReadOptions.Raw.
	raw bool
}

func newReading(opts ReadOptions, files []string) *reading {
	r := &reading{target: opts.Target, global: map[string]bool{}, raw: opts.Raw}
	r.env = map[string]string{}
	if opts.Env == nil {
		for _, kv := range os.Environ() {
			if k, v, ok := strings.Cut(kv, "="); ok {
				r.env[k] = v
			}
		}
	} else {
		for k, v := range opts.Env {
			r.env[k] = v
		}
	}
	// What haproxy sets itself before reading the files.
	peer := opts.LocalPeer
	if opts.Target != nil {
		for k, v := range opts.Target.Presets {
			switch k {
			case "HAPROXY_STARTUP_VERSION": // set only when absent
				if _, ok := r.env[k]; !ok {
					r.env[k] = v
				}
			case "HAPROXY_LOCALPEER":
				if peer == "" {
					peer = v
				}
			case "HAPROXY_CFGFILES", "HAPROXY_MWORKER": // only after reading
			default:
				r.env[k] = v
			}
		}
	}
	if peer == "" {
		peer, _ = os.Hostname()
	}
	r.env["HAPROXY_LOCALPEER"] = peer
	if opts.MasterWorker {
		r.env["HAPROXY_MWORKER"] = "1"
		r.env["HAPROXY_CFGFILES"] = strings.Join(files, ";")
	}
	r.lex = lexer{lookup: r.lookup, unsetEatsQuote: opts.Target != nil && opts.Target.UnsetEatsQuote}
	return r
}

// lookup answers a variable reference: the environment, or a
// pseudo-variable.
func (r *reading) lookup(name string) (string, bool) {
	switch name {
	case ".LINE":
		return strconv.Itoa(r.line), true
	case ".FILE":
		return r.file, true
	case ".SECTION":
		if r.section == nil {
			return "", false
		}
		return *r.section, true
	}
	v, ok := r.env[name]
	return v, ok
}

func (r *reading) note(n Note) { r.notes = append(r.notes, n) }

func (r *reading) refuse(pos Pos, format string, args ...any) {
	r.note(Note{Pos: pos, Kind: NoteRefused, Level: SevError, Text: fmt.Sprintf(format, args...)})
}

// startFile: every file starts outside any section and any .if.
func (r *reading) startFile(file string) {
	r.file, r.line, r.section, r.conds, r.outCap = file, 0, nil, r.conds[:0], 0
}

// outgrow replays a quirk of haproxy's reader, found by
// FuzzTokenizeAgainstHAProxy: parse_line() ends the default value of
// "${NAME-default}" by writing a NUL over its closing brace, in the line
// itself. When the words do not fit readcfgfile()'s output buffer (the
// first line of every file, then any line longer than all before it,
// in steps of 1024 bytes), the buffer grows and the line is read again:
// that second reading finds the brace gone and refuses the line with
// "unmatched brace". It returns that error, or nil.
func (r *reading) outgrow(lx *lexed, lead int) *LexError {
	if lx.outLen <= r.outCap {
		return nil
	}
	r.outCap = (lx.outLen + 1023) &^ 1023
	if lx.defaultAt < 0 {
		return nil
	}
	return &LexError{Col: lead + lx.defaultAt + 1, Msg: lexBrace}
}

// endFile reports an .if left open.
func (r *reading) endFile(pos Pos) {
	if len(r.conds) > 0 && !r.aborted {
		r.refuse(pos, "non-terminated '.if' block")
		r.aborted = true
	}
}

// live reports whether the current line is in a live branch.
func (r *reading) live() bool {
	return len(r.conds) == 0 || r.conds[len(r.conds)-1].live()
}

// directive handles a line whose first word starts with '.'. It returns
// true when the line is consumed (a conditional, a message, or a line
// haproxy refuses).
func (r *reading) directive(words []string, pos Pos) bool {
	arg := func(i int) string {
		if i < len(words) {
			return words[i]
		}
		return ""
	}
	top := func() *condState { return &r.conds[len(r.conds)-1] }
	switch words[0] {
	case ".if":
		if len(r.conds)+1 >= maxNestedConds {
			r.refuse(pos, "too many nested '.if', max is %d", maxNestedConds)
			r.aborted = true
			return true
		}
		if !r.live() {
			r.conds = append(r.conds, condIfSkip)
			return true
		}
		ok, err := r.eval(words)
		if err != nil {
			r.refuse(pos, "%v in '.if'", err)
			r.aborted = true
			return true
		}
		r.conds = append(r.conds, branch(ok, condIfTake, condIfDrop))
		return true
	case ".elif":
		if len(r.conds) == 0 {
			r.refuse(pos, "lone '.elif' with no matching '.if'")
			r.aborted = true
			return true
		}
		switch *top() {
		case condElseTake, condElseDrop:
			r.refuse(pos, "'.elif' after '.else' is not permitted")
			r.aborted = true
		case condIfTake, condIfSkip, condElifTake, condElifSkip:
			*top() = condElifSkip
		default:
			ok, err := r.eval(words)
			if err != nil {
				r.refuse(pos, "%v in '.elif'", err)
				r.aborted = true
				return true
			}
			*top() = branch(ok, condElifTake, condElifDrop)
		}
		return true
	case ".else", ".endif":
		if arg(1) != "" {
			r.refuse(pos, "Unexpected argument '%s' for '%s'", arg(1), words[0])
			r.aborted = true
			return true
		}
		if len(r.conds) == 0 {
			r.refuse(pos, "lone '%s' with no matching '.if'", words[0])
			r.aborted = true
			return true
		}
		if words[0] == ".endif" {
			r.conds = r.conds[:len(r.conds)-1]
			return true
		}
		switch *top() {
		case condElseTake, condElseDrop:
			r.refuse(pos, "'.else' after '.else' is not permitted")
			r.aborted = true
		case condIfTake, condIfSkip, condElifTake, condElifSkip:
			*top() = condElseDrop
		default:
			*top() = condElseTake
		}
		return true
	}
	if !r.live() {
		return true
	}
	level := map[string]Severity{".alert": SevError, ".warning": SevWarning, ".notice": SevInfo, ".diag": SevInfo}
	sev, ok := level[words[0]]
	if !ok {
		r.refuse(pos, "unknown directive '%s'", words[0])
		return true
	}
	if arg(2) != "" {
		r.refuse(pos, "Unexpected argument '%s' for '%s'. Use quotes if the message should contain spaces", arg(2), words[0])
		return true
	}
	if words[0] == ".alert" {
		r.refuse(pos, ".alert '%s': haproxy refuses the configuration", arg(1))
		r.aborted = true
		return true
	}
	r.note(Note{Pos: pos, Kind: NoteMessage, Level: sev, Text: fmt.Sprintf("%s '%s'", words[0], arg(1))})
	return true
}

// eval evaluates the condition of an .if/.elif line.
func (r *reading) eval(words []string) (bool, error) {
	return evalCondition(strings.Join(words[1:], " "), condEnv{
		target:  r.target,
		lookup:  func(n string) (string, bool) { v, ok := r.env[n]; return v, ok },
		enabled: r.enabled,
	})
}

// enabled is enabled(OPT) (2.8+): the runtime options the global section
// read so far leaves on.
func (r *reading) enabled(opt string) bool {
	hasPoller := func(p string) bool {
		if r.target == nil {
			return p == "epoll" || p == "poll"
		}
		for _, q := range r.target.Pollers {
			if q == p {
				return true
			}
		}
		return false
	}
	switch opt {
	case "POLL":
		return hasPoller("poll") && !r.global["nopoll"]
	case "EPOLL", "KQUEUE": // haproxy 2.8-3.x answer KQUEUE from the EPOLL bit
		return hasPoller("epoll") && !r.global["noepoll"]
	case "EVPORTS":
		return hasPoller("evports") && !r.global["noevports"]
	case "SPLICE":
		return r.target.hasFeature("LINUX_SPLICE") && !r.global["nosplice"]
	case "GETADDRINFO":
		return r.target.hasFeature("GETADDRINFO") && !r.global["nogetaddrinfo"]
	case "REUSEPORT":
		return !r.global["noreuseport"]
	case "FAST-FORWARD":
		return !r.global["tune.disable-fast-forward"]
	case "SERVER-SSL-VERIFY-NONE":
		return r.global["ssl-server-verify none"]
	}
	return false
}

// globalKeyword applies the global keywords that change how the rest of
// the files read: the environment (setenv, presetenv, unsetenv,
// resetenv), the local peer name, and the options enabled() reads.
func (r *reading) globalKeyword(w []string) {
	switch w[0] {
	case "setenv", "presetenv":
		if len(w) == 3 && w[2] != "" {
			if _, set := r.env[w[1]]; w[0] == "setenv" || !set {
				r.env[w[1]] = w[2]
			}
		}
	case "unsetenv":
		for _, n := range w[1:] {
			delete(r.env, n)
		}
	case "resetenv":
		keep := map[string]bool{}
		for _, n := range w[1:] {
			keep[n] = true
		}
		for k := range r.env {
			if !keep[k] {
				delete(r.env, k)
			}
		}
	case "localpeer":
		if len(w) >= 2 {
			r.env["HAPROXY_LOCALPEER"] = w[1]
		}
	case "ssl-server-verify":
		r.global["ssl-server-verify none"] = len(w) >= 2 && w[1] == "none"
	default:
		r.global[w[0]] = true
	}
}
