package validate

import (
	"bufio"
	"bytes"
	"path/filepath"
	"slices"
	"strings"
)

// CrtListRefs lists the files a crt-list names, given the list's content:
// each line's certificate (with its optional companions) and the files
// of its [options] (ca-file, ca-verify-file, crl-file, and from 3.0 crt,
// key, ocsp, issuer, sctl). list is a "crt-list" FileRef from FileRefs;
// relative entries resolve as haproxy resolves them (crt-base, ca-base,
// else the directory haproxy was in when it read the list). Pos.File of
// each entry is the list's path and Pos.Line the entry's line; Keyword
// is "crt-list".
func CrtListRefs(list FileRef, data []byte) []FileRef {
	if list.Kind != "crt-list" {
		return nil
	}
	lb := list.list
	if lb == nil {
		lb = &listBases{dirs: []string{"/"}}
	}
	var out []FileRef
	add := func(kind, raw, base string, line int, optional bool) {
		raw, _ = haproxyWord(raw)
		if raw == "" {
			return
		}
		p, alt := resolveIn(raw, base, lb.dirs)
		out = append(out, FileRef{Kind: kind, Access: AccessRead, Raw: raw, Path: p, Alt: alt, Optional: optional,
			Keyword: "crt-list", Pos: Pos{File: list.Path, Line: line}, Section: list.Section})
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), MaxLineBytes)
	n := 0
	for sc.Scan() {
		n++
		words, _ := tokenize(sc.Text())
		if len(words) == 0 {
			continue
		}
		add("crt", words[0], lb.crt, n, false)
		for _, ext := range crtExtras {
			add("crt-extra", words[0]+ext, lb.crt, n, true)
		}
		// [opt val opt val] may touch the brackets: "[ca-file", "x.pem]".
		in := false
		var opts []string
		for _, w := range words[1:] {
			if strings.HasPrefix(w, "[") {
				in, w = true, w[1:]
			}
			end := strings.HasSuffix(w, "]")
			w = strings.TrimSuffix(w, "]")
			if in && w != "" {
				opts = append(opts, w)
			}
			if end {
				in = false
			}
		}
		for i := 0; i+1 < len(opts); i++ {
			switch k := opts[i]; k {
			case "ca-file", "ca-verify-file", "crl-file":
				add(k, opts[i+1], lb.ca, n, false)
			case "crt":
				add("crt", opts[i+1], lb.crt, n, false)
			case "key", "ocsp", "issuer", "sctl":
				add(k, opts[i+1], "", n, false)
			default:
				continue
			}
			i++
		}
	}
	return out
}

// resolveIn resolves raw against base (when set) under each of dirs.
func resolveIn(raw, base string, dirs []string) (string, []string) {
	if hasEnvRef(raw) || hasEnvRef(base) {
		return "", nil
	}
	if filepath.IsAbs(raw) {
		return filepath.Clean(raw), nil
	}
	var paths []string
	for _, d := range dirs {
		p := filepath.Join(d, base, raw)
		if filepath.IsAbs(base) {
			p = filepath.Join(base, raw)
		}
		if !slices.Contains(paths, p) {
			paths = append(paths, p)
		}
	}
	if len(paths) == 0 {
		return "", nil
	}
	return paths[0], paths[1:]
}
