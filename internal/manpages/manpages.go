// Package manpages writes the man pages and shell completions of
// haguard's command tree for the Debian package. It is linked only into
// packaging/cmd/gendocs, never into the shipped binary.
//
// Each command gets a page of its own, titled after it (HAGUARD-RELOAD(1)
// for haguard-reload.1), with NAME, SYNOPSIS, DESCRIPTION, OPTIONS, EXIT
// STATUS, FILES, EXAMPLES and SEE ALSO. The text is the command's own
// (--help): its "Exit codes" and "Examples" paragraphs become sections,
// and what --help does not say comes from the annotations cli sets
// (cli.AnnotationExit, AnnotationFiles, AnnotationSeeAlso). Paths of the
// source tree are rewritten to where the package installs them, so that
// no page points to a file that is not there.
package manpages

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// Completion files, named where Debian's shells look for them
// (packaging/nfpm.yaml installs them under these names).
const (
	completionBash = "haguard"      // /usr/share/bash-completion/completions/
	completionZsh  = "_haguard"     // /usr/share/zsh/vendor-completions/
	completionFish = "haguard.fish" // /usr/share/fish/vendor_completions.d/
)

// DocDir is where the package installs docs/*.md.
const DocDir = "/usr/share/doc/haguard"

// Annotations read from the commands (cli sets them; the names are
// repeated here so that this package needs nothing of cli's).
const (
	annotationExit    = "haguard.man/exit"
	annotationFiles   = "haguard.man/files"
	annotationSeeAlso = "haguard.man/see-also"
)

// Write writes haguard.1 and one page per visible subcommand
// (haguard-reload.1, ...). The date comes from SOURCE_DATE_EPOCH when it
// is set, so that a package build is reproducible.
func Write(root *cobra.Command, dir, version string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	date := time.Now().UTC()
	if t, ok := sourceDate(); ok {
		date = t
	}
	for _, c := range Commands(root) {
		var b bytes.Buffer
		page{cmd: c, version: version, date: date}.render(&b)
		path := filepath.Join(dir, PageName(c)+".1")
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			return fmt.Errorf("man pages: %w", err)
		}
	}
	return nil
}

// Commands are root and every subcommand that gets a page: not hidden,
// not deprecated, not help or completion.
func Commands(root *cobra.Command) []*cobra.Command {
	out := []*cobra.Command{root}
	for _, c := range root.Commands() {
		if !c.IsAvailableCommand() || c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		out = append(out, Commands(c)...)
	}
	return out
}

// PageName is the page's file name without the section: haguard-reload.
func PageName(c *cobra.Command) string {
	return strings.ReplaceAll(c.CommandPath(), " ", "-")
}

// Completions writes the bash, zsh and fish completions under the names
// Debian's shells look for.
func Completions(root *cobra.Command, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("completions: %w", err)
	}
	gens := []struct {
		name string
		gen  func(f *os.File) error
	}{
		{completionBash, func(f *os.File) error { return root.GenBashCompletionV2(f, true) }},
		{completionZsh, func(f *os.File) error { return root.GenZshCompletion(f) }},
		{completionFish, func(f *os.File) error { return root.GenFishCompletion(f, true) }},
	}
	for _, g := range gens {
		if err := writeFileWith(filepath.Join(dir, g.name), g.gen); err != nil {
			return fmt.Errorf("completions: %w", err)
		}
	}
	return nil
}

func writeFileWith(path string, gen func(f *os.File) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := gen(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}

// sourceDate reads SOURCE_DATE_EPOCH (reproducible-builds.org).
func sourceDate() (time.Time, bool) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return time.Time{}, false
	}
	var sec int64
	if _, err := fmt.Sscan(v, &sec); err != nil {
		return time.Time{}, false
	}
	return time.Unix(sec, 0).UTC(), true
}
