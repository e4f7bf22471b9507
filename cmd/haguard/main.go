// Command haguard makes HAProxy reloads safe. main is wiring only: the
// signals, the version stamped at build time, and the command tree of
// package cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/haguard/haguard/cli"
)

// version is stamped at build time: -ldflags "-X main.version=$(git describe)".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, version, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
