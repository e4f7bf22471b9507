package validate

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"time"
)

// SyntaxResult is the verdict of `haproxy -c`.
type SyntaxResult struct {
	OK      bool   `json:"ok"`
	Command string `json:"command"`
	// Output is haproxy's stdout and stderr, verbatim (its warnings included).
	Output     string `json:"output"`
	DurationMS int64  `json:"duration_ms"`
	// Skipped is true with --no-syntax: haproxy -c did not run. OK stays
	// true then (the lint alone decides the verdict, and scripts that gate
	// on syntax.ok keep passing) and Command is empty; read Skipped to
	// tell "not checked" from "checked and valid".
	Skipped bool `json:"skipped"`
	// Warnings are the "[WARNING]" lines of Output, verbatim.
	Warnings []string `json:"-"`
	ExitCode int      `json:"-"`
	// MaxRSSKB is the peak resident set of the haproxy process (rusage).
	MaxRSSKB int64 `json:"-"`
	// CAPreloadSkipped is true when the check ran with the one-line
	// prelude that skips the httpclient's system CA load (see RunSyntax).
	CAPreloadSkipped bool `json:"ca_preload_skipped"`
}

// RunSyntax runs `bin -c -f FILE...` and returns haproxy's verdict. The
// error is non-nil only when haproxy could not be run at all (missing
// binary, ctx cancelled); a failed check is SyntaxResult.OK == false.
//
// HAProxy 2.6 and later load the system's CA store for their internal
// HTTP client at every start, unless the config sets httpclient.ssl.*: on
// Debian that is some 150 PEM files and about 45 ms, most of a small
// config's check. That load cannot change the verdict, since when it fails
// haproxy only turns TLS off for the client, without a warning. So when no
// file configures the httpclient, RunSyntax first checks with a prelude,
// a global section of its own holding `httpclient.ssl.verify none` given
// as the first -f, which skips the load. If that run fails for any reason
// (a binary older than 2.6 does not know the keyword), the plain check
// runs and its verdict and output are the ones reported, so a failure
// always reads exactly as haproxy's own. Command is the plain command.
func RunSyntax(ctx context.Context, bin string, files []string) (SyntaxResult, error) {
	return RunSyntaxEnv(ctx, bin, files, nil)
}

// RunSyntaxEnv is RunSyntax with haproxy given exactly env as its
// environment (nil: this process's), so that `haproxy -c` reads the
// config's variables as the unit's haproxy will.
func RunSyntaxEnv(ctx context.Context, bin string, files []string, env map[string]string) (SyntaxResult, error) {
	start := time.Now()
	if prelude, cleanup := caPrelude(files); prelude != "" {
		res, err := runSyntax(ctx, bin, append([]string{prelude}, files...), env)
		cleanup()
		if err == nil && res.OK {
			res.Command = syntaxCommand(bin, files)
			res.CAPreloadSkipped = true
			res.DurationMS = time.Since(start).Milliseconds()
			return res, nil
		}
		if ctx.Err() != nil {
			return res, err
		}
	}
	res, err := runSyntax(ctx, bin, files, env)
	res.DurationMS = time.Since(start).Milliseconds()
	return res, err
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

// caPrelude writes the prelude to a temporary file and returns its path
// and a function that removes it, or "" when the prelude must not be used:
// a file that is not a readable regular file (haproxy also reads
// directories of *.cfg), or a line whose keyword configures the httpclient
// or comes from an environment variable. With "" the check runs plain.
func caPrelude(files []string) (string, func()) {
	for _, f := range files {
		if !preludeSafe(f) {
			return "", nil
		}
	}
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

func preludeSafe(path string) bool {
	f, err := os.Open(path)
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

func runSyntax(ctx context.Context, bin string, files []string, env map[string]string) (SyntaxResult, error) {
	args := []string{"-c"}
	for _, f := range files {
		args = append(args, "-f", f)
	}
	res := SyntaxResult{Command: syntaxCommand(bin, files)}
	cmd := exec.CommandContext(ctx, bin, args...)
	if env != nil {
		cmd.Env = make([]string, 0, len(env))
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		sort.Strings(cmd.Env)
	}
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	start := time.Now()
	err := cmd.Run()
	res.DurationMS = time.Since(start).Milliseconds()
	res.Output = buf.String()
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			res.MaxRSSKB = ru.Maxrss
		}
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	for _, l := range strings.Split(res.Output, "\n") {
		if strings.Contains(l, "[WARNING]") {
			res.Warnings = append(res.Warnings, l)
		}
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		res.OK = true
	case ctx.Err() != nil:
		return res, fmt.Errorf("haproxy -c: %w", ctx.Err())
	case errors.As(err, &exitErr):
		res.OK = false
	default:
		return res, fmt.Errorf("run %s: %w", bin, err)
	}
	return res, nil
}
