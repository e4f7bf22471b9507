package main

import (
	"context"
	"errors"
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

// gendocsCmd writes the man pages and shell completions that the Debian
// package ships. It is hidden: operators read the results, not the command.
// It lives in the binary because cmd/haguard is package main and the pages
// must describe exactly the commands of the binary being packaged.
func (a *app) gendocsCmd() *cobra.Command {
	var manDir, complDir string
	cmd := &cobra.Command{
		Use:    "gendocs",
		Short:  "Write man pages and shell completions (used by make deb)",
		Hidden: true,
		Args:   cobra.NoArgs,
	}
	cmd.RunE = a.exec(func(context.Context) (int, error) {
		if manDir == "" && complDir == "" {
			return exitUsage, usagef(errors.New("give --man DIR and/or --completions DIR"))
		}
		root := cmd.Root()
		if manDir != "" {
			if err := writeManPages(root, manDir); err != nil {
				return exitUsage, err
			}
		}
		if complDir != "" {
			if err := writeCompletions(root, complDir); err != nil {
				return exitUsage, err
			}
		}
		return exitOK, nil
	})
	cmd.Flags().StringVar(&manDir, "man", "", "directory for the man pages (section 1)")
	cmd.Flags().StringVar(&complDir, "completions", "", "directory for the bash, zsh and fish completions")
	return cmd
}

// writeManPages writes haguard.1 and one page per visible subcommand
// (haguard-reload.1, ...). The date comes from SOURCE_DATE_EPOCH when it
// is set, so that a package build is reproducible.
func writeManPages(root *cobra.Command, dir string) error {
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

func writeCompletions(root *cobra.Command, dir string) error {
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
