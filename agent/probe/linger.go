package probe

import "time"

// How long a tcp attempt watches the connection it opened. docs/probe.md
// ("How long a tcp probe lingers") has the measurements behind these.
const (
	// LingerMargin is added to haproxy's give-up time: the close that
	// follows it reached the client within 44 ms in 400 attempts at a
	// load average of 13 on 2 cores, so 300 ms is ample slack.
	LingerMargin = 300 * time.Millisecond
	// MaxGiveUp caps the give-up time the default linger and the
	// attempt deadlines wait for, so that a config with many retries
	// cannot make a probe run for minutes.
	MaxGiveUp = 5 * time.Second
	// NoLinger in Target.Linger turns the watch off: the accept alone
	// passes.
	NoLinger time.Duration = -1
)

// LingerFor is how long a tcp attempt against t watches the accepted
// connection when it has no Expect: t.Linger when set, nothing for
// NoLinger, else haproxy's give-up time (t.GiveUp, capped at MaxGiveUp)
// plus LingerMargin. A proxy that finds no server closes the accepted
// connection after its give-up time: with `retries 0` or a server its
// checks marked DOWN that is within milliseconds, with haproxy's default
// `retries 3` about 3 s.
func LingerFor(t Target) time.Duration {
	switch {
	case t.Linger < 0:
		return 0
	case t.Linger > 0:
		return t.Linger
	}
	return allowance(t) + LingerMargin
}

// allowance is the part of haproxy's give-up time that an attempt's
// deadline allows for, on top of the timeout.
func allowance(t Target) time.Duration {
	return min(max(t.GiveUp, 0), MaxGiveUp)
}

// lingers reports whether a tcp attempt against t ends by watching the
// connection (no Expect, no greeting required, a linger not turned off).
func lingers(t Target) bool {
	return t.Kind == KindTCP && t.Expect == "" && !greetingRequired(t) && LingerFor(t) > 0
}

// greetingRequired: the server greeted before (Baseline), so it must now.
func greetingRequired(t Target) bool {
	return t.Kind == KindTCP && t.Expect == "" && t.Send == "" && t.Baseline != nil && t.Baseline.Greets
}

// deadline is the whole time one attempt against t may take: the timeout,
// plus the linger for a watching tcp attempt, plus haproxy's give-up time
// for every other kind (so that its close or 503 comes before ours), and
// idle plus two timeouts for an idle-hold.
func deadline(t Target, timeout time.Duration) time.Duration {
	switch {
	case t.Kind == KindIdleHold:
		return t.Idle + 2*timeout
	case lingers(t):
		return timeout + LingerFor(t)
	}
	return timeout + allowance(t)
}
