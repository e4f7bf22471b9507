package testbed

import (
	"context"
	"database/sql"
	"fmt"
	"net"

	"github.com/haguard/haguard/agent/clustercheck"
)

// clustercheckServer is the production clustercheck (agent/clustercheck),
// run in-process for one node: the same code `haguard clustercheck` runs.
type clustercheckServer struct {
	addr   string
	db     *sql.DB
	cancel context.CancelFunc
	done   chan error
}

// startClustercheck serves node m's clustercheck on a fresh loopback port.
// It logs in as the unprivileged probe user over TCP, as a production
// deployment would with its own check user.
func startClustercheck(m *MariaDB) (*clustercheckServer, error) {
	cfg, err := clustercheck.ParseDSN(m.ProbeDSN(""))
	if err != nil {
		return nil, err
	}
	db, err := clustercheck.OpenDB(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("listen: %w", err)
	}
	// A short cache keeps tests that flip the state quick to observe it.
	checker := clustercheck.NewChecker(clustercheck.DBSource{DB: db}, clustercheck.Options{CacheTTL: clustercheckCacheTTL})
	ctx, cancel := context.WithCancel(context.Background())
	s := &clustercheckServer{addr: ln.Addr().String(), db: db, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- clustercheck.Serve(ctx, ln, checker) }()
	return s, nil
}

func (s *clustercheckServer) stop() error {
	s.cancel()
	err := <-s.done
	s.db.Close()
	return err
}
