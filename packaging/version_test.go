package packaging

import (
	"os/exec"
	"testing"
)

func TestDebVersion(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"v1.2.3", "1.2.3"},
		{"1.2.3", "1.2.3"},
		{"v1.2.3-dirty", "1.2.3+dirty"},
		{"v1.2.3-rc1", "1.2.3~rc1"},
		{"v1.2.3-4-gabc1234", "1.2.3+git4.abc1234"},
		{"v1.2.3-rc1-4-gabc1234-dirty", "1.2.3~rc1+git4.abc1234+dirty"},
		{"abc1234", "0.0.0~git.abc1234"},
		{"abc1234-dirty", "0.0.0~git.abc1234+dirty"},
		{"dev", "0.0.0~dev"},
		{"", "0.0.0~unknown"},
		{"my branch/ü", "0.0.0~my.branch"},
	} {
		if got := DebVersion(tc.in); got != tc.want {
			t.Errorf("DebVersion(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestDebVersionOrder asks dpkg itself that the versions are valid and
// sort in build order.
func TestDebVersionOrder(t *testing.T) {
	dpkg, err := exec.LookPath("dpkg")
	if err != nil {
		t.Fatalf("dpkg: %v (Debian is the target)", err)
	}
	order := []string{"dev", "abc1234", "abc1234-dirty", "v0.9.0", "v1.0.0-rc1", "v1.0.0", "v1.0.0-dirty", "v1.0.0-2-gabc1234", "v1.0.0-10-gabc1234", "v1.0.1"}
	for i := 0; i+1 < len(order); i++ {
		a, b := DebVersion(order[i]), DebVersion(order[i+1])
		if out, err := exec.Command(dpkg, "--compare-versions", a, "lt", b).CombinedOutput(); err != nil {
			t.Errorf("dpkg: %s (from %s) is not before %s (from %s): %v %s", a, order[i], b, order[i+1], err, out)
		}
	}
	for _, v := range order {
		if out, err := exec.Command(dpkg, "--validate-version", DebVersion(v)).CombinedOutput(); err != nil {
			t.Errorf("dpkg rejects %s (from %s): %s", DebVersion(v), v, out)
		}
	}
}
