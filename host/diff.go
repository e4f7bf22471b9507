package host

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/haguard/haguard/reload"
	"github.com/haguard/haguard/validate"
)

// diffPort compares config sets by meaning for reload's dry run and
// `haguard diff`: each set is parsed as the unit reads it (its
// environment, its binary's version for .if blocks), then
// validate.DiffConfigs, and validate.DiffMap for every map and ACL file
// either config loads.
type diffPort struct{ h *Host }

func (d diffPort) Diff(ctx context.Context, before, after reload.ConfigSet) ([]validate.Change, error) {
	root, err := os.MkdirTemp("", "haguard-diff-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(root)
	bdir, adir := filepath.Join(root, "running"), filepath.Join(root, "candidate")
	bc, err := d.h.parseSet(ctx, before, bdir)
	if err != nil {
		return nil, fmt.Errorf("read what runs: %w", err)
	}
	ac, err := d.h.parseSet(ctx, after, adir)
	if err != nil {
		return nil, fmt.Errorf("read the candidate: %w", err)
	}
	// The scratch copies are named by the real paths again.
	real := func(p string) string {
		for _, dir := range []string{bdir, adir} {
			if rest, ok := strings.CutPrefix(p, dir+"/"); ok {
				return "/" + rest
			}
		}
		return p
	}
	changes := validate.DiffConfigs(bc, ac)
	for i := range changes {
		changes[i].File = real(changes[i].File)
	}
	seen := map[string]bool{}
	for _, cfg := range []*validate.Config{ac, bc} {
		for _, r := range validate.FileRefsWith(cfg, validate.RefOptions{WorkDir: d.h.disc.WorkDir}) {
			kind := map[string]string{"map": "map", "acl-file": "acl"}[r.Kind]
			path := real(r.Path)
			if kind == "" || r.Path == "" || seen[path] {
				continue
			}
			seen[path] = true
			b, bok := before.Read(path)
			a, aok := after.Read(path)
			if bok && aok && string(a) != string(b) {
				changes = append(changes, validate.DiffMap(kind, path, b, a)...)
			}
		}
	}
	return changes, nil
}

// parseSet parses a set from its content: the config files are written
// under dir at their own paths and read from there the way the unit
// reads them (its environment, its binary's version).
func (h *Host) parseSet(ctx context.Context, set reload.ConfigSet, dir string) (*validate.Config, error) {
	staged, err := stageSet(set, dir)
	if err != nil {
		return nil, err
	}
	target, _ := h.targets.Get(ctx, h.cfg.HAProxy.Binary) // nil: .if read without a version
	return validate.ParseWith(validate.ReadOptions{Env: h.disc.Env, Target: target, MasterWorker: h.disc.MasterWorker}, staged...)
}

// stageSet writes the config files of set under dir at their own paths
// and returns the staged paths, in load order.
func stageSet(set reload.ConfigSet, dir string) ([]string, error) {
	staged := make([]string, 0, len(set.Files))
	for _, f := range set.Files {
		b, ok := set.Read(f)
		if !ok {
			continue
		}
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			return nil, err
		}
		staged = append(staged, p)
	}
	if len(staged) == 0 {
		return nil, fmt.Errorf("no config file")
	}
	return staged, nil
}
