package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/systemd"
)

// The drop-in that makes a plain `systemctl reload` a haguard transaction
// (deploy/haproxy-reload.conf, docs/reload.md "systemctl reload"). The
// package ships it switched off at shippedDropIn; on, it is
// <root>/<unit>.d/haguard.conf.
const (
	shippedDropIn  = "/usr/share/haguard/haproxy-reload.conf"
	packagedBinary = "/usr/bin/haguard"
	dropInName     = "haguard.conf"
	// DefaultDropInRoot is where an operator's drop-ins live.
	defaultDropInRoot = "/etc/systemd/system"
)

// dropInHead is the shipped file's comment, which says how to switch it
// on and off and what it does.
const dropInHead = `# haguard: a plain ` + "`systemctl reload haproxy`" + ` goes through haguard.
#
# The Debian package ships this drop-in switched off, as
# /usr/share/haguard/haproxy-reload.conf. Switch it on with
#
#   haguard doctor --enable-dropin
#
# or by hand:
#
#   mkdir -p /etc/systemd/system/haproxy.service.d
#   ln -s /usr/share/haguard/haproxy-reload.conf /etc/systemd/system/haproxy.service.d/haguard.conf
#   systemctl daemon-reload
#
# and off again with ` + "`haguard doctor --disable-dropin`" + ` (or remove the link
# and run systemctl daemon-reload). docs/reload.md, "systemctl reload".
#
# ExecReload then runs a haguard transaction inside the unit's own reload
# job: lint and haproxy -c (instead of a bare -c), a snapshot, USR2 to the
# master, then the new generation, the ghost sweep and the probes, and a
# rollback when they fail. A refusal or a rollback fails the job:
# ` + "`systemctl reload`" + ` exits non-zero and ` + "`systemctl status`" + ` shows haguard's
# report. A reload that haguard itself asked for (haguard reload,
# rollback, the API) is recognised and only signals the master: that
# transaction checks and verifies it.
`

// dropInText is the drop-in for a haguard binary at bin reading the
// haguard.yaml at configFile ("" or the default path: none named). With
// the package's binary and the default file it is the shipped file.
func dropInText(bin, configFile string) string {
	argv := []string{bin}
	if configFile != "" && configFile != config.DefaultPath {
		argv = append(argv, "--config-file", configFile)
	}
	argv = append(argv, "exec-reload", "--unit", "%n")
	for i, a := range argv {
		if strings.ContainsAny(a, " \t\"'\\") {
			argv[i] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(a) + `"`
		}
	}
	return dropInHead + "[Service]\nExecReload=\nExecReload=" + strings.Join(argv, " ") + "\n"
}

// enableDropIn switches the drop-in on for unit: a link to the shipped
// file when this is the package's binary reading the default haguard.yaml,
// else a copy that names this binary and config file; then systemd reads
// its units again. It returns the drop-in's path.
func enableDropIn(ctx context.Context, sd *systemd.Client, root, unit, configFile string) (string, error) {
	bin, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find this binary: %w", err)
	}
	dir := filepath.Join(root, unit+".d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, dropInName)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	text := dropInText(bin, configFile)
	shipped, serr := os.ReadFile(shippedDropIn)
	if serr == nil && string(shipped) == text {
		err = os.Symlink(shippedDropIn, path)
	} else {
		err = os.WriteFile(path, []byte(text), 0o644)
	}
	if err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, sd.DaemonReload(ctx)
}

// disableDropIn removes the drop-in, and systemd reads its units again.
func disableDropIn(ctx context.Context, sd *systemd.Client, root, unit string) (string, error) {
	path := filepath.Join(root, unit+".d", dropInName)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	return path, sd.DaemonReload(ctx)
}
