package validate

import (
	"strings"
	"testing"
)

func TestHA021HandManagedStateFile(t *testing.T) {
	for _, tc := range []struct {
		cfg  string
		want int
	}{
		{"global\n\tserver-state-file /var/lib/haproxy/state\ndefaults\n\tload-server-state-from-file global\nbackend be\n\tserver s1 10.0.0.1:80\n", 1},
		{"global\n\tserver-state-file /var/lib/haproxy/state\ndefaults\n\tload-server-state-from-file none\nbackend be\n\tserver s1 10.0.0.1:80\n", 0},
		{"defaults\n\tload-server-state-from-file global\nbackend be\n\tserver s1 10.0.0.1:80\n", 0},
	} {
		cfg, err := ParseReader("t.cfg", strings.NewReader(tc.cfg))
		if err != nil {
			t.Fatal(err)
		}
		var got []Finding
		for _, f := range DefaultRegistry().Lint(cfg, nil) {
			if f.Rule == "HA021" {
				got = append(got, f)
			}
		}
		if len(got) != tc.want || tc.want == 1 && (got[0].Line != 4 || got[0].Section != "defaults") {
			t.Errorf("%q: %+v", tc.cfg, got)
		}
	}
}
