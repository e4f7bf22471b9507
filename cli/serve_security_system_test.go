package cli

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haguard/haguard/api"
	"github.com/haguard/haguard/internal/testbed"
)

// TestServeIfMatchUnderLock is issue 17's lost update, against haguard
// serve as deploy/haguard.service: a command-line reload holds the lock
// (paused before its install) and commits c1, while an API job whose
// If-Match names the config before c1 waits behind it. The API job must
// end refused and c1 must stay installed.
func TestServeIfMatchUnderLock(t *testing.T) {
	b := newServeBox(t, "")
	c1 := strings.Replace(b.good, "timeout client 30s", "timeout client 41s", 1)
	c2 := strings.Replace(b.good, "timeout client 30s", "timeout client 42s", 1)
	c1File := filepath.Join(b.s.Dir(), "c1.cfg")
	writeFile(t, c1File, c1, 0o600)

	cli := b.s.Start(t, "env", "HAGUARD_TEST_PAUSE_AT=install", "HAGUARD_TEST_PAUSE_FOR=4s",
		testbed.BuildHaguard(t), "--config-file", filepath.Join(b.s.Dir(), "haguard.yaml"),
		"reload", "--candidate", c1File, "--reason", "c1 from the command line")
	for i := 0; !strings.Contains(cli.Output(), "HAGUARD_TEST_PAUSED install"); i++ {
		if i > 600 {
			t.Fatalf("the command-line reload never reached install: %s", cli.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The config on disk is still the one the client read: submission's
	// check passes, the job waits for the lock.
	code, _, data := b.do(t, "POST", "/v1/reloads", strings.NewReader(c2), map[string]string{"If-Match": sha(b.good)})
	var j api.JobView
	if code != http.StatusAccepted || json.Unmarshal(data, &j) != nil {
		t.Fatalf("POST with the pre-c1 If-Match while the CLI holds the lock: %d %s", code, data)
	}
	if err := cli.Err(); err != nil {
		t.Fatalf("command-line reload: %v\n%s", err, cli.Output())
	}
	j = b.waitJob(t, j.ID)
	if j.Result != api.ResultRefused || !strings.Contains(j.Error, "stale") {
		t.Fatalf("API job with a stale If-Match: %+v\n%s", j, b.journal(t))
	}
	if disk, err := os.ReadFile(b.s.HAProxyConfig()); err != nil || string(disk) != c1 {
		t.Fatalf("the config on disk is not c1 (%v):\n%s", err, disk)
	}
	// Already stale at submission: 412, no job.
	code, _, data = b.do(t, "POST", "/v1/reloads", strings.NewReader(c2), map[string]string{"If-Match": sha(b.good)})
	if code != http.StatusPreconditionFailed {
		t.Fatalf("stale at submission: %d %s", code, data)
	}
}
