package testbed

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// galeraSyncTimeout bounds how long one node may take to reach Synced
// (SST included). A healthy node on loopback needs a few seconds.
const galeraSyncTimeout = 120 * time.Second

// clustercheckCacheTTL is the state cache of the test endpoints.
const clustercheckCacheTTL = 200 * time.Millisecond

// GaleraOptions configures a test cluster.
type GaleraOptions struct {
	// Nodes is the cluster size; 0 means 3.
	Nodes int
	// WaitTimeouts are per-node wait_timeout (and interactive_timeout)
	// values in seconds, by node index; missing or 0 means 28800.
	WaitTimeouts []int
	// Clustercheck gives every node an HTTP clustercheck endpoint (the
	// production agent/clustercheck server, run in-process), see
	// ClustercheckAddr.
	Clustercheck bool
}

// Galera is a MariaDB Galera cluster on 127.0.0.1 started by a test. Nodes
// are numbered from 0 (the bootstrap node) in every method, like Nodes().
type Galera struct {
	nodes  []*MariaDB
	checks []*clustercheckServer

	stopOnce sync.Once
}

// galeraPorts are the four ports one node listens on.
type galeraPorts struct{ client, gcomm, ist, sst int }

// StartGalera bootstraps node 0 with --wsrep-new-cluster, joins the others
// one by one (rsync SST as root through a wrapper method), and returns once
// every node is Synced (wsrep_local_state=4) in a cluster of the full
// size. t.Cleanup stops every node and endpoint and asserts the PIDs gone.
func StartGalera(t testing.TB, opts GaleraOptions) *Galera {
	t.Helper()
	Require(t, TierSystem)
	// FreePort's ports were free a moment ago; if another test took one
	// since, start again on new ones.
	for attempt := 1; ; attempt++ {
		g := &Galera{}
		t.Cleanup(func() { g.stop(t) })
		err := g.start(t, opts)
		if err == nil {
			return g
		}
		// A port taken meanwhile is retried up to three times; any other
		// failure (a joiner whose SST failed on a loaded machine, seen
		// once in CI) once, with a fresh cluster on new ports.
		if attempt == 3 || (attempt == 2 && !g.portTaken()) {
			t.Fatalf("testbed: galera: %v", err)
		}
		t.Logf("testbed: galera: start failed; starting a fresh cluster on new ports: %v", err)
		g.stop(t)
	}
}

// start starts the cluster described by opts into g. On error, the nodes
// started so far are in g, for stop.
func (g *Galera) start(t testing.TB, opts GaleraOptions) error {
	t.Helper()
	n := opts.Nodes
	if n == 0 {
		n = 3
	}
	dir := RunDir(t)
	if err := writeSSTWrapper(filepath.Join(dir, "bin")); err != nil {
		return err
	}
	ports := make([]galeraPorts, n)
	var members []string
	for i := range ports {
		ports[i] = galeraPorts{FreePort(t), FreePort(t), FreePort(t), FreePort(t)}
		members = append(members, fmt.Sprintf("127.0.0.1:%d", ports[i].gcomm))
	}
	clusterAddr := "gcomm://" + strings.Join(members, ",")
	name := "haguard-" + filepath.Base(dir)
	waitTimeout := func(i int) int {
		if i < len(opts.WaitTimeouts) {
			return opts.WaitTimeouts[i]
		}
		return 0
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(n)*galeraSyncTimeout)
	defer cancel()
	begin := time.Now()
	synced := func(i int) error {
		m := g.nodes[i]
		if err := g.WaitState(ctx, i, 4); err != nil {
			return fmt.Errorf("%w%s", err, m.logTail())
		}
		t.Logf("testbed: galera: node %d (pid %d, %s) synced at +%s", i, m.PID(), m.Addr(), time.Since(begin).Round(time.Millisecond))
		return nil
	}
	// The bootstrap node first: it must be Primary, and users made on it
	// reach the others by SST.
	m, err := startNode(t, galeraNode(dir, 0, ports[0], name, clusterAddr, waitTimeout(0)))
	if m != nil {
		g.nodes = append(g.nodes, m)
	}
	if err != nil {
		return err
	}
	// Synced first: until then wsrep refuses DDL with 1047 ("WSREP has not
	// yet prepared node for application use"), which a loaded machine hits.
	if err := synced(0); err != nil {
		return err
	}
	if err := m.createUsers(ctx); err != nil {
		return fmt.Errorf("%s: %w%s", m.name, err, m.logTail())
	}
	// Joiners are launched one after the other, each as soon as the one
	// before is a member of the primary component: start-up of the next
	// overlaps the SST of the previous (the donor serves one SST at a time;
	// a later joiner retries until it is free). Launched all at once, they
	// churn through non-primary views for several seconds.
	for i := 1; i < n; i++ {
		m, err := launchNode(t, galeraNode(dir, i, ports[i], name, clusterAddr, waitTimeout(i)))
		if m != nil {
			g.nodes = append(g.nodes, m)
		}
		if err != nil {
			return err
		}
		if err := g.waitMembers(ctx, i+1); err != nil {
			return err
		}
	}
	for i := 1; i < n; i++ {
		if err := g.nodes[i].waitReady(ctx); err != nil {
			return err
		}
		if err := synced(i); err != nil {
			return err
		}
	}
	for i, m := range g.nodes {
		size, err := m.Status(ctx, "wsrep_cluster_size")
		if err != nil || size != strconv.Itoa(n) {
			return fmt.Errorf("node %d sees wsrep_cluster_size=%q (%v), want %d%s", i, size, err, n, m.logTail())
		}
	}
	if opts.Clustercheck {
		for i, m := range g.nodes {
			s, err := startClustercheck(m)
			if err != nil {
				return fmt.Errorf("clustercheck for node %d: %w", i, err)
			}
			g.checks = append(g.checks, s)
		}
	}
	return nil
}

// portTaken reports whether a node died because one of its ports (client,
// gcomm, IST or SST) was in use.
func (g *Galera) portTaken() bool {
	for _, m := range g.nodes {
		if m.portTaken() {
			return true
		}
	}
	return false
}

// galeraNode is the configuration of node i.
func galeraNode(dir string, i int, p galeraPorts, cluster, clusterAddr string, waitTimeout int) nodeConfig {
	c := nodeConfig{
		name: fmt.Sprintf("galera%d", i),
		dir:  filepath.Join(dir, fmt.Sprintf("node%d", i)),
		port: p.client,
		opts: MariaDBOptions{WaitTimeout: waitTimeout, InteractiveTimeout: waitTimeout},
		cnf: []string{
			"binlog_format=ROW",
			"default_storage_engine=InnoDB",
			"innodb_autoinc_lock_mode=2",
			"innodb_flush_log_at_trx_commit=0",
			"wsrep_on=ON",
			"wsrep_provider=/usr/lib/galera/libgalera_smm.so",
			"wsrep_cluster_name=" + cluster,
			"wsrep_cluster_address=" + clusterAddr,
			fmt.Sprintf("wsrep_node_name=galera%d", i),
			"wsrep_node_address=127.0.0.1",
			fmt.Sprintf("wsrep_node_incoming_address=127.0.0.1:%d", p.client),
			fmt.Sprintf("wsrep_sst_receive_address=127.0.0.1:%d", p.sst),
			"wsrep_sst_method=" + sstMethod,
			fmt.Sprintf(`wsrep_provider_options="gmcast.listen_addr=tcp://127.0.0.1:%d;ist.recv_addr=127.0.0.1:%d;gcache.size=8M;pc.recovery=FALSE"`,
				p.gcomm, p.ist),
		},
		// Keep SST logs in the data dir instead of archiving them beside it.
		tail: "[sst]\nsst-log-archive=0\n",
		// The bootstrap node gets a fresh data dir; joiners receive theirs
		// by SST.
		install: i == 0,
	}
	// The wrapper SST method lives in the cluster's bin dir; mariadbd finds
	// it on PATH.
	c.env = []string{"PATH=" + filepath.Join(dir, "bin") + ":/usr/sbin:/usr/bin:/sbin:/bin"}
	if i == 0 {
		c.args = []string{"--wsrep-new-cluster"}
	}
	return c
}

// sstMethod is the wrapper SST method: Debian's rsync method, except that
// its rsync daemon keeps running as root. By default an rsync daemon
// started by root drops to uid nobody and then cannot write the joiner's
// root-owned data dir, so the stock method fails when mariadbd runs as root.
const sstMethod = "rsyncroot"

// writeSSTWrapper writes wsrep_sst_rsyncroot and the rsync shim it puts
// first on PATH for the stock script.
func writeSSTWrapper(bin string) error {
	shim := filepath.Join(bin, "rsync-as-root")
	if err := os.MkdirAll(shim, 0o755); err != nil {
		return err
	}
	files := map[string]string{
		filepath.Join(bin, "wsrep_sst_"+sstMethod): `#!/bin/sh
# SST method for test clusters whose mariadbd runs as root: the stock
# rsync method with an rsync that keeps its daemon running as root.
PATH="$(dirname "$0")/rsync-as-root:$PATH"
export PATH
exec /usr/bin/wsrep_sst_rsync "$@"
`,
		filepath.Join(shim, "rsync"): `#!/bin/sh
# Add -M uid=root -M gid=root to rsync daemons; pass everything else on.
for a in "$@"; do
	if [ "$a" = "--daemon" ]; then
		exec /usr/bin/rsync "$@" -M uid=root -M gid=root
	fi
done
exec /usr/bin/rsync "$@"
`,
	}
	for path, text := range files {
		if err := os.WriteFile(path, []byte(text), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// stop ends the clustercheck endpoints, then the nodes.
func (g *Galera) stop(t testing.TB) {
	t.Helper()
	g.stopOnce.Do(func() { g.stopNow(t) })
}

func (g *Galera) stopNow(t testing.TB) {
	t.Helper()
	for _, s := range g.checks {
		if err := s.stop(); err != nil {
			t.Errorf("testbed: galera: stop clustercheck: %v", err)
		}
	}
	begin := time.Now()
	defer func() {
		t.Logf("testbed: galera: stopped %d nodes in %s", len(g.nodes), time.Since(begin).Round(time.Millisecond))
	}()
	// One at a time, newest first: each leaves a healthy cluster cleanly in
	// well under a second. Stopped all at once, every node waits out
	// evs.suspect_timeout (5 s) for peers that vanished mid-leave.
	for i := len(g.nodes) - 1; i >= 0; i-- {
		g.nodes[i].stop(t)
	}
}

// Nodes returns the nodes, bootstrap node first.
func (g *Galera) Nodes() []*MariaDB { return g.nodes }

// ClustercheckAddr is "127.0.0.1:port" of node i's clustercheck endpoint.
// It panics unless the cluster was started with Clustercheck.
func (g *Galera) ClustercheckAddr(i int) string {
	if i < 0 || i >= len(g.checks) {
		panic(fmt.Sprintf("testbed: no clustercheck endpoint for node %d (started with Clustercheck: %v)", i, len(g.checks) > 0))
	}
	return g.checks[i].addr
}

func (g *Galera) node(i int) (*MariaDB, error) {
	if i < 0 || i >= len(g.nodes) {
		return nil, fmt.Errorf("galera: no node %d (have %d)", i, len(g.nodes))
	}
	return g.nodes[i], nil
}

// Desync sets wsrep_desync on node i: ON takes it out of Synced (state 2,
// Donor/Desynced), OFF lets it return to Synced once it has caught up.
func (g *Galera) Desync(ctx context.Context, i int, on bool) error {
	m, err := g.node(i)
	if err != nil {
		return err
	}
	v := "OFF"
	if on {
		v = "ON"
	}
	return m.Exec(ctx, "SET GLOBAL wsrep_desync="+v)
}

// State returns node i's wsrep_local_state: 1 Joining, 2 Donor/Desynced,
// 3 Joined, 4 Synced.
func (g *Galera) State(ctx context.Context, i int) (int, error) {
	m, err := g.node(i)
	if err != nil {
		return 0, err
	}
	v, err := m.Status(ctx, "wsrep_local_state")
	if err != nil {
		return 0, err
	}
	s, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("galera: node %d: wsrep_local_state %q: %w", i, v, err)
	}
	return s, nil
}

// WaitState polls until node i's wsrep_local_state is want, the node's
// process dies, or ctx ends.
func (g *Galera) WaitState(ctx context.Context, i, want int) error {
	m, err := g.node(i)
	if err != nil {
		return err
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	got, last := 0, error(nil)
	for {
		got, last = g.State(ctx, i)
		if last == nil && got == want {
			return nil
		}
		select {
		case <-m.done:
			return fmt.Errorf("galera: node %d exited waiting for state %d: %v", i, want, m.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("galera: node %d: state %d, want %d (last error: %v): %w", i, got, want, last, ctx.Err())
		case <-tick.C:
		}
	}
}

// waitMembers polls the bootstrap node until the primary component has n
// members, any node's process dies, a minute passes, or ctx ends.
func (g *Galera) waitMembers(ctx context.Context, n int) error {
	// Joining the group comes before the state transfer and takes seconds;
	// a minute without it is a failure worth a fresh cluster (StartGalera).
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var size string
	var err error
	for {
		size, err = g.nodes[0].Status(ctx, "wsrep_cluster_size")
		if got, _ := strconv.Atoi(size); err == nil && got >= n {
			return nil
		}
		// Any node may die meanwhile, not only the newest: a joiner whose
		// SST fails leaves the group after it was counted in.
		for _, m := range g.nodes {
			select {
			case <-m.done:
				return fmt.Errorf("galera: %s exited while %d members were awaited: %v%s", m.name, n, m.waitErr, m.logTail())
			default:
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("galera: cluster size %q (%v), want %d: %w%s", size, err, n, ctx.Err(), g.logTails())
		case <-tick.C:
		}
	}
}

// logTails is every node's logTail, for an error about the whole cluster.
func (g *Galera) logTails() string {
	var b strings.Builder
	for _, m := range g.nodes {
		b.WriteString(m.logTail())
	}
	return b.String()
}
