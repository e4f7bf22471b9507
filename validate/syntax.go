package validate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
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
}

// RunSyntax runs `bin -c -f FILE...` and returns haproxy's verdict. The
// error is non-nil only when haproxy could not be run at all (missing
// binary, ctx cancelled); a failed check is SyntaxResult.OK == false.
func RunSyntax(ctx context.Context, bin string, files []string) (SyntaxResult, error) {
	args := []string{"-c"}
	for _, f := range files {
		args = append(args, "-f", f)
	}
	res := SyntaxResult{Command: strings.Join(append([]string{bin}, args...), " ")}
	cmd := exec.CommandContext(ctx, bin, args...)
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
