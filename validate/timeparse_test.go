package validate

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	tests := []struct {
		in       string
		base     Base
		want     time.Duration
		unitless bool
		err      string // substring; "" = no error
		overflow bool
	}{
		{in: "50s", want: 50 * time.Second},
		{in: "28800", want: 28800 * time.Millisecond, unitless: true},
		{in: "28800", base: Seconds, want: 8 * time.Hour, unitless: true},
		{in: "500ms", want: 500 * time.Millisecond},
		{in: "1500us", want: 2 * time.Millisecond}, // rounded up, as HAProxy does
		{in: "1us", want: time.Millisecond},
		{in: "0", want: 0, unitless: true},
		{in: "1m", want: time.Minute},
		{in: "8h", want: 8 * time.Hour},
		{in: "24d", want: 24 * 24 * time.Hour},
		{in: "2147483647", want: 2147483647 * time.Millisecond, unitless: true},
		{in: "2147483648", err: "timer overflow", overflow: true},
		{in: "25d", err: "timer overflow", overflow: true},
		{in: "99999999999999999999999d", err: "timer overflow", overflow: true},
		{in: "600000", base: Seconds, want: 600000 * time.Second, unitless: true},
		// The seconds base (srvtcpka-idle...): HAProxy converts to seconds,
		// rounds up, and its limit is 2^31-1 s whatever the unit.
		{in: "25d", base: Seconds, want: 25 * 24 * time.Hour},
		{in: "500ms", base: Seconds, want: time.Second},
		{in: "1500ms", base: Seconds, want: 2 * time.Second},
		{in: "2147483647s", base: Seconds, want: 2147483647 * time.Second},
		{in: "2147483648s", base: Seconds, err: "timer overflow", overflow: true},
		{in: "24856d", base: Seconds, err: "timer overflow", overflow: true},
		{in: "", err: "empty value"},
		{in: "s", err: "must start with a number"},
		{in: "-5s", err: "must start with a number"},
		{in: "5 s", err: "unknown unit"},
		{in: "5S", err: "unknown unit"},
		{in: "1.5s", err: "unknown unit"},
		{in: "10u", err: "unknown unit"},
		// haproxy 2.6 accepts junk after a unit with a warning ("unexpected
		// character 'e' after the timer value '5sec'") and keeps the value.
		{in: "5sec", want: 5 * time.Second},
		{in: "10sx", want: 10 * time.Second},
		{in: "10mx", want: 10 * time.Minute},
		{in: "10msx", want: 10 * time.Millisecond},
		{in: "24dd", want: 24 * 24 * time.Hour},
		{in: "2147483648sx", err: "timer overflow", overflow: true},
	}
	for _, tt := range tests {
		got, err := ParseTime(tt.in, tt.base)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseTime(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			if errors.Is(err, ErrTimerOverflow) != tt.overflow {
				t.Errorf("ParseTime(%q): errors.Is(ErrTimerOverflow) = %v, want %v", tt.in, !tt.overflow, tt.overflow)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseTime(%q): %v", tt.in, err)
			continue
		}
		if got.D != tt.want || got.Unitless != tt.unitless || got.Raw != tt.in {
			t.Errorf("ParseTime(%q) = %+v, want D=%v unitless=%v", tt.in, got, tt.want, tt.unitless)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		50 * time.Second:         "50s",
		28800 * time.Millisecond: "28.8 s",
		8 * time.Hour:            "8h",
		500 * time.Millisecond:   "500ms",
		600000 * time.Second:     "6.9 days",
		90 * time.Second:         "90s",
		10 * time.Minute:         "10m",
		24 * time.Hour:           "1d",
		Infinite:                 "infinite (unset)",
		1500 * time.Millisecond:  "1.5 s",
	} {
		got := FormatDuration(d)
		if d == Infinite {
			got = fmtDur(d)
		}
		if got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"50s", "28800", "25d", "1500us", "", "5sec", "99999999999999999999", "0", "2147483647", "1.5s"} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, secs bool) {
		base := Millis
		if secs {
			base = Seconds
		}
		got, err := ParseTime(s, base)
		if err != nil {
			var te *TimeError
			if !errors.As(err, &te) {
				t.Fatalf("error %v is not a *TimeError", err)
			}
			return
		}
		if got.D < 0 {
			t.Fatalf("negative duration %v for %q", got.D, s)
		}
		if base == Millis && got.MS() > MaxTimerMS {
			t.Fatalf("%q accepted above the limit: %d ms", s, got.MS())
		}
		_ = FormatDuration(got.D)
	})
}
