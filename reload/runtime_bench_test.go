package reload_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/agent/master"
	"github.com/haguard/haguard/internal/testbed"
)

// BenchmarkSystemRuntimeWeight compares, in one sandbox with three live
// haproxy processes (the current worker and two old workers, each
// holding a connection), a weight change made without a reload
// (`haguard server set be_test/s1 --weight N`: lock, edit, haproxy -c,
// applied through the master CLI to every process and read back, then
// snapshot, install, history, audit) with a reload of the same change
// (`haguard reload --candidate`: the whole transaction). Each iteration
// runs both, with a new weight. It reports each one's wall time (the
// binary run in the box) and the transaction's own duration_ms. Run:
//
//	HAGUARD_TIERS=system go test -run '^$' -bench BenchmarkSystemRuntimeWeight -benchtime 20x ./reload/
func BenchmarkSystemRuntimeWeight(b *testing.B) {
	testbed.Require(b, testbed.TierSystem)
	bx := &runtimeBox{box: &box{s: testbed.Boot(b), bin: testbed.BuildHaguard(b)}}
	bx.listen = fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(b))
	bx.s1, bx.s2 = testbed.TCPBackend(b), testbed.TCPBackend(b)
	bx.mapFile = filepath.Join(bx.s.Dir(), "clients.map")
	bx.s.WriteFiles(b, map[string]string{bx.mapFile: "10.0.0.1 a\n"})
	bx.good = runtimeConfig(bx.listen, bx.s1, bx.s2, bx.mapFile, "")
	bx.s.StartHAProxy(b, bx.good)
	bx.state = filepath.Join(bx.s.Dir(), "state")
	bx.yaml = filepath.Join(bx.s.Dir(), "haguard.yaml")
	writeYAML(b, bx.box)
	ctx := context.Background()
	stageMS := map[string]int64{}
	run := func(args ...string) (time.Duration, int64) {
		b.Helper()
		t0 := time.Now()
		out, errOut, err := bx.s.Run(ctx, append([]string{bx.bin, "--config-file", bx.yaml, "--log-level", "error", "--format", "json"}, args...)...)
		wall := time.Since(t0)
		if err != nil {
			b.Fatalf("%v: %v\n%s\n%s", args, err, out, errOut)
		}
		var r struct {
			DurationMS int64 `json:"duration_ms"`
			Stages     []struct {
				Name       string `json:"name"`
				DurationMS int64  `json:"duration_ms"`
			} `json:"stages"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			b.Fatalf("%v: %v", args, err)
		}
		if args[0] == "server" {
			for _, st := range r.Stages {
				stageMS[st.Name] += st.DurationMS
			}
		}
		return wall, r.DurationMS
	}
	for range 2 { // two old workers, each holding a connection
		bx.s.HoldConnection(b, bx.listen)
		run("reload", "--force")
	}
	var rtWall, rlWall time.Duration
	var rtTxn, rlTxn int64
	var procs int
	n := 0
	for b.Loop() {
		w := 2 + n%50
		b.StopTimer()
		d, err := os.ReadFile(bx.s.HAProxyConfig())
		if err != nil {
			b.Fatal(err)
		}
		cur := string(d)
		cand := filepath.Join(bx.s.Dir(), "w.cfg")
		if err := os.WriteFile(cand, []byte(strings.Replace(cur, "weight "+weightOf(cur), "weight "+fmt.Sprint(w+100), 1)), 0o644); err != nil {
			b.Fatal(err)
		}
		out, err := bx.s.MasterCLI(ctx, "show proc")
		sp, perr := master.ParseShowProc(out)
		if err != nil || perr != nil {
			b.Fatal(err, perr)
		}
		procs = len(sp.Workers) + len(sp.OldWorkers)
		b.StartTimer()
		wall, txn := run("server", "set", "be_test/s1", "--weight", fmt.Sprint(w))
		rtWall += wall
		rtTxn += txn
		wall, txn = run("reload", "--candidate", cand)
		rlWall += wall
		rlTxn += txn
		n++
	}
	b.ReportMetric(float64(rtWall.Milliseconds())/float64(n), "runtime-wall-ms/op")
	b.ReportMetric(float64(rtTxn)/float64(n), "runtime-txn-ms/op")
	b.ReportMetric(float64(rlWall.Milliseconds())/float64(n), "reload-wall-ms/op")
	b.ReportMetric(float64(rlTxn)/float64(n), "reload-txn-ms/op")
	b.ReportMetric(float64(procs), "processes")
	// Where the runtime change's time goes: check is lint and haproxy -c
	// of the edited config; apply is the master CLI round trips to every
	// process (read, set, read back).
	b.ReportMetric(float64(stageMS["check"])/float64(n), "runtime-check-ms/op")
	b.ReportMetric(float64(stageMS["apply"])/float64(n), "runtime-apply-ms/op")
	b.ReportMetric(float64(stageMS["snapshot"]+stageMS["install"])/float64(n), "runtime-persist-ms/op")
}

// weightOf is s1's weight in cfg.
func weightOf(cfg string) string {
	i := strings.Index(cfg, "server s1 ")
	l := cfg[i:]
	l = l[:strings.Index(l, "\n")]
	f := strings.Fields(l)
	for j := range f {
		if f[j] == "weight" && j+1 < len(f) {
			return f[j+1]
		}
	}
	return ""
}
