package cli

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/haguard/haguard/config"
)

// A flag whose real default comes from haguard.yaml says so in its usage,
// "(default: sweep.kill_grace, 10s)": the man page and --help show that,
// not the flag's zero value. The value it names must be the built-in
// default of that key, or the docs lie.
var yamlDefault = regexp.MustCompile(`default: ([a-z_]+(?:\.[a-z_]+)+), ([^,)]+)[,)]`)

func TestFlagDefaultsMatchConfig(t *testing.T) {
	b, err := yaml.Marshal(config.Default())
	if err != nil {
		t.Fatal(err)
	}
	var tree map[string]any
	if err := yaml.Unmarshal(b, &tree); err != nil {
		t.Fatal(err)
	}
	lookup := func(key string) (string, bool) {
		var cur any = tree
		for _, k := range strings.Split(key, ".") {
			m, ok := cur.(map[string]any)
			if !ok {
				return "", false
			}
			if cur, ok = m[k]; !ok {
				return "", false
			}
		}
		return fmt.Sprint(cur), true
	}
	checked := 0
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			for _, m := range yamlDefault.FindAllStringSubmatch(f.Usage, -1) {
				got, ok := lookup(m[1])
				if !ok {
					t.Errorf("%s --%s names %s, which haguard.yaml does not have", c.CommandPath(), f.Name, m[1])
					continue
				}
				checked++
				if want := strings.TrimSpace(m[2]); !strings.HasPrefix(want, "else ") && got != want {
					t.Errorf("%s --%s says the default is %s, %s; config.Default() has %s", c.CommandPath(), f.Name, m[1], want, got)
				}
			}
		})
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(Root("dev"))
	if checked < 5 {
		t.Fatalf("only %d flags name their haguard.yaml default; the pattern no longer matches the usage texts", checked)
	}
}
