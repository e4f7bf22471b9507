// Package config loads haguard.yaml: what the haproxy config cannot say.
//
// Every field has a default matching Debian's haproxy package, so haguard
// runs without any file. Loading is strict: an unknown field, a duplicate
// key or a time without a unit is an error that names its line.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// DefaultPath is where the Debian package installs haguard.yaml.
const DefaultPath = "/etc/haguard/haguard.yaml"

// MaxFileSize bounds what Load reads; a haguard.yaml is a few KiB.
const MaxFileSize = 1 << 20

// Config is haguard.yaml.
type Config struct {
	HAProxy HAProxy `yaml:"haproxy"`
	Systemd Systemd `yaml:"systemd"`
	// StateDir holds the lock, the journal, the audit log and the history.
	StateDir string `yaml:"state_dir"`
	Reload   Reload `yaml:"reload"`
	Sweep    Sweep  `yaml:"sweep"`
	// Generations bounds the old worker generations (generations.go).
	Generations Generations `yaml:"generations"`
	Probe       Probe       `yaml:"probe"`
	Facts       Facts       `yaml:"facts"`
	Path        Path        `yaml:"path"`
	Lint        Lint        `yaml:"lint"`
	API         API         `yaml:"api"`
	Policy      Policy      `yaml:"policy"`

	// File is the absolute path Load read ("" for the built-in
	// defaults): what a helper process of haguard is given to read the
	// same settings.
	File string `yaml:"-"`
}

// HAProxy says where the managed haproxy lives. What is empty is read from
// the unit; what is set must agree with it.
type HAProxy struct {
	// Configs are the -f arguments (files or directories), in order.
	Configs      []string `yaml:"configs"`
	Binary       string   `yaml:"binary"`
	MasterSocket string   `yaml:"master_socket"`
	StatsSocket  string   `yaml:"stats_socket"`
	// ProcessNames select haproxy processes by exe basename or comm.
	ProcessNames []string `yaml:"process_names"`
	// CheckTimeout ends a `haproxy -c` that runs longer (its whole
	// process group is killed) and refuses the candidate.
	CheckTimeout Duration `yaml:"check_timeout"`
	// CheckMemoryMax bounds the address space of `haproxy -c` (RLIMIT_AS).
	CheckMemoryMax Size `yaml:"check_memory_max"`
	// CheckUser and CheckGroups are who `haproxy -c` runs as for an
	// untrusted (API) candidate: no capabilities, no supplementary group
	// but these, no new privileges.
	CheckUser   string   `yaml:"check_user"`
	CheckGroups []string `yaml:"check_groups"`
}

// Systemd names the unit and how to reach systemd.
type Systemd struct {
	Unit string `yaml:"unit"`
	// Units are the units `haguard serve` watches, names or globs
	// (haproxy@*.service); empty: Unit alone. Each has its own state dir
	// (ForUnit).
	Units []string `yaml:"units"`
	// BusAddress is a D-Bus address ("unix:path=/run/dbus/system_bus_socket").
	// Empty means the default system bus.
	BusAddress string `yaml:"bus_address"`
}

// Reload tunes the reload transaction.
type Reload struct {
	SettleTimeout Duration `yaml:"settle_timeout"`
	// Lock is "wait" (a second reload queues) or "fail" (it fails fast).
	Lock         string   `yaml:"lock"`
	LockTimeout  Duration `yaml:"lock_timeout"`
	HistoryKeep  int      `yaml:"history_keep"`
	KillGhosts   bool     `yaml:"kill_ghosts"`
	KillGrace    Duration `yaml:"kill_grace"`
	ProbeOnStart bool     `yaml:"probe"`
	// Backends is the policy the servers' health after a reload is
	// judged by: previously-up, any-up or ignore.
	Backends string `yaml:"backends"`
	// BackendWait bounds the wait for the new generation's first health
	// checks before the servers are judged.
	BackendWait Duration `yaml:"backend_wait"`
	// ConfirmEvery is how often a --confirm-within window is probed.
	ConfirmEvery Duration `yaml:"confirm_every"`
	// MinInterval is the least time between two reloads of the unit:
	// serve merges the requests that arrive inside it into one reload,
	// the command line waits it out (or fails fast with --no-wait). The
	// Data Plane API's reload_delay (5s) is the anchor. 0s: no minimum.
	MinInterval Duration `yaml:"min_interval"`
}

// Sweep tunes the daemon's periodic ghost sweep.
type Sweep struct {
	Interval   Duration `yaml:"interval"`
	KillGhosts bool     `yaml:"kill_ghosts"`
	KillGrace  Duration `yaml:"kill_grace"`
	// Settle is how long an old-generation worker may keep LISTENing after
	// a reload before it counts as divergent.
	Settle Duration `yaml:"settle"`
}

// Probe lists what to probe after a reload; empty means every bind address.
type Probe struct {
	Targets     []ProbeTarget `yaml:"targets"`
	Count       int           `yaml:"count"`
	Concurrency int           `yaml:"concurrency"`
	Timeout     Duration      `yaml:"timeout"`
	MySQL       DBAuth        `yaml:"mysql"`
}

// ProbeTarget is one address to probe.
type ProbeTarget struct {
	Address string `yaml:"address"`
	// Kind is tcp, mysql, http or idle-hold; empty means inferred.
	Kind   string `yaml:"kind"`
	Count  int    `yaml:"count"`
	Send   string `yaml:"send"`
	Expect string `yaml:"expect"`
	// HTTP only.
	Path         string `yaml:"path"`
	ExpectStatus int    `yaml:"expect_status"`
	ExpectBody   string `yaml:"expect_body"`
	// HTTP only: the Host header.
	Host string `yaml:"host"`
	// Idle-hold only. Over is the protocol on the held connection, mysql
	// or tcp; empty means inferred from the haproxy config or the port.
	Idle Duration `yaml:"idle"`
	Over string   `yaml:"over"`
}

// DBAuth are credentials for MySQL/MariaDB. A password is never logged.
type DBAuth struct {
	User         string `yaml:"user"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	DefaultsFile string `yaml:"defaults_file"`
}

// Facts says where lint facts come from.
type Facts struct {
	// Mode is none, declared or live.
	Mode string `yaml:"mode"`
	DB   DBAuth `yaml:"db"`
	// Backends declares what the config cannot say about a backend.
	Backends map[string]BackendFacts `yaml:"backends"`
}

// BackendFacts are declared facts about one haproxy backend.
type BackendFacts struct {
	Galera             *bool     `yaml:"galera"`
	AvailableWhenDonor bool      `yaml:"available_when_donor"`
	InteractiveClients bool      `yaml:"interactive_clients"`
	WaitTimeout        *Duration `yaml:"wait_timeout"`
	LongestQuery       *Duration `yaml:"longest_query"`
}

// Path declares what stands in front of and behind haproxy.
type Path struct {
	Clients     []Client    `yaml:"clients"`
	Middleboxes []Middlebox `yaml:"middleboxes"`
}

// Client is an application connection pool.
type Client struct {
	Name string `yaml:"name"`
	// Kind: sqlalchemy, django, hikaricp, go, pgbouncer, pdo, generic.
	Kind string `yaml:"kind"`
	// Frontend is the haproxy frontend or listen it reaches; empty = all.
	Frontend string `yaml:"frontend"`
	// SQLAlchemy.
	PoolRecycle *Duration `yaml:"pool_recycle"`
	PrePing     bool      `yaml:"pool_pre_ping"`
	// Django; "unlimited" for CONN_MAX_AGE=None.
	ConnMaxAge   *Duration `yaml:"conn_max_age"`
	HealthChecks bool      `yaml:"conn_health_checks"`
	// HikariCP.
	MaxLifetime     *Duration `yaml:"max_lifetime"`
	IdleTimeout     *Duration `yaml:"idle_timeout"`
	KeepaliveTime   *Duration `yaml:"keepalive_time"`
	MinIdleBelowMax bool      `yaml:"min_idle_below_max"`
	// Go database/sql.
	ConnMaxIdleTime *Duration `yaml:"conn_max_idle_time"`
	ConnMaxLifetime *Duration `yaml:"conn_max_lifetime"`
	// pgbouncer.
	ServerIdleTimeout *Duration `yaml:"server_idle_timeout"`
	ServerLifetime    *Duration `yaml:"server_lifetime"`
	// PDO.
	Persistent bool `yaml:"persistent"`
	// Socket-level keepalive on the app host.
	SoKeepalive      bool      `yaml:"so_keepalive"`
	TCPKeepaliveTime *Duration `yaml:"tcp_keepalive_time"`
	Interactive      bool      `yaml:"interactive"`
}

// Middlebox is a stateful device on a hop of the path.
type Middlebox struct {
	Name string `yaml:"name"`
	// Kind: f5-ltm, f5-ltm-tcp, fortigate, asa, paloalto, aws-nlb, aws-alb,
	// aws-clb, azure-lb, gcp-nat, conntrack, kube-proxy, swarm-ipvs, generic.
	Kind string `yaml:"kind"`
	// Hop is "client" (app to haproxy) or "server" (haproxy to db).
	Hop            string    `yaml:"hop"`
	IdleTimeout    *Duration `yaml:"idle_timeout"`
	L7             *bool     `yaml:"l7"`
	ResetOnTimeout *bool     `yaml:"reset_on_timeout"`
}

// API configures haguard serve.
type API struct {
	// Listen is host:port or unix:/path.
	Listen       string   `yaml:"listen"`
	TokenFile    string   `yaml:"token_file"`
	MaxBodyBytes int64    `yaml:"max_body_bytes"`
	ReadTimeout  Duration `yaml:"read_timeout"`
	WriteTimeout Duration `yaml:"write_timeout"`
	IdleTimeout  Duration `yaml:"idle_timeout"`
	// MetricsListen, when set, serves /metrics alone on host:port (any
	// address: Prometheus may scrape from another host), without the
	// API's token.
	MetricsListen string `yaml:"metrics_listen"`
	// MetricsWebConfig is a Prometheus exporter-toolkit web config file
	// (TLS, client certificates, basic auth) for MetricsListen.
	MetricsWebConfig string `yaml:"metrics_web_config"`
}

// DefaultMinInterval is reload.min_interval's default: the Data Plane
// API's reload_delay.
const DefaultMinInterval = 5 * time.Second

// Default returns the configuration of a stock Debian haproxy host.
func Default() Config {
	return Config{
		HAProxy: HAProxy{
			// Configs, Binary, MasterSocket and StatsSocket are read
			// from the unit (host.Discover), else Debian's.
			ProcessNames:   []string{"haproxy"},
			CheckTimeout:   Duration(DefaultCheckTimeout),
			CheckMemoryMax: DefaultCheckMemory,
			CheckUser:      DefaultCheckUser,
			CheckGroups:    []string{},
		},
		Systemd:  Systemd{Unit: "haproxy.service"},
		StateDir: "/var/lib/haguard",
		Reload: Reload{
			SettleTimeout: Duration(15 * time.Second),
			Lock:          "wait",
			LockTimeout:   Duration(2 * time.Minute),
			HistoryKeep:   20,
			KillGrace:     Duration(10 * time.Second),
			ProbeOnStart:  true,
			Backends:      "previously-up",
			BackendWait:   Duration(10 * time.Second),
			ConfirmEvery:  Duration(5 * time.Second),
			MinInterval:   Duration(DefaultMinInterval),
		},
		Sweep: Sweep{
			Interval:  Duration(30 * time.Second),
			KillGrace: Duration(10 * time.Second),
			Settle:    Duration(5 * time.Second),
		},
		Generations: DefaultGenerations(),
		Probe: Probe{
			Concurrency: 8,
			Timeout:     Duration(3 * time.Second),
		},
		Facts: Facts{Mode: "declared"},
		API: API{
			Listen:       "127.0.0.1:9180",
			TokenFile:    "/etc/haguard/token",
			MaxBodyBytes: 4 << 20,
			ReadTimeout:  Duration(30 * time.Second),
			WriteTimeout: Duration(5 * time.Minute),
			IdleTimeout:  Duration(2 * time.Minute),
		},
		Policy: DefaultPolicy(),
	}
}

// Load reads path over the defaults. A missing file at the default path
// is not an error (haguard needs no file); a missing file that was named
// explicitly is.
func Load(path string, explicit bool) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !explicit {
			return Default(), nil
		}
		return Config{}, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return Config{}, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return Config{}, fmt.Errorf("%s: larger than %d bytes", path, MaxFileSize)
	}
	cfg, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	if cfg.File, err = filepath.Abs(path); err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes YAML over the defaults and validates the result.
func Parse(data []byte) (Config, error) {
	cfg := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, cleanYAMLError(err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Config{}, errors.New("more than one YAML document (a second '---'): haguard.yaml is one mapping")
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Validate checks values that YAML types cannot.
func (c Config) Validate() error {
	var errs []error
	for i, f := range c.HAProxy.Configs {
		if f == "" {
			errs = append(errs, fmt.Errorf("haproxy.configs[%d]: empty path", i))
		}
	}
	if c.Systemd.Unit == "" {
		errs = append(errs, errors.New("systemd.unit: must not be empty"))
	}
	for i, u := range c.Systemd.Units {
		if u == "" || strings.ContainsAny(u, "/ \t") {
			errs = append(errs, fmt.Errorf("systemd.units[%d]: %q is not a unit name or glob", i, u))
		}
	}
	if c.Reload.Lock != "wait" && c.Reload.Lock != "fail" {
		errs = append(errs, fmt.Errorf("reload.lock: %q is not wait or fail", c.Reload.Lock))
	}
	switch c.Reload.Backends {
	case "previously-up", "any-up", "ignore":
	default:
		errs = append(errs, fmt.Errorf("reload.backends: %q is not previously-up, any-up or ignore", c.Reload.Backends))
	}
	if c.Reload.BackendWait < 0 {
		errs = append(errs, errors.New("reload.backend_wait: must not be negative"))
	}
	if c.Reload.ConfirmEvery < Duration(100*time.Millisecond) {
		errs = append(errs, errors.New("reload.confirm_every: must be at least 100ms"))
	}
	if c.Reload.MinInterval < 0 {
		errs = append(errs, errors.New("reload.min_interval: must be a time (0s: no minimum), not unlimited"))
	}
	errs = append(errs, c.Generations.validate()...)
	if c.Reload.HistoryKeep < 1 {
		errs = append(errs, errors.New("reload.history_keep: must be at least 1"))
	}
	if c.Sweep.Interval <= 0 {
		errs = append(errs, errors.New("sweep.interval: must be positive"))
	}
	switch c.Facts.Mode {
	case "none", "declared", "live":
	default:
		errs = append(errs, fmt.Errorf("facts.mode: %q is not none, declared or live", c.Facts.Mode))
	}
	if c.Probe.Count < 0 || c.Probe.Concurrency < 1 {
		errs = append(errs, errors.New("probe: count must be >= 0 and concurrency >= 1"))
	}
	for i, t := range c.Probe.Targets {
		if t.Address == "" {
			errs = append(errs, fmt.Errorf("probe.targets[%d].address: required", i))
		}
		switch t.Kind {
		case "", "tcp", "mysql", "http", "idle-hold":
		default:
			errs = append(errs, fmt.Errorf("probe.targets[%d].kind: %q is not tcp, mysql, http or idle-hold", i, t.Kind))
		}
		switch t.Over {
		case "", "tcp", "mysql":
		default:
			errs = append(errs, fmt.Errorf("probe.targets[%d].over: %q is not mysql or tcp", i, t.Over))
		}
	}
	for i, m := range c.Path.Middleboxes {
		if _, ok := MiddleboxDefaults[m.Kind]; !ok {
			errs = append(errs, fmt.Errorf("path.middleboxes[%d].kind: unknown kind %q", i, m.Kind))
		}
		if m.Hop != "client" && m.Hop != "server" {
			errs = append(errs, fmt.Errorf("path.middleboxes[%d].hop: %q is not client or server", i, m.Hop))
		}
	}
	for i, cl := range c.Path.Clients {
		if _, ok := clientKinds[cl.Kind]; !ok {
			errs = append(errs, fmt.Errorf("path.clients[%d].kind: unknown kind %q", i, cl.Kind))
		}
	}
	errs = append(errs, c.Lint.validate()...)
	if c.API.MetricsWebConfig != "" && c.API.MetricsListen == "" {
		errs = append(errs, errors.New("api.metrics_web_config: set api.metrics_listen too (the web config is for that listener)"))
	}
	if c.API.MaxBodyBytes <= 0 {
		errs = append(errs, errors.New("api.max_body_bytes: must be positive"))
	}
	errs = append(errs, c.HAProxy.validateCheck()...)
	errs = append(errs, c.Policy.validate()...)
	return errors.Join(errs...)
}

var clientKinds = map[string]struct{}{
	"sqlalchemy": {}, "django": {}, "hikaricp": {}, "go": {}, "pgbouncer": {}, "pdo": {}, "generic": {},
}

// MiddleboxDefault is a device kind's documented idle timeout (RULES.md §1.D).
type MiddleboxDefault struct {
	Idle           time.Duration // 0 = none documented: the user must declare one
	L7             bool
	ResetOnTimeout bool
}

// MiddleboxDefaults are the documented defaults per kind.
var MiddleboxDefaults = map[string]MiddleboxDefault{
	"f5-ltm":     {Idle: 300 * time.Second, ResetOnTimeout: true},
	"f5-ltm-tcp": {Idle: 300 * time.Second, ResetOnTimeout: true}, // TCP profile: keepalive refreshes it; declare l7: true with an HTTP profile
	"fortigate":  {Idle: 3600 * time.Second},
	"asa":        {Idle: time.Hour},
	"paloalto":   {Idle: 3600 * time.Second},
	"aws-nlb":    {Idle: 350 * time.Second, ResetOnTimeout: true},
	"aws-alb":    {Idle: 60 * time.Second, L7: true, ResetOnTimeout: true},
	"aws-clb":    {Idle: 60 * time.Second, L7: true, ResetOnTimeout: true},
	"azure-lb":   {Idle: 4 * time.Minute},
	"gcp-nat":    {Idle: 1200 * time.Second},
	"conntrack":  {Idle: 432000 * time.Second},
	"kube-proxy": {Idle: 24 * time.Hour},
	"swarm-ipvs": {Idle: 900 * time.Second},
	"generic":    {},
}

// ForUnit is c for another unit. haguard.yaml's own unit (systemd.unit)
// keeps everything. Any other gets state_dir/units/<unit> (its own lock,
// journal, history and audit log), and loses the overrides that describe
// systemd.unit's haproxy: its -f files, binary and sockets are discovered
// from that unit, and its probe targets are inferred from its own binds.
// Kept, haproxy.configs would refuse every other unit (they disagree with
// its -f), and probe.targets would probe systemd.unit's listeners after
// another unit's reload: a verdict about the wrong haproxy.
func ForUnit(c Config, unit string) Config {
	if unit == c.Systemd.Unit {
		return c
	}
	c.StateDir = filepath.Join(c.StateDir, "units", unit)
	c.Systemd.Unit = unit
	c.HAProxy.Configs, c.HAProxy.Binary = nil, ""
	c.HAProxy.MasterSocket, c.HAProxy.StatsSocket = "", ""
	c.Probe.Targets = nil
	return c
}
