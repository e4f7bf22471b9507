package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/haguard/haguard/config"
)

// app carries what every command shares: the streams, the global flags and
// the exit code of the command that ran. It is built fresh by run, so tests
// can call run many times in one process.
type app struct {
	stdout, stderr io.Writer
	version        string

	configFile string
	format     string
	logLevel   string

	code int
}

// Run executes one haguard invocation and returns its exit code. version
// is the binary's own, stamped at build time.
func Run(ctx context.Context, version string, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr, version: version}
	root := a.rootCmd(invoked(args))
	if len(args) > 0 && strings.HasPrefix(args[0], cobra.ShellCompRequestCmd) {
		// Only the shells' completion requests need the value functions:
		// every other command saves registering them at start-up.
		a.registerCompletions(root)
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "haguard: %v\n", err)
		if !strings.Contains(err.Error(), "--help") {
			fmt.Fprintln(stderr, "Run 'haguard --help' for usage.")
		}
		return exitUsage
	}
	return a.code
}

// Root is the command tree of a binary of this version, for tools that
// describe it (man pages, completions: packaging/cmd/gendocs).
func Root(version string) *cobra.Command {
	a := &app{stdout: os.Stdout, stderr: os.Stderr, version: version}
	root := a.rootCmd("")
	annotateManual(root)
	return root
}

// rootCmd is the command tree. With only set to a top-level command's
// name, that command is the only one built: a run uses one, and building
// the other sixteen (their flags, their help) is a measurable part of
// the start-up on a host where a page fault is dear (BenchmarkRootCmd,
// docs/benchmarks.md). Help, completion and unknown names get the whole
// tree, so their listings and suggestions are cobra's own.
func (a *app) rootCmd(only string) *cobra.Command {
	root := &cobra.Command{
		Use:   "haguard",
		Short: "Safe HAProxy reloads: lint, reload, sweep for ghosts, probe, roll back",
		Long: `haguard replaces 'systemctl reload haproxy' with a transaction that cannot
silently go wrong: it lints timeouts along the path and runs 'haproxy -c',
snapshots the running config, reloads through systemd, waits for the new
worker generation, sweeps for ghost processes, probes every listener, and
rolls back on failure.

Exit codes: 0 all good; 1 negative verdict (findings, ghosts, failed probes,
reload refused or rolled back); 2 usage error or unreadable input; 3 the host
is left in a bad state and needs a human.`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: true},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if a.format != "human" && a.format != "json" && a.format != "jsonl" {
				return usagef(fmt.Errorf("--format: %q is not human, json or jsonl", a.format))
			}
			if _, err := parseLevel(a.logLevel); err != nil {
				return usagef(err)
			}
			return nil
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usagef(err) })
	pf := root.PersistentFlags()
	pf.StringVar(&a.configFile, "config-file", config.DefaultPath, "haguard.yaml to read (optional at the default path)")
	pf.StringVar(&a.format, "format", envOr("HAGUARD_FORMAT", "human"),
		"output format: human, json, or jsonl (reload and rollback's steps as they happen, one JSON object per line, then the result) (env HAGUARD_FORMAT)")
	pf.StringVar(&a.logLevel, "log-level", envOr("HAGUARD_LOG_LEVEL", "info"), "log level on stderr: debug, info, warn, error (env HAGUARD_LOG_LEVEL)")

	subs := a.subcommands()
	if i := slices.IndexFunc(subs, func(s subcommand) bool { return s.name == only }); i >= 0 {
		subs = subs[i : i+1]
	}
	for _, s := range subs {
		root.AddCommand(s.build())
	}
	// haguard --version prints what `haguard version` does.
	root.Version = a.version
	root.SetVersionTemplate(strings.NewReplacer("{", "{{`{`}}", "}", "{{`}`}}").Replace(versionLine(a.version)) + "\n")
	root.Flags().Bool("version", false, "print haguard's version and exit")
	// The examples and man-page annotations are only read by help (and
	// the man pages, Root): set them when help is asked for, not at
	// every start.
	help := root.HelpFunc()
	root.SetHelpFunc(func(c *cobra.Command, args []string) {
		annotateManual(c.Root())
		help(c, args)
	})
	return root
}

// subcommand is a top-level command, built on demand.
type subcommand struct {
	name  string
	build func() *cobra.Command
}

// subcommands lists the top-level commands in help's order; name is the
// first word of the command's Use (TestSubcommandNames).
func (a *app) subcommands() []subcommand {
	return []subcommand{
		{"version", a.versionCmd},
		{"check", a.checkCmd},
		{"reload", a.reloadCmd}, {"history", a.historyCmd}, {"rollback", a.rollbackCmd}, {"status", a.statusCmd},
		{"confirm", a.confirmCmd}, {"watch-confirm", a.watchConfirmCmd}, {"diff", a.diffCmd},
		{"server", a.serverCmd}, {"map", a.mapCmd},
		{"doctor", a.doctorCmd}, {"exec-reload", a.execReloadCmd},
		{"serve", a.serveCmd},
		{"probe", a.probeCmd},
		{"ghosts", a.ghostsCmd},
		{"clustercheck", a.clustercheckCmd},
	}
}

// rootValueFlags are the root's flags that take a value as the next
// argument when written without "=".
var rootValueFlags = map[string]bool{"--config-file": true, "--format": true, "--log-level": true}

// invoked is the top-level command that args name: the first argument
// that is neither a root flag nor a root flag's value. "" when there is
// none, or when a flag it does not know comes first (cobra then reads
// the arguments against the whole tree, as it always did).
func invoked(args []string) string {
	for i := 0; i < len(args); i++ {
		arg := args[i]
		switch {
		case arg == "--":
			return ""
		case rootValueFlags[arg]:
			i++
		case strings.HasPrefix(arg, "-"):
			if name, _, _ := strings.Cut(arg, "="); !rootValueFlags[name] {
				return ""
			}
		default:
			return arg
		}
	}
	return ""
}

// exec adapts a command body of the shape func(ctx) (exitCode, error) to
// cobra. An error is printed once, to stderr; its exit code is the one the
// body chose, or exitUsage for usage errors and when the body chose 0.
func (a *app) exec(body func(ctx context.Context) (int, error)) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		code, err := body(cmd.Context())
		if err != nil {
			// "reload", or "server set" for a subcommand.
			name := strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
			fmt.Fprintf(a.stderr, "haguard %s: %v\n", name, err)
			if isUsage(err) || code == exitOK {
				code = exitUsage
			}
		}
		a.code = code
		return nil
	}
}

// hangupStops makes SIGHUP end ctx as SIGTERM and Ctrl-C do (main.go),
// for the commands that run a transaction: a dropped SSH session no
// longer kills the run mid-way (SIGHUP's default), it rolls it back like
// SIGTERM (docs/reload.md). `serve` keeps SIGHUP for re-reading
// haguard.yaml, so this is not done in main.
func hangupStops(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, syscall.SIGHUP)
}

// execConfig is exec for a body that needs haguard.yaml: an unreadable
// file is a usage error (exit 2) before the body runs.
func (a *app) execConfig(body func(ctx context.Context, cfg config.Config) (int, error)) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		return a.exec(func(ctx context.Context) (int, error) {
			cfg, err := a.loadConfig(cmd)
			if err != nil {
				return exitUsage, err
			}
			return body(ctx, cfg)
		})(cmd, args)
	}
}

// loadConfig reads haguard.yaml; a missing file is fine only at the default path.
func (a *app) loadConfig(cmd *cobra.Command) (config.Config, error) {
	explicit := cmd.Flags().Changed("config-file")
	cfg, err := config.Load(a.configFile, explicit)
	if err != nil {
		return config.Config{}, usagef(err)
	}
	return cfg, nil
}

// logger builds the stderr logger for one command.
func (a *app) logger() *slog.Logger {
	lvl, _ := parseLevel(a.logLevel)
	return slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: lvl}))
}

// writeJSON prints v as one indented JSON document on stdout; with
// --format jsonl, as one line {"type":"result","result":v}, the last of
// the event stream (docs/cli.md).
func (a *app) writeJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	if a.format == "jsonl" {
		return enc.Encode(struct {
			Type   string `json:"type"`
			Result any    `json:"result"`
		}{"result", v})
	}
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeResult prints a command's result: v as JSON with --format json,
// else what human writes. Every command with a report prints this way;
// the error is stdout's.
func (a *app) writeResult(v any, human func(io.Writer)) error {
	if a.jsonOutput() {
		return a.writeJSON(v)
	}
	human(a.stdout)
	return nil
}

func (a *app) jsonOutput() bool { return a.format == "json" || a.format == "jsonl" }

// reportLogger is the logger of a command whose report says how the
// transaction ended: in human form, the transaction's own closing log
// record ("reload transaction", for the journal and the daemon) would
// print that a second time on stderr, so it is left out there.
func (a *app) reportLogger() *slog.Logger {
	l := a.logger()
	if a.format != "human" {
		return l
	}
	return slog.New(dropRecord{l.Handler(), "reload transaction"})
}

// dropRecord is a handler that leaves out the records with one message.
type dropRecord struct {
	slog.Handler
	msg string
}

func (d dropRecord) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == d.msg {
		return nil
	}
	return d.Handler.Handle(ctx, r)
}

func (d dropRecord) WithAttrs(as []slog.Attr) slog.Handler {
	return dropRecord{d.Handler.WithAttrs(as), d.msg}
}

func (d dropRecord) WithGroup(name string) slog.Handler {
	return dropRecord{d.Handler.WithGroup(name), d.msg}
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, errors.New("--log-level: want debug, info, warn or error")
	}
	return l, nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
