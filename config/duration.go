package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written with an explicit unit ("300s",
// "1h30m"). A bare number is refused: in this domain a unitless time is the
// bug we exist to catch (HAProxy reads milliseconds, MySQL seconds).
// "unlimited" (or "none") means no limit and is stored as -1.
type Duration time.Duration

// Unlimited is the stored value of "unlimited".
const Unlimited = Duration(-1)

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// IsUnlimited reports whether the value is "unlimited".
func (d Duration) IsUnlimited() bool { return d < 0 }

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: expected a duration such as 300s", n.Line)
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// String formats the value the way it parses.
func (d Duration) String() string {
	if d.IsUnlimited() {
		return "unlimited"
	}
	return time.Duration(d).String()
}

// ParseDuration parses a Go duration with a mandatory unit, or "unlimited".
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "unlimited", "none", "infinite":
		return Unlimited, nil
	case "":
		return 0, fmt.Errorf("empty duration")
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return 0, fmt.Errorf("duration %q has no unit; write %ss or %sms", s, s, s)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (use a unit: 300s, 5m, 8h)", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("negative duration %q", s)
	}
	return Duration(v), nil
}
