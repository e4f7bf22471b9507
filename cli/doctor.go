package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/doctor"
	"github.com/haguard/haguard/host"
	"github.com/haguard/haguard/systemd"
)

type doctorOpts struct {
	enable, disable bool
	root            string
	unit            unitFlags
}

func (a *app) doctorCmd() *cobra.Command {
	var o doctorOpts
	cmd := &cobra.Command{
		Use:   "doctor [--enable-dropin|--disable-dropin]",
		Short: "Check that haguard is set up right on this host, with the line that fixes each problem",
		Long: `doctor checks what haguard needs to do its job (docs/cli.md, "haguard doctor"):

  unit           the haproxy unit exists and runs
  haguard.yaml   agrees with what the unit runs (binary, -f files, -S)
  config         the config haproxy runs can be read
  master_socket  haproxy's master CLI answers show proc
  stats_socket   the stats socket answers show stat
  probe          each listener's probe fails when the servers behind it are dead
  state_dir      the history a rollback restores is root's alone
  token_file     haguard serve would accept the API token file
  haproxy        the version of the binary the unit runs
  dropin         whether a plain 'systemctl reload' goes through haguard

Each problem comes with the line that fixes it. It changes nothing, except
with --enable-dropin or --disable-dropin, which switch haguard's drop-in for
the unit on or off (docs/reload.md, "systemctl reload"); on a terminal it
offers to switch it on.

Exit codes: 0 no problem (notes do not count); 1 at least one problem;
2 usage error or unreadable haguard.yaml.`,
		Example: `  haguard doctor
  haguard doctor --enable-dropin
  haguard doctor --format json | jq '.checks[] | select(.status=="problem")'`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.BoolVar(&o.enable, "enable-dropin", false, "make a plain 'systemctl reload' of the unit go through haguard (a drop-in, then daemon-reload)")
	f.BoolVar(&o.disable, "disable-dropin", false, "remove that drop-in again")
	f.StringVar(&o.root, "dropin-root", defaultDropInRoot, "where systemd drop-ins go (<root>/<unit>.d/haguard.conf)")
	addUnitFlags(cmd, &o.unit)
	cmd.RunE = a.execConfig(func(ctx context.Context, cfg config.Config) (int, error) {
		if o.enable && o.disable {
			return exitUsage, usagef(errors.New("--enable-dropin and --disable-dropin: choose one"))
		}
		if o.unit.several() {
			return exitUsage, usagef(errors.New("--unit: doctor checks one unit; name one"))
		}
		o.unit.apply(&cfg)
		return a.runDoctor(ctx, cmd, cfg, o)
	})
	return cmd
}

func (a *app) runDoctor(ctx context.Context, cmd *cobra.Command, cfg config.Config, o doctorOpts) (int, error) {
	in := doctor.Input{Config: cfg}
	sd, err := systemd.Dial(ctx, cfg.Systemd.BusAddress)
	if err != nil {
		in.UnitErr = err
		in.Host, in.HostErr = host.OpenWithoutSystemd(cfg, err, a.logger())
	} else {
		defer sd.Close()
		if o.enable || o.disable {
			if code, err := a.switchDropIn(ctx, sd, cfg, o); err != nil {
				return code, err
			}
		}
		in.Unit, in.UnitErr = readUnit(ctx, sd, cfg.Systemd.Unit)
		in.Host, in.HostErr = host.Open(ctx, cfg, sd, a.logger())
	}
	rep := doctor.Run(ctx, in)
	if err := a.writeResult(rep, func(w io.Writer) { writeDoctorHuman(w, rep) }); err != nil {
		return exitBroken, err
	}
	if sd != nil && !rep.DropIn && !o.enable && !o.disable && in.Unit != nil && a.format == "human" &&
		terminal(a.stdout) != nil && terminal(os.Stdin) != nil {
		a.offerDropIn(ctx, sd, cfg, o)
	}
	if !rep.OK {
		return exitNegative, nil
	}
	return exitOK, nil
}

func readUnit(ctx context.Context, sd *systemd.Client, name string) (*systemd.Unit, error) {
	u, err := sd.Unit(ctx, name)
	switch {
	case errors.Is(err, systemd.ErrUnitNotFound):
		return &systemd.Unit{Name: name, LoadState: "not-found"}, nil
	case err != nil:
		return nil, err
	}
	return &u, nil
}

func (a *app) switchDropIn(ctx context.Context, sd *systemd.Client, cfg config.Config, o doctorOpts) (int, error) {
	if o.enable {
		path, err := enableDropIn(ctx, sd, o.root, cfg.Systemd.Unit, a.configFileFlag())
		if err != nil {
			return exitBroken, fmt.Errorf("switch the drop-in on: %w", err)
		}
		fmt.Fprintf(a.stderr, "haguard doctor: `systemctl reload %s` now goes through haguard (%s)\n", cfg.Systemd.Unit, path)
		return exitOK, nil
	}
	path, err := disableDropIn(ctx, sd, o.root, cfg.Systemd.Unit)
	if err != nil {
		return exitBroken, fmt.Errorf("switch the drop-in off: %w", err)
	}
	fmt.Fprintf(a.stderr, "haguard doctor: removed %s; `systemctl reload %s` runs the unit's own ExecReload again\n", path, cfg.Systemd.Unit)
	return exitOK, nil
}

// configFileFlag is the haguard.yaml a drop-in must name ("" for the
// default path).
func (a *app) configFileFlag() string {
	if a.configFile == config.DefaultPath {
		return ""
	}
	return a.configFile
}

// offerDropIn asks, on a terminal, whether to switch the drop-in on.
func (a *app) offerDropIn(ctx context.Context, sd *systemd.Client, cfg config.Config, o doctorOpts) {
	fmt.Fprintf(a.stdout, "Make `systemctl reload %s` go through haguard now (haguard doctor --enable-dropin)? [y/N] ", cfg.Systemd.Unit)
	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	if answer := strings.ToLower(strings.TrimSpace(line)); answer != "y" && answer != "yes" {
		fmt.Fprintln(a.stdout, "left as it is")
		return
	}
	o.enable = true
	if _, err := a.switchDropIn(ctx, sd, cfg, o); err != nil {
		fmt.Fprintf(a.stderr, "haguard doctor: %v\n", err)
	}
}

// writeDoctorHuman prints one line per check, the fix under each problem
// and note, and a summary.
func writeDoctorHuman(w io.Writer, rep doctor.Report) {
	fmt.Fprintf(w, "haguard doctor: %s\n", rep.Unit)
	notes := 0
	for _, c := range rep.Checks {
		mark := map[doctor.Status]string{doctor.OK: "[ok]     ", doctor.Problem: "[PROBLEM]", doctor.Note: "[note]   "}[c.Status]
		fmt.Fprintf(w, "%s %s: %s\n", mark, c.Name, c.Message)
		if c.Fix != "" {
			fmt.Fprintf(w, "          fix: %s\n", c.Fix)
		}
		if c.Status == doctor.Note {
			notes++
		}
	}
	switch {
	case rep.Problems == 0:
		fmt.Fprintf(w, "no problem (%d note(s))\n", notes)
	default:
		fmt.Fprintf(w, "%d problem(s), %d note(s)\n", rep.Problems, notes)
	}
}
