// Package manpages writes the man pages and shell completions of
// haguard's command tree for the Debian package. It is linked only into
// the docs build of the binary (-tags haguard_gendocs, which make deb
// uses), never into the shipped one: the man-page renderer is the largest
// package init of the binary, and operators read the pages, not the
// generator.
package manpages

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// Completion files, named where Debian's shells look for them
// (packaging/nfpm.yaml installs them under these names).
const (
	completionBash = "haguard"      // /usr/share/bash-completion/completions/
	completionZsh  = "_haguard"     // /usr/share/zsh/vendor-completions/
	completionFish = "haguard.fish" // /usr/share/fish/vendor_completions.d/
)

// Write writes haguard.1 and one page per visible subcommand
// (haguard-reload.1, ...). The date comes from SOURCE_DATE_EPOCH when it
// is set, so that a package build is reproducible.
func Write(root *cobra.Command, dir, version string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	root.DisableAutoGenTag = true
	hdr := &doc.GenManHeader{
		Title:   "HAGUARD",
		Section: "1",
		Source:  "haguard " + version,
		Manual:  "haguard manual",
	}
	if t, ok := sourceDate(); ok {
		hdr.Date = &t
	}
	if err := doc.GenManTree(root, hdr, dir); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	return nil
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
