package validate

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Target is the haproxy binary a configuration is read for. Its
// conditional blocks (.if version_atleast(2.8), feature(OPENSSL)) and the
// variables haproxy presets depend on it, so the lint reads the config
// as that binary will.
type Target struct {
	// Bin is the binary's path ("" for a target described by hand).
	Bin string `json:"bin"`
	// Version is what `haproxy -v` prints ("2.6.12-1+deb12u4"); "" when
	// unknown: then version_atleast() is true and version_before() false,
	// which is what haproxy does when its own version does not parse.
	Version string `json:"version"`
	// Features is the "Feature list" line of `haproxy -vv` ("+EPOLL -KQUEUE ...").
	Features string `json:"features"`
	// OpenSSLBuilt is the OpenSSL version haproxy was built with ("3.0.22"),
	// which openssl_version_atleast() compares; SSLLib the one it runs
	// with, as printed ("OpenSSL 3.0.19 27 Jan 2026").
	OpenSSLBuilt string `json:"openssl_built"`
	SSLLib       string `json:"ssl_lib"`
	// Pollers are the available polling systems ("epoll", "poll").
	Pollers []string `json:"pollers"`
	// Presets are the variables haproxy sets itself before it reads the
	// files (HAPROXY_LOCALPEER, and from 2.8 HAPROXY_BRANCH,
	// HAPROXY_STARTUP_VERSION, HAPROXY_*_LOG_FMT): read from the binary,
	// since distributions backport some of them.
	Presets map[string]string `json:"presets"`
	// UnsetEatsQuote: the binary reads `"${UNSET}" x` as `x` (2.9+ and
	// later patch releases of 2.4-2.8), not as an empty word then `x`.
	UnsetEatsQuote bool `json:"unset_eats_quote"`
}

// versionCompare is compare_current_version(): -1 when v is older than
// the target, 0 equal, 1 newer; -2 when the target's version does not
// parse, -3 when v does not.
func (t *Target) versionCompare(v string) int {
	cur := ""
	if t != nil {
		cur = t.Version
	}
	loc, ok := splitVersion(cur)
	if !ok {
		return -2
	}
	mod, ok := splitVersion(v)
	if !ok {
		return -3
	}
	for i := range loc {
		switch {
		case mod[i] < loc[i]:
			return -1
		case mod[i] > loc[i]:
			return 1
		}
	}
	return 0
}

// AtLeast reports whether the target's version is v or newer (false
// when the target's version is unknown).
func (t *Target) AtLeast(v string) bool {
	c := t.versionCompare(v)
	return c == -1 || c == 0
}

// splitVersion is haproxy's split_version(): a.b.c.d-tagN-commit into
// seven numbers; "dev" is 1, "rc" and "pre" 2, a release 3.
func splitVersion(v string) ([7]uint32, bool) {
	var out [7]uint32
	out[4] = 3
	if v == "" {
		return out, false
	}
	p := v
	num := func() (uint32, byte, string) { // value, the byte after it, the rest after that byte
		n, used := strtol(p, 10)
		rest := p[used:]
		if rest == "" {
			return uint32(n), 0, ""
		}
		return uint32(n), rest[0], rest[1:]
	}
	var sep byte
	for k := 0; k < 3; k++ {
		out[k], sep, p = num()
		switch sep {
		case 0:
			return out, true
		case '-':
			return splitVersionTag(out, p)
		case '.':
		default:
			return out, false
		}
	}
	out[3], sep, p = num()
	switch sep {
	case 0:
		return out, true
	case '-':
		return splitVersionTag(out, p)
	}
	return out, false
}

func splitVersionTag(out [7]uint32, p string) ([7]uint32, bool) {
	if p != "" && isDigit(p[0]) {
		return splitVersionCommit(out, p)
	}
	switch {
	case strings.HasPrefix(p, "dev"):
		out[4], p = 1, p[3:]
	case strings.HasPrefix(p, "rc"):
		out[4], p = 2, p[2:]
	case strings.HasPrefix(p, "pre"):
		out[4], p = 2, p[3:]
	default:
		return splitVersionCommit(out, p)
	}
	n, used := strtol(p, 10)
	out[5] = uint32(n)
	rest := p[used:]
	if rest == "" {
		return out, true
	}
	if rest[0] != '-' {
		return out, false
	}
	return splitVersionCommit(out, rest[1:])
}

func splitVersionCommit(out [7]uint32, p string) ([7]uint32, bool) {
	if k := strings.LastIndexByte(p, '-'); k >= 0 {
		s := p[k+1:]
		if s == "" {
			return out, false
		}
		if n, used := strtol(s, 10); used == len(s) {
			out[6] = uint32(n)
		}
		return out, true
	}
	if n, used := strtol(p, 10); used == len(p) && p != "" {
		out[6] = uint32(n)
	}
	return out, true
}

// hasFeature is feature(NAME): NAME appears in the feature list right
// after a '+' (a '-' or a longer word does not count).
func (t *Target) hasFeature(name string) bool {
	if t == nil || name == "" {
		return false
	}
	list := t.Features
	for from := 0; ; {
		k := strings.Index(list[from:], name)
		if k < 0 {
			return false
		}
		k += from
		end := k + len(name)
		if k > 0 && (end == len(list) || list[end] == ' ') {
			switch list[k-1] {
			case '+':
				return true
			case '-':
				return false
			}
		}
		from = k + 1
	}
}

// opensslCompare compares v with the OpenSSL version the target was built
// with, as openssl_compare_current_version() does; ok is false without
// OpenSSL or when a version does not parse (haproxy then fails the .if).
func (t *Target) opensslCompare(v string) (int, bool) {
	if t == nil || t.OpenSSLBuilt == "" {
		return 0, false
	}
	cur, mod := opensslNumber(t.OpenSSLBuilt), opensslNumber(v)
	if cur == 0 || mod == 0 {
		return 0, false
	}
	switch {
	case mod < cur:
		return -1, true
	case mod > cur:
		return 1, true
	}
	return 0, true
}

// opensslNumber is openssl_version_parser(): "3.0.2" to 0x3000002f.
func opensslNumber(v string) uint32 {
	major, n := strtol(v, 10)
	if n == 0 || n >= len(v) || v[n] != '.' || major < 0 || major > 0xf {
		return 0
	}
	v = v[n+1:]
	minor, n := strtol(v, 10)
	if n >= len(v) || v[n] != '.' || minor < 0 || minor > 0xff {
		return 0
	}
	v = v[n+1:]
	fix, n := strtol(v, 10)
	if fix < 0 || fix > 0xff {
		return 0
	}
	v = v[n:]
	var patch, status int64
	switch {
	case v == "":
		status = 0xf
	case v[0] == '-':
		if b, ok := strings.CutPrefix(v[1:], "beta"); ok {
			status, _ = strtol(b, 10)
			if status > 14 {
				return 0
			}
		}
	default:
		patch = 1
		for i := 0; i < len(v); i++ {
			patch += int64(v[i]&^0x20) - 'A'
		}
		status = 0xf
	}
	return uint32(major<<28 | minor<<20 | fix<<12 | (patch&0xff)<<4 | status)
}

// probePresets are the variables a probe asks the binary about.
var probePresets = []string{
	"HAPROXY_LOCALPEER", "HAPROXY_STARTUP_VERSION", "HAPROXY_BRANCH",
	"HAPROXY_HTTP_LOG_FMT", "HAPROXY_HTTPS_LOG_FMT", "HAPROXY_TCP_LOG_FMT",
	"HAPROXY_HTTP_CLF_LOG_FMT", "HAPROXY_CFGFILES", "HAPROXY_MWORKER",
}

const probeUnset = "haguard-probe-unset"

// probeConfig asks the binary, line by line, what it presets and how it
// reads an unset variable; its last line stops the parse at once, so no
// check and no CA load runs.
func probeConfig() string {
	var b strings.Builder
	// A first line without "${NAME-default}": see reading.outgrow.
	b.WriteString("# haguard: what does this haproxy preset?\n")
	for _, v := range probePresets {
		fmt.Fprintf(&b, ".notice \"${%s-%s}\"\n", v, probeUnset)
	}
	b.WriteString(".notice \"${HAGUARD_PROBE_NEVER_SET}\" eaten\n")
	b.WriteString(".alert \"haguard probe done\"\n")
	return b.String()
}

var noticeRe = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`parsing \[[^\]]*:(\d+)\]: (?:'(.*)'\.|Unexpected argument '(.*)' for)`)
})

// ProbeTarget asks bin what a configuration read by it depends on: `bin
// -vv` for the version, features and OpenSSL, and a tiny probe config
// through `bin -c` (with an empty environment) for the preset variables
// and the unset-variable quirk.
func ProbeTarget(ctx context.Context, bin string) (*Target, error) {
	// The two runs are independent: run them side by side, so that the
	// probe costs the check (which waits for it) one haproxy start, not two.
	type vvResult struct {
		out []byte
		err error
	}
	vvc := make(chan vvResult, 1)
	go func() {
		out, err := exec.CommandContext(ctx, bin, "-vv").Output()
		vvc <- vvResult{out, err}
	}()
	presets, eaten, perr := probePresetsOf(ctx, bin)
	vv := <-vvc
	if vv.err != nil {
		return nil, fmt.Errorf("probe %s -vv: %w", bin, vv.err)
	}
	if perr != nil {
		return nil, perr
	}
	t := parseVV(vv.out)
	t.Bin = bin
	t.Presets, t.UnsetEatsQuote = presets, eaten
	return t, nil
}

// probePresetsOf runs the probe config through `bin -c` with an empty
// environment: the variables bin presets, and whether an unset variable
// eats its closing quote.
func probePresetsOf(ctx context.Context, bin string) (map[string]string, bool, error) {
	f, err := os.CreateTemp("", "haguard-probe-*.cfg")
	if err != nil {
		return nil, false, fmt.Errorf("probe %s: %w", bin, err)
	}
	defer os.Remove(f.Name())
	_, werr := f.WriteString(probeConfig())
	if cerr := f.Close(); werr != nil || cerr != nil {
		return nil, false, fmt.Errorf("probe %s: write probe config: %w", bin, errors.Join(werr, cerr))
	}
	cmd := exec.CommandContext(ctx, bin, "-c", "-f", f.Name())
	cmd.Env = []string{}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return nil, false, fmt.Errorf("probe %s -c: %w", bin, err)
	}
	presets := map[string]string{}
	eaten := false
	for _, m := range noticeRe().FindAllStringSubmatch(string(out), -1) {
		n, _ := strconv.Atoi(m[1])
		n-- // the first line is a comment
		switch {
		case n >= 1 && n <= len(probePresets):
			if m[2] != probeUnset && m[3] == "" {
				presets[probePresets[n-1]] = m[2]
			}
		case n == len(probePresets)+1:
			eaten = m[2] == "eaten"
		}
	}
	if !strings.Contains(string(out), "haguard probe done") {
		return nil, false, fmt.Errorf("probe %s -c: unexpected output: %s", bin, bytes.TrimSpace(out))
	}
	return presets, eaten, nil
}

// parseVV reads the parts of `haproxy -vv` a configuration depends on.
func parseVV(out []byte) *Target {
	t := &Target{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	pollers := false
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "HAProxy version ") || strings.HasPrefix(l, "HA-Proxy version "):
			if f := strings.Fields(l); len(f) >= 3 {
				t.Version = f[2]
			}
		case strings.HasPrefix(l, "Feature list : "):
			t.Features = strings.TrimPrefix(l, "Feature list : ")
		case strings.HasPrefix(l, "Built with OpenSSL version : "):
			if f := strings.Fields(strings.TrimPrefix(l, "Built with OpenSSL version : ")); len(f) >= 2 {
				t.OpenSSLBuilt = f[1]
			}
		case strings.HasPrefix(l, "Running on OpenSSL version : "):
			t.SSLLib = strings.TrimPrefix(l, "Running on OpenSSL version : ")
		case strings.HasPrefix(l, "Available polling systems"):
			pollers = true
		case pollers && strings.Contains(l, " : pref="):
			t.Pollers = append(t.Pollers, strings.TrimSpace(strings.SplitN(l, ":", 2)[0]))
		case pollers && strings.TrimSpace(l) != "" && !strings.Contains(l, "pref="):
			pollers = false
		}
	}
	return t
}

// Targets caches probes by build of a binary (path, size, inode, mtime,
// ctime), so a daemon probes each binary once and again after an upgrade,
// and, with File, so does the command line. The zero value is ready to
// use; it is safe for concurrent use.
type Targets struct {
	// File, when set, keeps the probes across processes (each command of
	// the CLI is one): a JSON file, written atomically, that a probe is
	// taken from while its binary's path, size, inode, mtime and ctime
	// are unchanged. Best effort: a file that cannot be read or written
	// only means probing again.
	File string

	mu sync.Mutex
	m  map[targetKey]*Target
}

// targetKey names one build of a binary: a package upgrade or a rebuild
// changes at least one of these.
type targetKey struct {
	Path  string    `json:"path"`
	Size  int64     `json:"size"`
	Ino   uint64    `json:"ino"`
	Mtime time.Time `json:"mtime"`
	Ctime time.Time `json:"ctime"`
}

func keyOf(bin string, st os.FileInfo) targetKey {
	k := targetKey{Path: bin, Size: st.Size(), Mtime: st.ModTime()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		k.Ino = sys.Ino
		k.Ctime = time.Unix(sys.Ctim.Sec, sys.Ctim.Nsec)
	}
	return k
}

// Get returns the probe of bin, from the cache when the file has not
// changed since.
func (ts *Targets) Get(ctx context.Context, bin string) (*Target, error) {
	st, err := os.Stat(bin)
	if err != nil {
		return nil, fmt.Errorf("probe %s: %w", bin, err)
	}
	k := keyOf(bin, st)
	ts.mu.Lock()
	t, ok := ts.m[k]
	ts.mu.Unlock()
	if ok {
		return t, nil
	}
	if t = ts.load(k); t == nil {
		if t, err = ProbeTarget(ctx, bin); err != nil {
			return nil, err
		}
		ts.save(k, t)
	}
	ts.mu.Lock()
	if ts.m == nil {
		ts.m = map[targetKey]*Target{}
	}
	for old := range ts.m {
		if old.Path == bin {
			delete(ts.m, old) // the binary was replaced
		}
	}
	ts.m[k] = t
	ts.mu.Unlock()
	return t, nil
}

// cachedTarget is one entry of Targets.File.
type cachedTarget struct {
	Key    targetKey `json:"key"`
	Target *Target   `json:"target"`
}

// load is the probe File holds for k, or nil.
func (ts *Targets) load(k targetKey) *Target {
	if ts.File == "" {
		return nil
	}
	b, err := os.ReadFile(ts.File)
	if err != nil {
		return nil
	}
	var c cachedTarget
	if json.Unmarshal(b, &c) != nil || c.Target == nil || !sameKey(c.Key, k) {
		return nil
	}
	return c.Target
}

func sameKey(a, b targetKey) bool {
	return a.Path == b.Path && a.Size == b.Size && a.Ino == b.Ino && a.Mtime.Equal(b.Mtime) && a.Ctime.Equal(b.Ctime)
}

// save writes the probe of k to File, replacing what it held.
func (ts *Targets) save(k targetKey, t *Target) {
	if ts.File == "" {
		return
	}
	b, err := json.Marshal(cachedTarget{Key: k, Target: t})
	if err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(ts.File), ".haproxy-target-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(b)
	if cerr := tmp.Close(); werr != nil || cerr != nil || os.Rename(tmp.Name(), ts.File) != nil {
		os.Remove(tmp.Name())
	}
}
