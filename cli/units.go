package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/systemd"
)

// unitFlags are the per-command overrides of haguard.yaml's systemd block.
type unitFlags struct {
	units      []string
	busAddress string
}

func addUnitFlags(cmd *cobra.Command, u *unitFlags) {
	listVarP(cmd.Flags(), &u.units, "unit", "", false,
		"systemd unit; repeat it, or give a glob (haproxy@*.service), for several (default: systemd.unit in haguard.yaml)")
	cmd.Flags().StringVar(&u.busAddress, "bus-address", "", "D-Bus address (default: systemd.bus_address, else the system bus)")
}

// apply sets the bus address, and the unit when exactly one plain name was
// given (a glob or several names go through forUnits).
func (u unitFlags) apply(cfg *config.Config) {
	if len(u.units) == 1 && !isGlob(u.units[0]) {
		*cfg = forUnit(*cfg, u.units[0])
	}
	if u.busAddress != "" {
		cfg.Systemd.BusAddress = u.busAddress
	}
}

// several reports whether the flags may name more than one unit.
func (u unitFlags) several() bool { return len(u.units) > 1 || len(u.units) == 1 && isGlob(u.units[0]) }

func isGlob(s string) bool { return strings.ContainsAny(s, "*?[") }

// forUnit is config.ForUnit: another unit has its own state dir.
var forUnit = config.ForUnit

// unitResult is what a command did for one unit.
type unitResult struct {
	code  int
	doc   any             // the JSON document (nil: none, err says why)
	human func(io.Writer) // the human report
	err   error
}

// forUnits runs one for each unit the flags name: one unit is reported
// as the command always did; several as one JSON array of {unit,
// exit_code, result, error} (or one section per unit), with the worst
// exit code of them all.
func (a *app) forUnits(ctx context.Context, cfg config.Config, uf unitFlags,
	one func(ctx context.Context, cfg config.Config) unitResult) (int, error) {
	if !uf.several() {
		uf.apply(&cfg)
		r := one(ctx, cfg)
		if r.doc != nil {
			if err := a.writeResult(r.doc, r.human); err != nil {
				return exitBroken, err
			}
		}
		return r.code, r.err
	}
	if uf.busAddress != "" {
		cfg.Systemd.BusAddress = uf.busAddress
	}
	units, err := resolveUnits(ctx, cfg.Systemd.BusAddress, uf.units)
	if err != nil {
		return exitUsage, usagef(err)
	}
	type row struct {
		Unit     string `json:"unit"`
		ExitCode int    `json:"exit_code"`
		Result   any    `json:"result,omitempty"`
		Error    string `json:"error,omitempty"`
	}
	var rows []row
	worst := exitOK
	for i, u := range units {
		r := one(ctx, forUnit(cfg, u))
		code := r.code
		if r.err != nil && (isUsage(r.err) || code == exitOK) {
			code = exitUsage
		}
		worst = worse(worst, code)
		rw := row{Unit: u, ExitCode: code, Result: r.doc}
		if r.err != nil {
			rw.Error = r.err.Error()
		}
		rows = append(rows, rw)
		if !a.jsonOutput() {
			if i > 0 {
				fmt.Fprintln(a.stdout)
			}
			fmt.Fprintf(a.stdout, "== %s (exit %d)\n", u, code)
			if r.doc != nil && r.human != nil {
				r.human(a.stdout)
			}
			if r.err != nil {
				fmt.Fprintf(a.stdout, "error: %v\n", r.err)
			}
		}
	}
	if a.jsonOutput() {
		if err := a.writeJSON(rows); err != nil {
			return exitBroken, err
		}
	}
	return worst, nil
}

// worse is the exit code that matters more: a host in a bad state (3),
// then a usage error (2), then a negative verdict (1).
func worse(a, b int) int {
	rank := map[int]int{exitOK: 0, exitNegative: 1, exitUsage: 2, exitBroken: 3}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// resolveUnits expands the --unit names and globs with systemd.
func resolveUnits(ctx context.Context, bus string, patterns []string) ([]string, error) {
	sd, err := systemd.Dial(ctx, bus)
	if err != nil {
		return nil, fmt.Errorf("connect to systemd: %w", err)
	}
	defer sd.Close()
	units, err := sd.Units(ctx, patterns)
	if err != nil {
		return nil, err
	}
	if len(units) == 0 {
		return nil, errors.New("--unit " + strings.Join(patterns, " --unit ") + ": no unit matches")
	}
	return units, nil
}
