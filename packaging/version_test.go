package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

func TestCheckMaintainer(t *testing.T) {
	for _, ok := range []string{"Jane Doe <jane@example.org>", `"Doe, Jane" <jane@lb1.example.co.uk>`} {
		if err := checkMaintainer(ok); err != nil {
			t.Errorf("checkMaintainer(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"haguard maintainers <haguard@localhost>", "jane@example.org", "<jane@example.org>", "Jane <jane>", "Jane <jane@localhost.localdomain>", "Jane"} {
		if err := checkMaintainer(bad); err == nil {
			t.Errorf("checkMaintainer(%q) accepted it", bad)
		}
	}
}

func TestResolveMaintainerOrder(t *testing.T) {
	t.Setenv("DEBFULLNAME", "Deb Full")
	t.Setenv("DEBEMAIL", "deb@example.org")
	if m, err := ResolveMaintainer(t.Context(), "Given Name <given@example.org>", ".."); err != nil || m != "Given Name <given@example.org>" {
		t.Errorf("given: %q, %v", m, err)
	}
	if m, err := ResolveMaintainer(t.Context(), "", ".."); err != nil || m != "Deb Full <deb@example.org>" {
		t.Errorf("DEBFULLNAME/DEBEMAIL: %q, %v", m, err)
	}
	if _, err := ResolveMaintainer(t.Context(), "haguard <haguard@localhost>", ".."); err == nil || !strings.Contains(err.Error(), "bogus-mail-host") {
		t.Errorf("a bogus host: %v", err)
	}
}

func TestChangelogFormat(t *testing.T) {
	date := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	cl := Changelog(t.Context(), t.TempDir(), "1.2.3", "v1.2.3", "Jane Doe <jane@example.org>", date)
	want := "haguard (1.2.3) unstable; urgency=medium\n\n  * Built from git v1.2.3.\n\n -- Jane Doe <jane@example.org>  Wed, 02 Dec 2026 08:00:00 +0000\n"
	if cl != want {
		t.Errorf("changelog outside a git tree:\n%s\nwant:\n%s", cl, want)
	}
	// dpkg's own parser reads the changelog of the repository.
	cl = Changelog(t.Context(), "..", "1.2.3", "v1.2.3", "Jane Doe <jane@example.org>", date)
	path := filepath.Join(t.TempDir(), "changelog")
	if err := os.WriteFile(path, []byte(cl), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("dpkg-parsechangelog", "-l", path, "-S", "Version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "1.2.3" {
		t.Errorf("dpkg-parsechangelog: %q, %v\n%s", out, err, cl)
	}
	for _, l := range strings.Split(cl, "\n") {
		if len(l) > 80 {
			t.Errorf("line longer than 80: %q", l)
		}
	}
}

func TestWrapItem(t *testing.T) {
	got := wrapItem(strings.Repeat("word ", 30), 40)
	for i, l := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
		if len(l) > 40 || (i == 0) != strings.HasPrefix(l, "  * ") || i > 0 && !strings.HasPrefix(l, "    ") {
			t.Errorf("line %d %q", i, l)
		}
	}
}

func TestClassifyLicenses(t *testing.T) {
	for text, want := range map[string]string{
		"Apache License\nVersion 2.0, January 2004":                                          "Apache-2.0",
		"Permission is hereby granted, free of charge, to any person":                        "MIT",
		"Redistribution and use in source and binary forms ... Neither the name of Google":   "BSD-3-Clause",
		"Redistribution and use in source and binary forms, with or without modification":    "BSD-2-Clause",
		"Mozilla Public License Version 2.0":                                                 "MPL-2.0",
		"Apache License Version 2.0 ... Permission is hereby granted, free of charge, to...": "Apache-2.0 MIT",
		"All rights reserved.": "",
	} {
		if got := strings.Join(classify(text), " "); got != want {
			t.Errorf("classify(%.40q) = %q, want %q", text, got, want)
		}
	}
}
