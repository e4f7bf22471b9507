package cli

import "errors"

// Exit codes shared by every command (docs/cli.md).
const (
	exitOK       = 0 // all good
	exitNegative = 1 // the verdict is negative: findings, ghosts, failed probes, refused or rolled back
	exitUsage    = 2 // usage error or unreadable input
	exitBroken   = 3 // the host is left in a bad state: page a human
)

// usageError marks an error as the caller's fault (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(err error) error { return usageError{err} }

func isUsage(err error) bool {
	var u usageError
	return errors.As(err, &u)
}
