package testbed

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkBoot measures a whole sandbox lifetime: boot to `running`,
// then teardown.
func BenchmarkBoot(b *testing.B) {
	Require(b, TierSystem)
	for i := 0; b.Loop(); i++ {
		s, err := Open(context.Background(), Options{Dir: RunDir(b)})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStartHAProxy measures starting haproxy.service in a booted box
// (daemon-reload, start, wait for active and the master socket), then
// stopping it again.
func BenchmarkStartHAProxy(b *testing.B) {
	s := Boot(b)
	ctx := context.Background()
	cfg := TCPProxyConfig(fmt.Sprintf("127.0.0.1:%d", FreePort(b)), TCPBackend(b))
	for b.Loop() {
		if err := s.StartHAProxyContext(ctx, cfg); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Systemctl(ctx, "stop", "haproxy.service"); err != nil {
			b.Fatal(err)
		}
	}
}
