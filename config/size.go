package config

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Size is a number of bytes written with a binary unit ("1GiB", "512MiB").
// A bare number is refused, as for Duration; "unlimited" (or "none") is
// stored as -1.
type Size int64

// UnlimitedSize is the stored value of "unlimited".
const UnlimitedSize = Size(-1)

// Bytes returns the value in bytes (-1: unlimited).
func (s Size) Bytes() int64 { return int64(s) }

// IsUnlimited reports whether the value is "unlimited".
func (s Size) IsUnlimited() bool { return s < 0 }

var sizeUnits = []struct {
	suffix string
	mult   int64
}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}

// ParseSize parses "<n>KiB|MiB|GiB|TiB" or "unlimited".
func ParseSize(s string) (Size, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "unlimited", "none":
		return UnlimitedSize, nil
	case "":
		return 0, fmt.Errorf("empty size")
	}
	for _, u := range sizeUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
			if err != nil || n < 0 || n > (1<<62)/u.mult {
				return 0, fmt.Errorf("invalid size %q (write e.g. 512MiB or 1GiB)", s)
			}
			return Size(n * u.mult), nil
		}
	}
	return 0, fmt.Errorf("size %q needs a unit: KiB, MiB, GiB or TiB (e.g. 1GiB)", s)
}

// String formats the value the way it parses, in the largest exact unit.
func (s Size) String() string {
	if s.IsUnlimited() {
		return "unlimited"
	}
	for _, u := range sizeUnits {
		if s != 0 && int64(s)%u.mult == 0 {
			return strconv.FormatInt(int64(s)/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(s)/1024, 10) + "KiB"
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: expected a size such as 1GiB", n.Line)
	}
	v, err := ParseSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*s = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (s Size) MarshalYAML() (any, error) { return s.String(), nil }
