package validate

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// SyntaxResult is the verdict of `haproxy -c`.
type SyntaxResult struct {
	OK      bool   `json:"ok"`
	Command string `json:"command"`
	// Output is haproxy's stdout and stderr, verbatim (its warnings
	// included), for a trusted check; for an untrusted one, filtered
	// (Withheld). haguard's own notes (timeout, memory) are lines that
	// start with "haguard:".
	Output     string `json:"output"`
	DurationMS int64  `json:"duration_ms"`
	// Skipped is true with --no-syntax: haproxy -c did not run. OK stays
	// true then (the lint alone decides the verdict, and scripts that gate
	// on syntax.ok keep passing) and Command is empty; read Skipped to
	// tell "not checked" from "checked and valid". It is also true, with
	// OK false and PolicyRefused, when the candidate policy refused the
	// candidate before haproxy could read it.
	Skipped       bool `json:"skipped"`
	PolicyRefused bool `json:"policy_refused"`
	// TimedOut: the check ran longer than its timeout and was killed.
	TimedOut bool `json:"timed_out"`
	// OutOfMemory: the check failed under its memory bound.
	OutOfMemory bool `json:"out_of_memory"`
	// Untrusted: the check ran confined, and Output was filtered;
	// Withheld lines were dropped because they might quote a file other
	// than the candidate.
	Untrusted bool `json:"untrusted"`
	Withheld  int  `json:"withheld_lines"`
	// Diagnostics are Output's ALERT and WARNING lines, each once, as
	// file:line, severity and message (ParseDiagnostics).
	Diagnostics []Diagnostic `json:"diagnostics"`
	// Warnings are the "[WARNING]" lines of Output, verbatim.
	Warnings []string `json:"-"`
	ExitCode int      `json:"-"`
	// MaxRSSKB is the peak resident set of the haproxy process (rusage).
	MaxRSSKB int64 `json:"-"`
	// CAPreloadSkipped is true when the check ran with the one-line
	// prelude that skips the httpclient's system CA load (see RunSyntax).
	CAPreloadSkipped bool `json:"ca_preload_skipped"`
}

// SyntaxOptions say how to run `haproxy -c`.
type SyntaxOptions struct {
	// Bin is the haproxy binary; Files are the -f files, in order.
	Bin   string
	Files []string
	// Timeout ends the check (its whole process group is killed) and
	// refuses the candidate: DefaultCheckTimeout when 0.
	Timeout time.Duration
	// MemoryLimit bounds haproxy's address space in bytes (RLIMIT_AS):
	// DefaultCheckMemory when 0, none when negative.
	MemoryLimit int64
	// Untrusted checks a candidate from an API client: haproxy runs as
	// User (DefaultCheckUser when empty) with only Groups as its groups,
	// no capabilities, no new privileges, an empty environment and
	// WorkDir ("/" when empty) as its directory; it reads the files from
	// sealed memory copies; and Output keeps only what cannot quote a
	// file other than the candidate (see filterUntrusted).
	Untrusted bool
	User      string
	Groups    []string
	WorkDir   string
	// Env is a trusted check's environment, so that haproxy reads the
	// config's variables as the unit's haproxy will (the unit's
	// Environment= and EnvironmentFile=); nil: this process's. An
	// untrusted check has none but PATH.
	Env map[string]string
	// Config is the parsed model of Files, which the untrusted output
	// filter reads (parsed from Files when nil).
	Config *Config
}

// RunSyntax runs `bin -c -f FILE...` with the default bounds (timeout,
// memory) and returns haproxy's verdict; see RunSyntaxWith.
func RunSyntax(ctx context.Context, bin string, files []string) (SyntaxResult, error) {
	return RunSyntaxWith(ctx, SyntaxOptions{Bin: bin, Files: files})
}

// RunSyntaxEnv is RunSyntax with haproxy given exactly env as its
// environment (nil: this process's).
func RunSyntaxEnv(ctx context.Context, bin string, files []string, env map[string]string) (SyntaxResult, error) {
	return RunSyntaxWith(ctx, SyntaxOptions{Bin: bin, Files: files, Env: env})
}

// RunSyntaxWith runs `haproxy -c` under o's bounds and returns haproxy's
// verdict. The error is non-nil only when haproxy could not be run at all
// (missing binary, unknown check user, ctx cancelled); a failed check,
// a timeout or memory exhaustion is SyntaxResult.OK == false.
//
// HAProxy 2.6 and later load the system's CA store for their internal
// HTTP client at every start, unless the config sets httpclient.ssl.*: on
// Debian that is some 150 PEM files and about 45 ms, most of a small
// config's check. That load cannot change the verdict, since when it fails
// haproxy only turns TLS off for the client, without a warning. So when no
// file configures the httpclient, the check first runs with a prelude,
// a global section of its own holding `httpclient.ssl.verify none` given
// as the first -f, which skips the load. If that run fails for any reason
// (a binary older than 2.6 does not know the keyword), the plain check
// runs and its verdict and output are the ones reported, so a failure
// always reads exactly as haproxy's own. Command is the plain command.
func RunSyntaxWith(ctx context.Context, o SyntaxOptions) (SyntaxResult, error) {
	start := time.Now()
	if o.Bin == "" {
		o.Bin = "/usr/sbin/haproxy"
	}
	in, err := prepareInputs(o)
	if err != nil {
		return SyntaxResult{}, err
	}
	defer in.close()
	finish := func(res SyntaxResult, err error) (SyntaxResult, error) {
		res.Command = syntaxCommand(o.Bin, o.Files)
		res.DurationMS = time.Since(start).Milliseconds()
		if o.Untrusted {
			res.Untrusted = true
			res.Output, res.Withheld = in.filter(res.Output)
		}
		res.Warnings = warningLines(res.Output)
		res.Diagnostics = ParseDiagnostics(res.Output)
		return res, err
	}
	if in.prelude != "" {
		res, err := in.run(ctx, true)
		if err == nil && res.OK {
			res.CAPreloadSkipped = true
			return finish(res, nil)
		}
		if ctx.Err() != nil || err != nil || res.TimedOut {
			return finish(res, err)
		}
	}
	return finish(in.run(ctx, false))
}

func warningLines(out string) []string {
	var w []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "[WARNING]") {
			w = append(w, l)
		}
	}
	return w
}

func syntaxCommand(bin string, files []string) string {
	args := []string{bin, "-c"}
	for _, f := range files {
		args = append(args, "-f", f)
	}
	return strings.Join(args, " ")
}

// preludeText is the config RunSyntax puts before the checked files.
const preludeText = "# haguard: skip the httpclient's system CA load during this check\nglobal\n    httpclient.ssl.verify none\n"

// inputs are the files one check hands to haproxy. A trusted check names
// them by path, with the prelude in a temporary file; an untrusted one
// reads them into sealed memory files haproxy opens as /proc/self/fd/N
// (the check user cannot read haguard's scratch files, and no one can
// change what is checked).
type inputs struct {
	o       SyntaxOptions
	prelude string            // -f argument of the prelude; "" when not used
	files   []string          // -f arguments of the checked files
	names   map[string]string // -f argument -> the name to report
	extra   []*os.File
	bodies  map[string][]byte // untrusted: the candidate's bytes, by name
	cleanup func()
}

func (in *inputs) close() {
	for _, f := range in.extra {
		f.Close()
	}
	if in.cleanup != nil {
		in.cleanup()
	}
}

func prepareInputs(o SyntaxOptions) (*inputs, error) {
	in := &inputs{o: o, names: map[string]string{}}
	usePrelude := true
	for _, f := range o.Files {
		if !preludeSafe(f) {
			usePrelude = false
		}
	}
	if !o.Untrusted {
		in.files = o.Files
		if usePrelude {
			in.prelude, in.cleanup = caPrelude()
		}
		return in, nil
	}
	files, err := expandDirs(o.Files)
	if err != nil {
		return nil, err
	}
	in.bodies = map[string][]byte{}
	add := func(name string, data []byte) error {
		f, err := sealedFile(fmt.Sprint(len(in.extra)), data)
		if err != nil {
			in.close()
			return err
		}
		arg := fmt.Sprintf("/proc/self/fd/%d", 3+len(in.extra))
		in.extra = append(in.extra, f)
		in.names[arg] = name
		return nil
	}
	if usePrelude {
		if err := add("haguard-prelude.cfg", []byte(preludeText)); err != nil {
			return nil, err
		}
		in.prelude = "/proc/self/fd/3"
	}
	for _, name := range files {
		data, err := readRegular(name, maxCandidateBytes)
		if err != nil {
			in.close()
			return nil, &FileError{File: name, Err: err}
		}
		if err := add(name, data); err != nil {
			return nil, err
		}
		in.bodies[name] = data
		in.files = append(in.files, fmt.Sprintf("/proc/self/fd/%d", 2+len(in.extra)))
	}
	return in, nil
}

// readRegular reads a file the check was given or that a config names,
// refusing what is not a regular file (a FIFO or a device would block or
// never end) and what is larger than max bytes.
func readRegular(name string, max int64) ([]byte, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err == nil && int64(len(data)) > max {
		err = fmt.Errorf("larger than %d bytes", max)
	}
	return data, err
}

// maxCandidateBytes bounds one file of an untrusted candidate.
const maxCandidateBytes = 64 << 20

// run runs the check once, with or without the prelude.
func (in *inputs) run(ctx context.Context, withPrelude bool) (SyntaxResult, error) {
	var args []string
	if withPrelude {
		args = append(args, "-c", "-f", in.prelude)
	} else {
		args = append(args, "-c")
	}
	for _, f := range in.files {
		args = append(args, "-f", f)
	}
	c := &confined{o: in.o, args: args, extra: in.extra}
	res, err := c.run(ctx)
	if in.o.Untrusted {
		res.Output = in.rename(res.Output)
	}
	return res, err
}

// rename puts the candidate's names back where haproxy printed the
// /proc/self/fd/N it was given.
func (in *inputs) rename(out string) string {
	return fdPath().ReplaceAllStringFunc(out, func(p string) string {
		if n, ok := in.names[p]; ok {
			return n
		}
		return p
	})
}

var fdPath = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`/proc/self/fd/[0-9]+`) })

// caPrelude writes the prelude to a temporary file and returns its path
// and a function that removes it, or "" when it cannot be written.
func caPrelude() (string, func()) {
	tf, err := os.CreateTemp("", "haguard-prelude-*.cfg")
	if err != nil {
		return "", nil
	}
	_, werr := tf.WriteString(preludeText)
	if cerr := tf.Close(); werr != nil || cerr != nil {
		_ = os.Remove(tf.Name())
		return "", nil
	}
	return tf.Name(), func() { _ = os.Remove(tf.Name()) }
}

// preludeSafe reports whether path may be checked after the prelude: a
// readable regular file (haproxy also reads directories of *.cfg) none of
// whose lines has a keyword that configures the httpclient or comes from
// an environment variable.
func preludeSafe(path string) bool {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return false
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		kw, _, _ := strings.Cut(strings.TrimLeft(sc.Text(), " \t"), " ")
		kw, _, _ = strings.Cut(kw, "\t")
		if strings.HasPrefix(strings.Trim(kw, `"'`), "httpclient.") || strings.Contains(kw, "$") {
			return false
		}
	}
	return sc.Err() == nil
}

// runSyntax is one plain, trusted run with the default bounds and no
// prelude (the benchmarks and the prelude test compare against it).
func runSyntax(ctx context.Context, bin string, files []string) (SyntaxResult, error) {
	in, err := prepareInputs(SyntaxOptions{Bin: bin, Files: files})
	if err != nil {
		return SyntaxResult{}, err
	}
	defer in.close()
	res, err := in.run(ctx, false)
	res.Command = syntaxCommand(bin, files)
	res.Warnings = warningLines(res.Output)
	return res, err
}
