package config

import (
	"errors"
	"time"
)

// Generations keeps old worker generations in bounds (docs/generations.md).
// A draining generation is over a limit when there are more than
// MaxDraining of them (the oldest are over), when it is older than MaxAge,
// when its RSS passes MaxRSS, or when all of them together pass
// MaxTotalRSS (the oldest are over until the rest fit). The sweep reports
// every excess; only with Enforce does haguard escalate, oldest first:
// it reads the generation's sessions, then after Grace.Sessions asks it
// to close its idle ones, then after Grace.SoftStop sends SIGUSR1, then
// after Grace.Terminate SIGTERM. The current generation is never touched.
type Generations struct {
	// MaxDraining is how many old generations may drain at once; 0
	// means no limit.
	MaxDraining int `yaml:"max_draining"`
	// MaxAge is how long an old generation may drain ("unlimited": no
	// limit).
	MaxAge Duration `yaml:"max_age"`
	// MaxRSS bounds one old generation's resident memory, MaxTotalRSS
	// all of them together ("unlimited": no limit).
	MaxRSS      Size `yaml:"max_rss"`
	MaxTotalRSS Size `yaml:"max_total_rss"`
	// Enforce escalates a generation over a limit; off, it is only
	// reported (status, the sweep, metrics).
	Enforce bool             `yaml:"enforce"`
	Grace   GenerationsGrace `yaml:"grace"`
}

// GenerationsGrace are the waits between the escalation's steps, each
// counted from the step before.
type GenerationsGrace struct {
	// Sessions: from the report of who holds the generation to
	// `shutdown sessions` of its idle ones.
	Sessions Duration `yaml:"sessions"`
	// SoftStop: from the session step to SIGUSR1 (haproxy's soft stop).
	SoftStop Duration `yaml:"soft_stop"`
	// Terminate: from SIGUSR1 to SIGTERM.
	Terminate Duration `yaml:"terminate"`
}

// DefaultGenerations are conservative: only a real pile-up is over a
// limit (haproxy 3.3's own mworker-max-reloads is 50), and nothing is
// escalated unless enforce is set.
func DefaultGenerations() Generations {
	return Generations{
		MaxDraining: 10,
		MaxAge:      Duration(24 * time.Hour),
		MaxRSS:      UnlimitedSize,
		MaxTotalRSS: UnlimitedSize,
		Grace: GenerationsGrace{
			Sessions:  Duration(time.Minute),
			SoftStop:  Duration(5 * time.Minute),
			Terminate: Duration(5 * time.Minute),
		},
	}
}

// Limited reports whether any limit is set: the lint (HA010) counts a
// generation limit as an answer to long timeouts.
func (g Generations) Limited() bool {
	return g.MaxDraining > 0 || !g.MaxAge.IsUnlimited() || !g.MaxRSS.IsUnlimited() || !g.MaxTotalRSS.IsUnlimited()
}

func (g Generations) validate() []error {
	var errs []error
	if g.MaxDraining < 0 {
		errs = append(errs, errors.New("generations.max_draining: must be >= 0 (0: no limit)"))
	}
	if g.MaxAge == 0 {
		errs = append(errs, errors.New("generations.max_age: must be positive, or unlimited"))
	}
	if g.MaxRSS == 0 {
		errs = append(errs, errors.New("generations.max_rss: must be positive, or unlimited"))
	}
	if g.MaxTotalRSS == 0 {
		errs = append(errs, errors.New("generations.max_total_rss: must be positive, or unlimited"))
	}
	for _, c := range []struct {
		name string
		d    Duration
	}{{"sessions", g.Grace.Sessions}, {"soft_stop", g.Grace.SoftStop}, {"terminate", g.Grace.Terminate}} {
		if c.d < 0 {
			errs = append(errs, errors.New("generations.grace."+c.name+": must be a time (0s or more), not unlimited"))
		}
	}
	return errs
}
