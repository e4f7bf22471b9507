package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haguard/haguard/api"
)

// 50 reload requests sent to serve within 2 s, each with its own
// candidate, run as at most a handful of reloads (reload.min_interval
// 5s): every request is answered with the id of the reload it joined,
// each of those ends ok, and the newest candidate is what runs.
func TestServeReloadStormMerges(t *testing.T) {
	b := newServeBoxYAML(t, func(y string) string {
		return strings.Replace(y, "  min_interval: 0s\n", "  min_interval: 5s\n", 1)
	}, "")
	g := &ghostBox{s: b.s}
	before := g.showProc(t)
	const n = 50
	views := make([]api.JobView, n)
	var wg sync.WaitGroup
	begin := time.Now()
	for i := range n {
		time.Sleep(25 * time.Millisecond) // 50 requests over ~1.25 s
		wg.Go(func() {
			code, _, data := b.do(t, "POST", "/v1/reloads", strings.NewReader(b.good+fmt.Sprintf("# storm %d\n", i)), nil)
			if code != 202 || json.Unmarshal(data, &views[i]) != nil || views[i].ID == "" {
				t.Errorf("request %d: %d %s", i, code, data)
			}
		})
	}
	wg.Wait()
	sent := time.Since(begin)
	if t.Failed() {
		t.FailNow()
	}
	if sent > 2*time.Second {
		t.Fatalf("sending took %v, want the 50 requests within 2 s", sent)
	}
	jobs := map[string]int{}
	for _, v := range views {
		jobs[v.ID]++
	}
	for id := range jobs {
		if j := b.waitJob(t, id); j.Result != api.ResultOK {
			t.Fatalf("job %s: %+v\n%s", id, j, b.journal(t))
		}
	}
	after := g.showProc(t)
	reloads := after.Reloads - before.Reloads
	t.Logf("50 requests in %v: %d jobs %v, %d haproxy reloads", sent, len(jobs), jobs, reloads)
	if reloads < 1 || reloads > 3 || len(jobs) > 3 {
		t.Fatalf("%d haproxy reloads and %d jobs for 50 requests, want a handful at most (<= 3)", reloads, len(jobs))
	}
	disk, err := os.ReadFile(b.s.HAProxyConfig())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(disk), fmt.Sprintf("# storm %d\n", n-1)) {
		t.Fatalf("the config that runs is not the newest candidate:\n%s", disk)
	}
}
