package validate

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxTimerMS is the largest time HAProxy accepts: 2^31-1 ms (~24.8 days).
const MaxTimerMS = 1<<31 - 1

// ErrTimerOverflow marks a time at or above 2^31 ms (errors.Is).
var ErrTimerOverflow = errors.New("timer overflow")

// Base is the unit of a time written without one.
type Base int

const (
	// Millis is the default base: `timeout *`, inter, tcp-ut, hard-stop-after.
	Millis Base = iota
	// Seconds is the base of clitcpka-idle/intvl and srvtcpka-idle/intvl.
	Seconds
)

// Time is one parsed HAProxy time value.
type Time struct {
	Raw      string        // as written
	D        time.Duration // converted, rounded up to the base's resolution
	Unitless bool          // written as bare digits
	Digits   uint64        // the number before the unit
	// Trailing is what follows a valid unit ("x" in "10sx"): HAProxy 2.6
	// warns about it and keeps the value, and so does ParseTime.
	Trailing string
}

// MS returns the value in whole milliseconds (rounded up).
func (t Time) MS() int64 { return int64((t.D + time.Millisecond - 1) / time.Millisecond) }

// TimeError explains why a time value was refused.
type TimeError struct {
	Input  string
	Reason string
	err    error
}

func (e *TimeError) Error() string { return fmt.Sprintf("time %q: %s", e.Input, e.Reason) }
func (e *TimeError) Unwrap() error { return e.err }

var units = map[string]time.Duration{
	"us": time.Microsecond,
	"ms": time.Millisecond,
	"s":  time.Second,
	"m":  time.Minute,
	"h":  time.Hour,
	"d":  24 * time.Hour,
}

// ParseTime parses s with HAProxy's syntax (doc §2.5 "Time format"):
// digits, then an optional unit among us, ms, s, m, h, d. A unitless value
// is in base. Values at or above 2^31 ms, or 2^31 s for the seconds base
// (HAProxy's own limits), are refused with an error wrapping
// ErrTimerOverflow. A number without a known unit after it is refused;
// characters after a known unit are kept in Trailing, as HAProxy 2.6
// accepts them with a warning (which `haproxy -c` prints).
func ParseTime(s string, base Base) (Time, error) {
	t := Time{Raw: s}
	i := 0
	var n uint64
	overflow := false
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		if n > 1<<50 {
			overflow = true
		} else {
			n = n*10 + uint64(s[i]-'0')
		}
		i++
	}
	if i == 0 {
		if s == "" {
			return t, &TimeError{Input: s, Reason: "empty value"}
		}
		return t, &TimeError{Input: s, Reason: "must start with a number (e.g. 5s, 500ms)"}
	}
	unitStr := s[i:]
	t.Digits = n
	// res is the base's resolution: HAProxy converts to it, rounds up,
	// and refuses 2^31 of it or more, whatever unit was written.
	res := time.Millisecond
	if base == Seconds {
		res = time.Second
	}
	var unit time.Duration
	if unitStr == "" {
		t.Unitless = true
		unit = res
	} else {
		// As HAProxy: "us" and "ms", else one of s, m, h, d; anything after
		// the unit is kept in Trailing (a warning there, not an error).
		name := unitStr[:1]
		if strings.HasPrefix(unitStr, "us") || strings.HasPrefix(unitStr, "ms") {
			name = unitStr[:2]
		}
		u, ok := units[name]
		if !ok {
			return t, &TimeError{Input: s, Reason: fmt.Sprintf("unknown unit %q (want us, ms, s, m, h or d)", strings.TrimSpace(unitStr))}
		}
		unit, t.Trailing = u, unitStr[len(name):]
	}
	limit := time.Duration(MaxTimerMS) * res
	if overflow || n > uint64(limit/unit) {
		return t, &TimeError{Input: s, err: ErrTimerOverflow,
			Reason: "timer overflow (maximum value is 2147483647 ms or ~24.8 days)"}
	}
	t.D = time.Duration(n) * unit
	if t.D%res != 0 { // HAProxy rounds up
		t.D = (t.D/res + 1) * res
	}
	if t.D > limit {
		return t, &TimeError{Input: s, err: ErrTimerOverflow,
			Reason: "timer overflow (maximum value is 2147483647 ms or ~24.8 days)"}
	}
	return t, nil
}

// FormatDuration prints d the way an operator reads it: "50s", "8h",
// "28.8 s", "500 ms", "6.9 days".
func FormatDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "infinite"
	case d < time.Second:
		return strconv.FormatInt(int64((d+time.Millisecond-1)/time.Millisecond), 10) + "ms"
	case d >= 48*time.Hour && d%(24*time.Hour) != 0:
		return strconv.FormatFloat(d.Hours()/24, 'f', 1, 64) + " days"
	case d%(24*time.Hour) == 0:
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	default:
		return strings.TrimRight(strings.TrimRight(strconv.FormatFloat(d.Seconds(), 'f', 3, 64), "0"), ".") + " s"
	}
}
