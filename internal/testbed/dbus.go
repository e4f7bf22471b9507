package testbed

import (
	"context"
	"fmt"
	"os"
	"strconv"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// DialSystemd connects from the host to the box's systemd over the box's
// system bus (BusAddress), the way haguard does with a bus address option:
// a godbus dial, EXTERNAL auth as our uid, Hello. (systemd's private socket
// resets connections from outside the namespace, so it is not used.) The
// caller closes the connection.
func (s *Sandbox) DialSystemd(ctx context.Context) (*sdbus.Conn, error) {
	addr := s.BusAddress()
	conn, err := sdbus.NewConnection(func() (*godbus.Conn, error) {
		c, err := godbus.Dial(addr, godbus.WithContext(ctx))
		if err != nil {
			return nil, err
		}
		if err := c.Auth([]godbus.Auth{godbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
			c.Close()
			return nil, fmt.Errorf("auth: %w", err)
		}
		if err := c.Hello(); err != nil {
			c.Close()
			return nil, fmt.Errorf("hello: %w", err)
		}
		return c, nil
	})
	if err != nil {
		return nil, fmt.Errorf("connect to box bus %s: %w", addr, err)
	}
	return conn, nil
}
