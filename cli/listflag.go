package cli

import (
	"encoding/csv"
	"strings"

	"github.com/spf13/pflag"
)

// listValue is a repeatable string flag: pflag's StringArray, or its
// StringSlice when split (commas separate values too, quoted as in CSV).
// pflag renders the default of its own list flags through encoding/csv
// and a fresh 4 KB buffer, for every such flag of every command at every
// start: half of what building the command tree allocated (issue 18,
// docs/benchmarks.md "start-up"). This one renders nothing until set.
type listValue struct {
	dst     *[]string
	split   bool
	changed bool
}

// listVarP defines a list flag on fs; its default is empty.
func listVarP(fs *pflag.FlagSet, dst *[]string, name, short string, split bool, usage string) {
	*dst = nil
	fs.VarP(&listValue{dst: dst, split: split}, name, short, usage)
}

func (v *listValue) Set(s string) error {
	vals := []string{s}
	if v.split {
		if strings.TrimSpace(s) == "" {
			vals = nil
		} else {
			var err error
			if vals, err = csv.NewReader(strings.NewReader(s)).Read(); err != nil {
				return err
			}
		}
	}
	if !v.changed {
		*v.dst, v.changed = nil, true
	}
	*v.dst = append(*v.dst, vals...)
	return nil
}

// Type keeps pflag's names, which its help ("strings", "stringArray")
// and cobra's completion (a list flag may be given again) go by.
func (v *listValue) Type() string {
	if v.split {
		return "stringSlice"
	}
	return "stringArray"
}

// String is "" while empty, which pflag's help reads as no default.
func (v *listValue) String() string {
	if len(*v.dst) == 0 {
		return ""
	}
	return "[" + strings.Join(*v.dst, ",") + "]"
}

// Append, Replace and GetSlice are pflag.SliceValue, which cobra's
// completion uses on list flags.
func (v *listValue) Append(s string) error {
	*v.dst = append(*v.dst, s)
	return nil
}

func (v *listValue) Replace(vals []string) error {
	*v.dst = append([]string(nil), vals...)
	return nil
}

func (v *listValue) GetSlice() []string { return *v.dst }

// listOf is the value of list flag name in fs (nil when it has none).
func listOf(fs *pflag.FlagSet, name string) []string {
	if f := fs.Lookup(name); f != nil {
		if v, ok := f.Value.(*listValue); ok {
			return v.GetSlice()
		}
	}
	return nil
}
