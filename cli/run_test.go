package cli

import (
	"context"
	"io"
)

// run is Run for the tests, as a binary built without a version stamp.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return Run(ctx, "dev", args, stdout, stderr)
}
