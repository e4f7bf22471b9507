package systemd

import (
	"context"
	"fmt"
)

// DaemonReload makes systemd read its unit files again (`systemctl
// daemon-reload`), after a drop-in was added or removed.
func (c *Client) DaemonReload(ctx context.Context) error {
	if err := c.conn.ReloadContext(ctx); err != nil {
		return fmt.Errorf("daemon-reload: %w", err)
	}
	return nil
}
