// Command mkdeb builds dist/haguard_<version>_amd64.deb (make deb).
//
//	go run ./packaging/cmd/mkdeb -binary bin/haguard -out dist
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/haguard/haguard/packaging"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mkdeb", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o packaging.Options
	fs.StringVar(&o.Root, "root", ".", "repository root")
	fs.StringVar(&o.Binary, "binary", "bin/haguard", "haguard binary stamped with -X main.version")
	fs.StringVar(&o.OutDir, "out", "dist", "output directory")
	fs.StringVar(&o.Config, "config", "", "nfpm config (default ROOT/packaging/nfpm.yaml)")
	fs.StringVar(&o.Maintainer, "maintainer", "", `Maintainer field, "Name <user@host.domain>" (default: DEBFULLNAME and DEBEMAIL, else git's user.name and user.email)`)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mkdeb: unexpected arguments %q\n", fs.Args())
		return 2
	}
	res, err := packaging.Build(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "mkdeb: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s (haguard %s, package version %s)\n", res.Path, res.Version, res.DebVersion)
	return 0
}
