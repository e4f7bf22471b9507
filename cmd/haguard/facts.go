package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/validate"
	"github.com/haguard/haguard/validate/facts"
)

// gatherFacts collects the facts for mode (none, declared, live) about the
// config in files. Declared backend wait_timeouts stand in for live ones
// when the DB is not asked.
func gatherFacts(ctx context.Context, cfg config.Config, mode string, files []string, log *slog.Logger) *validate.Facts {
	var vc *validate.Config
	if mode == facts.ModeLive {
		if c, err := validate.Parse(files...); err == nil {
			vc = c
		}
	}
	f := facts.Gather(ctx, vc, facts.Options{Mode: mode, Config: cfg, Logger: log})
	if mode != facts.ModeNone && f.DB == nil {
		f.DB = declaredDB(cfg, files)
	}
	return f
}

// declaredDB turns haguard.yaml facts.backends.*.wait_timeout into DB
// facts for every server of that backend; nil when none is declared.
func declaredDB(cfg config.Config, files []string) map[string]map[string]validate.DBServerFacts {
	var out map[string]map[string]validate.DBServerFacts
	var vc *validate.Config
	for name, bf := range cfg.Facts.Backends {
		if bf.WaitTimeout == nil || bf.WaitTimeout.IsUnlimited() {
			continue
		}
		if vc == nil {
			c, err := validate.Parse(files...)
			if err != nil {
				return nil
			}
			vc = c
		}
		p := vc.Backend(name)
		if p == nil {
			continue
		}
		if out == nil {
			out = map[string]map[string]validate.DBServerFacts{}
		}
		out[name] = map[string]validate.DBServerFacts{}
		secs := fmt.Sprintf("%d", int64(bf.WaitTimeout.D().Seconds()))
		for _, s := range p.Servers {
			out[name][s.Name] = validate.DBServerFacts{Variables: map[string]string{"wait_timeout": secs, "interactive_timeout": secs}}
		}
	}
	return out
}

// withFacts gives `haguard check` the --facts flag: it replaces the
// command's body with one that gathers facts (live DB variables, kernel
// sysctls, the declared path) and lints with the fact rules too. The
// other flags and the report are check's own.
func (a *app) withFacts(cmd *cobra.Command) *cobra.Command {
	var mode string
	cmd.Flags().StringVar(&mode, "facts", "", "facts for the lint: none, declared (haguard.yaml) or live (ask the DBs, read sysctls); default facts.mode in haguard.yaml")
	cmd.RunE = a.exec(func(ctx context.Context) (int, error) {
		cfg, err := a.loadConfig(cmd)
		if err != nil {
			return exitUsage, err
		}
		if mode == "" {
			mode = cfg.Facts.Mode
		}
		switch mode {
		case facts.ModeNone, facts.ModeDeclared, facts.ModeLive:
		default:
			return exitUsage, usagef(fmt.Errorf("--facts: %q is not none, declared or live", mode))
		}
		fl := cmd.Flags()
		files, _ := fl.GetStringArray("file")
		bin, _ := fl.GetString("haproxy-bin")
		noSyntax, _ := fl.GetBool("no-syntax")
		failOnS, _ := fl.GetString("fail-on")
		failOn, err := validate.ParseSeverity(failOnS)
		if err != nil || failOn == validate.SevInfo {
			return exitUsage, usagef(fmt.Errorf("--fail-on: %q is not error or warning", failOnS))
		}
		if len(files) == 0 {
			files = cfg.HAProxy.Configs
		}
		if bin == "" {
			bin = cfg.HAProxy.Binary
		}
		log := a.logger()
		rep, err := validate.Check(ctx, validate.Options{Files: files, HAProxyBin: bin, NoSyntax: noSyntax, FailOn: failOn,
			Facts: gatherFacts(ctx, cfg, mode, files, log), Logger: log})
		if err != nil {
			var fe *validate.FileError
			if errors.As(err, &fe) {
				return exitUsage, usagef(err)
			}
			return exitUsage, err
		}
		if a.jsonOutput() {
			if err := a.writeJSON(rep); err != nil {
				return exitBroken, err
			}
		} else {
			writeCheckHuman(a.stdout, rep, failOn)
		}
		if !rep.OK {
			return exitNegative, nil
		}
		return exitOK, nil
	})
	return cmd
}
