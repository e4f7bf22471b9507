package packaging

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// The licenses Debian ships in /usr/share/common-licenses: a copyright
// file refers to those instead of repeating them.
var commonLicenses = map[string]bool{"Apache-2.0": true, "MPL-2.0": true}

// haguardLicense is haguard's own (packaging/nfpm.yaml says it too).
const haguardLicense = "Apache-2.0"

// module is one Go module linked into the binary.
type module struct {
	Path, Version, Dir string
}

// Copyright writes the machine-readable copyright file
// (/usr/share/doc/haguard/copyright, copyright-format 1.0). The binary is
// static, so it carries the code of every Go module it links and of the
// Go standard library: each gets a paragraph with its license, detected
// from its own license file. A module whose license is not recognised
// fails the build rather than ship without its terms.
func Copyright(ctx context.Context, root string) (string, error) {
	mods, err := linkedModules(ctx, root)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n")
	b.WriteString("Upstream-Name: haguard\nSource: https://github.com/haguard/haguard\n")
	b.WriteString("Comment: /usr/bin/haguard is a static Go binary: it contains the Go\n")
	b.WriteString(" standard library and the Go modules listed below, at the versions given.\n\n")
	fmt.Fprintf(&b, "Files: *\nCopyright: the haguard authors\nLicense: %s\n\n", haguardLicense)

	goroot, err := goEnv(ctx, root, "GOROOT")
	if err != nil {
		return "", err
	}
	version, _ := goEnv(ctx, root, "GOVERSION")
	all := append([]module{{Path: "Go standard library", Version: version, Dir: goroot}}, mods...)
	used := map[string]bool{haguardLicense: true}
	for _, m := range all {
		text, file, err := licenseText(m.Dir)
		if err != nil {
			return "", fmt.Errorf("copyright: %s: %w", m.Path, err)
		}
		names := classify(text)
		if len(names) == 0 {
			return "", fmt.Errorf("copyright: %s: license in %s not recognised; add it to packaging/copyright.go", m.Path, file)
		}
		pattern := m.Path + "/*"
		if m.Path == "Go standard library" {
			pattern = "go/*"
		}
		fmt.Fprintf(&b, "Files: %s\nComment: %s %s\nCopyright: %s\nLicense: %s\n", pattern, m.Path, m.Version,
			holders(text, m.Path), strings.Join(names, " and "))
		common := true
		for _, n := range names {
			common = common && commonLicenses[n]
			used[n] = true
		}
		if !common {
			b.WriteString(indent(text)) // the terms themselves: Debian has no copy
		}
		b.WriteString("\n")
	}
	var common []string
	for n := range used {
		if commonLicenses[n] {
			common = append(common, n)
		}
	}
	sort.Strings(common)
	for _, n := range common {
		fmt.Fprintf(&b, "License: %s\n On Debian systems, the complete text of the license can be found in\n \"/usr/share/common-licenses/%s\".\n\n", n, n)
	}
	return strings.TrimRight(b.String(), "\n") + "\n", nil
}

// linkedModules lists the modules of the packages ./cmd/haguard links,
// built as make build builds it (CGO_ENABLED=0), haguard itself left out.
func linkedModules(ctx context.Context, root string) ([]module, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-deps", "-f", "{{with .Module}}{{if not .Main}}{{.Path}}\t{{.Version}}\t{{.Dir}}{{end}}{{end}}", "./cmd/haguard")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list the linked modules: %w", execErr(err))
	}
	seen := map[string]bool{}
	var mods []module
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 || seen[f[0]] {
			continue
		}
		seen[f[0]] = true
		mods = append(mods, module{Path: f[0], Version: f[1], Dir: f[2]})
	}
	sort.Slice(mods, func(i, j int) bool { return mods[i].Path < mods[j].Path })
	if len(mods) == 0 {
		return nil, fmt.Errorf("go list found no module linked into ./cmd/haguard in %s", root)
	}
	return mods, nil
}

func goEnv(ctx context.Context, root, key string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "env", key)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go env %s: %w", key, execErr(err))
	}
	return strings.TrimSpace(string(out)), nil
}

// licenseText reads the first license file of dir.
func licenseText(dir string) (text, file string, err error) {
	for _, name := range []string{"LICENSE", "LICENSE.txt", "LICENSE.md", "LICENCE", "COPYING", "License"} {
		p := filepath.Join(dir, name)
		if b, err := os.ReadFile(p); err == nil {
			return strings.TrimSpace(string(b)), p, nil
		}
	}
	return "", "", fmt.Errorf("no license file in %s", dir)
}

// classify names the licenses a license file holds (SPDX identifiers).
func classify(text string) []string {
	flat := strings.Join(strings.Fields(text), " ")
	var names []string
	has := func(s ...string) bool {
		for _, x := range s {
			if !strings.Contains(flat, x) {
				return false
			}
		}
		return true
	}
	if has("Apache License", "Version 2.0") {
		names = append(names, "Apache-2.0")
	}
	if has("Mozilla Public License", "2.0") {
		names = append(names, "MPL-2.0")
	}
	if has("Permission is hereby granted, free of charge") {
		names = append(names, "MIT")
	}
	if has("Redistribution and use in source and binary forms") {
		if has("Neither the name") || has("names of its contributors may be used to endorse") {
			names = append(names, "BSD-3-Clause")
		} else {
			names = append(names, "BSD-2-Clause")
		}
	}
	if has("Permission to use, copy, modify, and/or distribute this software for any purpose") {
		names = append(names, "ISC")
	}
	return names
}

var copyrightLine = regexp.MustCompile(`(?i)^\s*copyright\s+(?:\(c\)\s*|©\s*)?(\d{4}.*)$`)

// holders are the license file's "Copyright YEAR NAME" lines, or the
// module's authors when it names none.
func holders(text, path string) string {
	var hs []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader([]byte(text)))
	for sc.Scan() {
		if m := copyrightLine.FindStringSubmatch(sc.Text()); m != nil {
			h := strings.TrimSpace(m[1])
			if !seen[h] {
				seen[h] = true
				hs = append(hs, h)
			}
		}
	}
	if len(hs) == 0 {
		return "the " + path + " authors"
	}
	return strings.Join(hs, "\n ")
}

// indent makes text a copyright-format continuation: every line starts
// with a space, blank lines are " .".
func indent(text string) string {
	var b strings.Builder
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimRight(l, " \t\r")
		if l == "" {
			b.WriteString(" .\n")
			continue
		}
		b.WriteString(" " + l + "\n")
	}
	return b.String()
}
