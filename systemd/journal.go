package systemd

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
)

// Journal returns the last lines the unit logged (journalctl -u, message
// text only): what haproxy said about a load when its master CLI cannot
// (`show startup-logs` came with 2.7).
func Journal(ctx context.Context, unit string, lines int) (string, error) {
	out, err := exec.CommandContext(ctx, "journalctl", "--no-pager", "-o", "cat", "-n", strconv.Itoa(lines), "-u", unit).Output()
	if err != nil {
		return "", fmt.Errorf("journalctl -u %s: %w", unit, err)
	}
	return string(out), nil
}
