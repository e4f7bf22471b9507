package cli

import (
	"slices"
	"testing"

	"github.com/spf13/pflag"
)

// TestListFlag: repeated flags collect, a slice flag also splits on
// commas (CSV quoting kept), and help shows no default for an empty one,
// as pflag's own StringArray and StringSlice do.
func TestListFlag(t *testing.T) {
	var arr, slice []string
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	listVarP(fs, &arr, "unit", "u", false, "units")
	listVarP(fs, &slice, "skip", "", true, "rules")
	if err := fs.Parse([]string{"--unit", "a,b", "-u", "c", "--skip", `HA001,"HA,002"`, "--skip", "HA003"}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a,b", "c"}; !slices.Equal(arr, want) {
		t.Errorf("array: %q, want %q", arr, want)
	}
	if want := []string{"HA001", "HA,002", "HA003"}; !slices.Equal(slice, want) {
		t.Errorf("slice: %q, want %q", slice, want)
	}
	if got := listOf(fs, "unit"); !slices.Equal(got, arr) {
		t.Errorf("listOf: %q", got)
	}
	if err := fs.Set("skip", `"unterminated`); err == nil {
		t.Error("a malformed CSV value was accepted")
	}
	var empty []string
	fs2 := pflag.NewFlagSet("t", pflag.ContinueOnError)
	listVarP(fs2, &empty, "target", "", false, "host:port to probe")
	listVarP(fs2, &empty, "rules", "", true, "rules")
	if u := fs2.FlagUsages(); u != "      --rules strings        rules\n      --target stringArray   host:port to probe\n" {
		t.Errorf("usage:\n%s", u)
	}
}
