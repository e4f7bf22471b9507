// Command gendocs writes the man pages and shell completions of haguard's
// command tree (package cli) for the Debian package. It is a program of
// its own so that the shipped binary links no doc generator.
//
//	go run ./packaging/cmd/gendocs -version "$(git describe)" -man DIR -completions DIR
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/haguard/haguard/cli"
	"github.com/haguard/haguard/internal/manpages"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("gendocs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	version := fs.String("version", "dev", "the haguard version the pages describe")
	man := fs.String("man", "", "directory for the man pages (section 1)")
	compl := fs.String("completions", "", "directory for the bash, zsh and fish completions")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := generate(*version, *man, *compl); err != nil {
		fmt.Fprintf(stderr, "gendocs: %v\n", err)
		return 2
	}
	return 0
}

func generate(version, man, compl string) error {
	if man == "" && compl == "" {
		return errors.New("give -man DIR and/or -completions DIR")
	}
	// Flags whose default comes from the environment (HAGUARD_FORMAT, a
	// clustercheck DSN with its password) must show the built-in default,
	// not the build machine's.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "HAGUARD_") {
			os.Unsetenv(k)
		}
	}
	root := cli.Root(version)
	if man != "" {
		if err := manpages.Write(root, man, version); err != nil {
			return err
		}
	}
	if compl != "" {
		return manpages.Completions(root, compl)
	}
	return nil
}
