package cli

import (
	"strings"

	"github.com/spf13/cobra"
)

// What a man page says beyond --help, kept beside the command tree so that
// packaging/cmd/gendocs (internal/manpages) renders it with the flags it
// describes. Examples become cobra's Example (shown by --help too) where
// the command's Long has none; the annotations below are read by the
// renderer only.
const (
	// AnnotationExit is the EXIT STATUS text of a command whose Long has
	// no "Exit codes" paragraph, in the same form.
	AnnotationExit = "haguard.man/exit"
	// AnnotationFiles is the FILES section: one "PATH\tmeaning" per line.
	AnnotationFiles = "haguard.man/files"
	// AnnotationSeeAlso names related pages and installed docs, comma
	// separated: "haguard-history(1), haproxy(1), reload.md".
	AnnotationSeeAlso = "haguard.man/see-also"
)

// The files every page may name, with what haguard does with them.
var manFiles = map[string]string{
	"yaml":    "/etc/haguard/haguard.yaml\thaguard's settings (--config-file); optional at this path, every key has a Debian default. A conffile of the package.",
	"state":   "/var/lib/haguard\tstate_dir: the lock, the journal of a running reload, the config history (history/), running.json and the audit log (audit.log); another unit's under units/UNIT/.",
	"token":   "/etc/haguard/token\tapi.token_file: the API's bearer tokens, one a line as 'read TOKEN' or 'write TOKEN' (a bare token is write), mode 0600 (the package creates it).",
	"unit":    "/lib/systemd/system/haguard.service\tthe daemon's unit (Type=notify; systemctl reload haguard sends SIGHUP).",
	"haproxy": "/etc/haproxy/haproxy.cfg\tthe managed haproxy config when the unit says nothing else (haproxy.configs).",
	"master":  "/run/haproxy-master.sock\thaproxy's master CLI (haproxy.master_socket, or the unit's -S).",
	"stats":   "/run/haproxy/admin.sock\thaproxy's stats socket for 'show stat' (haproxy.stats_socket).",
	"docs":    "/usr/share/doc/haguard\tthe operator's documentation: install.md, runbook.md, one page per command.",
	"dropin":  "/usr/share/haguard/haproxy-reload.conf\tthe drop-in that makes a plain systemctl reload haproxy a haguard transaction, shipped off; /etc/systemd/system/UNIT.d/haguard.conf once switched on (doctor --enable-dropin).",
}

type manual struct {
	examples string
	exit     string
	files    []string
	seeAlso  string
}

// manuals are keyed by command path without "haguard" ("" is the root,
// "server set" a subcommand).
var manuals = map[string]manual{
	"": {
		files:   []string{"yaml", "state", "token", "unit", "haproxy", "docs"},
		seeAlso: "haproxy(1), systemctl(1), install.md, runbook.md, architecture.md",
		examples: `  haguard check                                # lint + haproxy -c on the running config
  haguard reload --candidate /tmp/new.cfg      # the whole transaction
  haguard --version`,
	},
	"version": {
		exit:     "Exit codes:\n  0  printed\n  2  usage error",
		files:    []string{"docs"},
		seeAlso:  "haguard(1)",
		examples: "  haguard version\n  haguard version --format json\n  haguard --version",
	},
	"check": {
		files:   []string{"yaml", "haproxy"},
		seeAlso: "haguard-reload(1), haproxy(1), rules.md, cli-check.md, facts.md",
		examples: `  haguard check
  haguard check -f /tmp/new.cfg --facts live
  haguard check -f /etc/haproxy/haproxy.cfg -f /etc/haproxy/conf.d --format json`,
	},
	"reload": {
		files:   []string{"yaml", "state", "haproxy", "master"},
		seeAlso: "haguard-check(1), haguard-confirm(1), haguard-diff(1), haguard-doctor(1), haguard-history(1), haguard-rollback(1), haguard-status(1), systemctl(1), reload.md, runbook.md, cli.md",
		examples: `  haguard reload --candidate /tmp/new.cfg --reason "INC-4411 raise timeout server"
  haguard reload --dry-run --candidate /tmp/new.cfg
  haguard reload --candidate /tmp/new.cfg --confirm-within 5m   # then: haguard confirm
  haguard reload                       # the file on disk, edited in place
  haguard reload --no-wait             # fail at once inside reload.min_interval
  haguard reload --unit 'haproxy@*.service' --candidate /tmp/new.cfg`,
	},
	"diff": {files: []string{"yaml", "state", "haproxy", "master"}, seeAlso: "haguard-reload(1), haguard-history(1), cli.md, reload.md"},
	"doctor": {
		files:   []string{"yaml", "state", "token", "master", "stats", "dropin"},
		seeAlso: "haguard-reload(1), haguard-check(1), haguard-probe(1), systemctl(1), cli.md, reload.md, install.md",
	},
	"server": {
		files:   []string{"yaml", "state", "haproxy", "master"},
		seeAlso: "haguard-map(1), haguard-reload(1), haguard-history(1), runtime.md, cli.md",
		examples: `  haguard server list be_app
  haguard server drain be_app/db1 --wait --timeout 10m
  haguard server set be_app/db1 --state ready --weight 50`,
	},
	"server set": {
		files:   []string{"yaml", "state", "haproxy", "master"},
		seeAlso: "haguard-server-drain(1), haguard-server-list(1), haguard-history(1), haguard-rollback(1), runtime.md, cli.md",
	},
	"server drain": {
		files:   []string{"yaml", "state", "haproxy", "master"},
		seeAlso: "haguard-server-set(1), haguard-server-list(1), runtime.md, cli.md",
	},
	"server list": {
		exit:     "Exit codes:\n  0  printed\n  1  the master CLI could not be read\n  2  usage error, no master CLI",
		files:    []string{"yaml", "haproxy", "master"},
		seeAlso:  "haguard-server-set(1), haguard-status(1), runtime.md",
		examples: "  haguard server list\n  haguard server list be_app --format json | jq '.[] | select(.drift != [])'",
	},
	"map": {
		files:   []string{"yaml", "state", "haproxy", "master"},
		seeAlso: "haguard-server(1), haguard-reload(1), runtime.md, cli.md",
		examples: `  haguard map add /etc/haproxy/hosts.map api.example.com be_api
  haguard map del /etc/haproxy/hosts.map old.example.com
  haguard map list /etc/haproxy/hosts.map`,
	},
	"map add": {files: []string{"yaml", "state", "haproxy", "master"}, seeAlso: "haguard-map-set(1), haguard-map-del(1), haguard-map-list(1), runtime.md"},
	"map set": {files: []string{"yaml", "state", "haproxy", "master"}, seeAlso: "haguard-map-add(1), haguard-map-del(1), haguard-map-list(1), runtime.md"},
	"map del": {files: []string{"yaml", "state", "haproxy", "master"}, seeAlso: "haguard-map-add(1), haguard-map-set(1), haguard-map-list(1), runtime.md"},
	"map list": {
		exit:     "Exit codes:\n  0  printed\n  1  the master CLI could not be read\n  2  usage error, a map the current worker does not know",
		files:    []string{"yaml", "master"},
		seeAlso:  "haguard-map-add(1), runtime.md",
		examples: "  haguard map list /etc/haproxy/hosts.map",
	},
	"history":  {files: []string{"yaml", "state"}, seeAlso: "haguard-rollback(1), haguard-reload(1), reload.md"},
	"rollback": {files: []string{"yaml", "state", "haproxy"}, seeAlso: "haguard-history(1), haguard-reload(1), reload.md"},
	"confirm": {
		files:   []string{"yaml", "state"},
		seeAlso: "haguard-reload(1), haguard-rollback(1), haguard-status(1), reload.md",
		examples: `  haguard reload --candidate /tmp/new.cfg --confirm-within 5m
  haguard status                       # "confirm: reload ID awaits confirmation until T"
  haguard confirm                      # keep it
  haguard rollback ID                  # or reject it now`,
	},
	"status": {files: []string{"yaml", "state", "master"}, seeAlso: "haguard-reload(1), haguard-ghosts(1), reload.md"},
	"serve": {
		exit:    "Exit codes:\n  0  stopped cleanly (SIGTERM, SIGINT)\n  2  usage error, unreadable haguard.yaml or token file, address in use\n  3  the daemon failed while running",
		files:   []string{"yaml", "state", "token", "unit"},
		seeAlso: "haguard-reload(1), systemctl(1), api.md, metrics.md, generations.md, install.md",
		examples: `  systemctl enable --now haguard        # as the package installs it
  systemctl reload haguard              # re-read haguard.yaml and the token
  TOKEN=$(awk 'NF==1 || $1=="write" {print $NF; exit}' /etc/haguard/token)
  curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:9180/v1/status
  haguard serve --unit haproxy.service --unit 'haproxy@*.service'
  curl -H "Authorization: Bearer $TOKEN" 'http://127.0.0.1:9180/v1/status?unit=haproxy@db.service'`,
	},
	"probe": {
		files:   []string{"yaml", "haproxy", "stats"},
		seeAlso: "haguard-ghosts(1), haguard-reload(1), probe.md",
		examples: `  haguard probe
  haguard probe --target 127.0.0.1:3306 --kind mysql --count 20
  haguard probe --target 127.0.0.1:3306 --kind idle-hold --idle 10m`,
	},
	"ghosts": {files: []string{"yaml", "master"}, seeAlso: "haguard-reload(1), haguard-probe(1), ghosts.md"},
	"clustercheck": {
		files:   []string{"yaml"},
		seeAlso: "haguard-check(1), clustercheck.md",
		examples: `  haguard clustercheck --listen 127.0.0.1:9200 --defaults-file /etc/mysql/debian.cnf
  HAGUARD_CLUSTERCHECK_DSN='clustercheck:secret@tcp(127.0.0.1:3306)/' haguard clustercheck`,
	},
}

// annotateManual sets the examples and the man-page annotations of root
// and its subcommands from manuals.
func annotateManual(root *cobra.Command) {
	var all func(c *cobra.Command) []*cobra.Command
	all = func(c *cobra.Command) []*cobra.Command {
		out := []*cobra.Command{c}
		for _, sub := range c.Commands() {
			out = append(out, all(sub)...)
		}
		return out
	}
	for _, c := range all(root) {
		// "" is the root, "server set" a subcommand's path.
		name := strings.TrimPrefix(strings.TrimPrefix(c.CommandPath(), root.Name()), " ")
		m, ok := manuals[name]
		if !ok {
			continue
		}
		if c.Example == "" && m.examples != "" && !strings.Contains(c.Long, "\nExamples:\n") {
			c.Example = m.examples
		}
		if c.Annotations == nil {
			c.Annotations = map[string]string{}
		}
		if m.exit != "" {
			c.Annotations[AnnotationExit] = m.exit
		}
		var files []string
		for _, k := range m.files {
			files = append(files, manFiles[k])
		}
		if len(files) > 0 {
			c.Annotations[AnnotationFiles] = strings.Join(files, "\n")
		}
		if m.seeAlso != "" {
			c.Annotations[AnnotationSeeAlso] = m.seeAlso
		}
	}
}
