// Package ansible holds no code: its tests run playbook.yml and
// rollback.yml with Debian's ansible-playbook, against a fake haguard
// (the play's control flow: waves, gate, fleet rollback, summary) and
// against the real haguard in four test-bed sandboxes.
package ansible

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/haguard/haguard/internal/testbed"
)

func TestMain(m *testing.M) { os.Exit(testbed.RunMain(m)) }

// play is one ansible-playbook run.
type play struct {
	cmd    string // the command line, with paths shortened to their base name
	rc     int
	out    string
	recap  map[string]string       // host -> its PLAY RECAP line
	result map[string]reloadResult // host -> the verdict the role printed
	report *fleetReport            // the summary the last play printed
}

// reloadResult is haguard_reload_report, which the role prints for every
// host: the verdict of haguard's JSON Result, one line per stage.
type reloadResult struct {
	ID         string   `json:"id"`
	Outcome    string   `json:"outcome"`
	OK         bool     `json:"ok"`
	Unchanged  bool     `json:"unchanged"`
	RolledBack bool     `json:"rolled_back"`
	Stages     []string `json:"stages"`
	Findings   []string `json:"findings"`
}

// stage reads the line "[x] name: ..." (ok) or "[!] name: ..." (failed).
func (r reloadResult) stage(name string) (ok, found bool) {
	for _, s := range r.Stages {
		mark, rest, _ := strings.Cut(s, " ")
		if strings.HasPrefix(rest, name+":") {
			return mark == "[x]", true
		}
	}
	return false, false
}

// fleetReport is haguard_fleet_report, printed by the role's summary.yml
// (templates/fleet_report.json.j2).
type fleetReport struct {
	Run            string               `json:"run"`
	Kind           string               `json:"kind"`
	OK             bool                 `json:"ok"`
	Verdict        string               `json:"verdict"`
	Lines          []string             `json:"lines"`
	Changed        []string             `json:"changed"`
	Unchanged      []string             `json:"unchanged"`
	Failed         []string             `json:"failed"`
	RolledBack     []string             `json:"rolled_back"`
	RollbackFailed []string             `json:"rollback_failed"`
	NotReached     []string             `json:"not_reached"`
	NotInRun       []string             `json:"not_in_run"`
	Hosts          map[string]fleetHost `json:"hosts"`
}

type fleetHost struct {
	Wave      int            `json:"wave"`
	Outcome   string         `json:"outcome"`
	Txn       string         `json:"txn"`
	Committed bool           `json:"committed"`
	RC        int            `json:"rc"`
	Error     string         `json:"error"`
	Rollback  *fleetRollback `json:"rollback"`
}

type fleetRollback struct {
	Of      string `json:"of"`
	Txn     string `json:"txn"`
	OK      bool   `json:"ok"`
	RC      int    `json:"rc"`
	Outcome string `json:"outcome"`
	Error   string `json:"error"`
}

var (
	recapLine  = regexp.MustCompile(`(?m)^(\S+)\s+: (ok=\d+.*)$`)
	resultHead = regexp.MustCompile(`(?m)^(?:ok|changed): \[(\S+)\] => `)
)

// needAnsible fails (never skips) when ansible-playbook is missing, and
// skips only when -short asks for the unit tier alone.
func needAnsible(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs ansible-playbook (make deps); -short runs unit tests only")
	}
	bin, err := exec.LookPath("ansible-playbook")
	if err != nil {
		t.Fatalf("ansible-playbook: %v (Debian package ansible-core; make deps installs it)", err)
	}
	return bin
}

// runPlaybook runs playbook (playbook.yml, rollback.yml) of this directory
// with inventory and extra vars (each one -e), with ansible's temp dirs
// under t.TempDir().
func runPlaybook(t *testing.T, playbook, inventory string, extra ...string) play {
	t.Helper()
	bin := needAnsible(t)
	tmp := t.TempDir()
	inv := filepath.Join(tmp, "inventory.ini")
	writeFile(t, inv, inventory)
	args := []string{"-i", inv, playbook}
	for _, e := range extra {
		args = append(args, "-e", e)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(),
		"ANSIBLE_CONFIG="+filepath.Join(".", "ansible.cfg"),
		"ANSIBLE_LOCAL_TEMP="+filepath.Join(tmp, "local"),
		"ANSIBLE_REMOTE_TEMP="+filepath.Join(tmp, "remote"),
		"ANSIBLE_NOCOLOR=1", "ANSIBLE_FORCE_COLOR=0",
		"ANSIBLE_STDOUT_CALLBACK=default",
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	p := play{recap: map[string]string{}, result: map[string]reloadResult{}, cmd: shownCommand(playbook, extra)}
	if err := cmd.Run(); err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("ansible-playbook: %v\n%s", err, out.String())
		}
		p.rc = ee.ExitCode()
	}
	p.out = out.String()
	t.Logf("ansible-playbook %s %s: rc %d\n%s", playbook, strings.Join(extra, " "), p.rc, p.out)
	if i := strings.Index(p.out, "PLAY RECAP"); i >= 0 {
		for _, m := range recapLine.FindAllStringSubmatch(p.out[i:], -1) {
			p.recap[m[1]] = m[2]
		}
	}
	// The role prints `ok: [host] => {"haguard_reload_report": {...}}`
	// ("changed:" when it committed) and, at the end,
	// `ok: [localhost] => {"haguard_fleet_report": {...}}`.
	for _, loc := range resultHead.FindAllStringSubmatchIndex(p.out, -1) {
		host := p.out[loc[2]:loc[3]]
		var v struct {
			Result *reloadResult `json:"haguard_reload_report"`
			Report *fleetReport  `json:"haguard_fleet_report"`
		}
		if err := json.NewDecoder(strings.NewReader(p.out[loc[1]:])).Decode(&v); err != nil {
			continue
		}
		if v.Result != nil {
			p.result[host] = *v.Result
		}
		if v.Report != nil {
			p.report = v.Report
		}
	}
	return p
}

// shownCommand is the command line as a user would type it: the
// inventory is inventory.ini and absolute paths are their base names.
func shownCommand(playbook string, extra []string) string {
	args := []string{"ansible-playbook", "-i", "inventory.ini", playbook}
	for _, e := range extra {
		if k, v, ok := strings.Cut(e, "="); ok && filepath.IsAbs(v) {
			e = k + "=" + filepath.Base(v)
		}
		if strings.ContainsAny(e, " \"'{") {
			e = "'" + e + "'"
		}
		args = append(args, "-e", e)
	}
	return strings.Join(args, " ")
}

func (p play) failedHost(host string) bool { return strings.Contains(p.recap[host], "failed=1") }

// mustReport returns the run's summary, failing the test without one.
func (p play) mustReport(t *testing.T) *fleetReport {
	t.Helper()
	if p.report == nil {
		t.Fatalf("the play printed no haguard_fleet_report")
	}
	return p.report
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sameSet reports whether got holds exactly want, in any order.
func sameSet(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	seen := map[string]int{}
	for _, g := range got {
		seen[g]++
	}
	for _, w := range want {
		if seen[w] == 0 {
			return false
		}
		seen[w]--
	}
	return true
}
