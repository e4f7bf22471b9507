package packaging

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
)

// Options say what to package.
type Options struct {
	// Root is the repository root (deploy/, docs/, packaging/ live there).
	Root string
	// Binary is the haguard binary to ship, stamped with -X main.version.
	Binary string
	// OutDir receives haguard_<version>_amd64.deb.
	OutDir string
	// Config is the nfpm config; empty means Root/packaging/nfpm.yaml.
	Config string
	// Maintainer is the Maintainer field, "Name <user@host.domain>";
	// empty means ResolveMaintainer's fallbacks.
	Maintainer string
}

// Result says what Build made.
type Result struct {
	Path       string // the .deb
	Version    string // the binary's own version (git describe)
	DebVersion string // the package version derived from it
	Maintainer string // the Maintainer field
}

// Build generates the man pages and completions with the docs build of the
// source in Root (see generateDocs), then writes the .deb with nfpm. The package version is
// derived from the version stamped into the binary, so the two cannot
// disagree.
func Build(ctx context.Context, o Options) (Result, error) {
	var res Result
	root, err := filepath.Abs(o.Root)
	if err != nil {
		return res, err
	}
	bin, err := filepath.Abs(o.Binary)
	if err != nil {
		return res, err
	}
	cfgPath := o.Config
	if cfgPath == "" {
		cfgPath = filepath.Join(root, "packaging", "nfpm.yaml")
	}
	res.Version, err = binaryVersion(ctx, bin)
	if err != nil {
		return res, err
	}
	res.DebVersion = DebVersion(res.Version)
	if res.Maintainer, err = ResolveMaintainer(ctx, o.Maintainer, root); err != nil {
		return res, err
	}

	stage, err := os.MkdirTemp("", "haguard-deb-")
	if err != nil {
		return res, fmt.Errorf("stage: %w", err)
	}
	defer os.RemoveAll(stage)
	if err := generateDocs(ctx, root, res.Version, stage); err != nil {
		return res, err
	}
	if err := writeDocMeta(ctx, root, res, stage); err != nil {
		return res, err
	}

	vars := map[string]string{
		"DEB_VERSION": res.DebVersion,
		"BINARY":      bin,
		"STAGE":       stage,
		"ROOT":        root,
		"MAINTAINER":  res.Maintainer,
	}
	info, err := loadInfo(cfgPath, vars)
	if err != nil {
		return res, err
	}
	for _, sc := range []*string{&info.Scripts.PreInstall, &info.Scripts.PostInstall, &info.Scripts.PreRemove, &info.Scripts.PostRemove} {
		if *sc != "" && !filepath.IsAbs(*sc) {
			*sc = filepath.Join(root, *sc)
		}
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return res, fmt.Errorf("out dir: %w", err)
	}
	res.Path = filepath.Join(o.OutDir, deb.Default.ConventionalFileName(info))
	if err := writeAtomic(res.Path, func(w io.Writer) error { return deb.Default.Package(info, w) }); err != nil {
		return res, fmt.Errorf("package %s: %w", res.Path, err)
	}
	return res, nil
}

// loadInfo parses the nfpm config, expanding ${VAR} only from vars: an
// unknown variable is an error rather than an empty path.
func loadInfo(path string, vars map[string]string) (*nfpm.Info, error) {
	var unknown []string
	mapping := func(k string) string {
		v, ok := vars[k]
		if !ok && !strings.HasPrefix(k, "NFPM_") { // nfpm asks for its signing passphrases
			unknown = append(unknown, k)
		}
		return v
	}
	cfg, err := nfpm.ParseFileWithEnvMapping(path, mapping)
	if err != nil {
		return nil, fmt.Errorf("nfpm config %s: %w", path, err)
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("nfpm config %s: unknown variables %s", path, strings.Join(unknown, ", "))
	}
	info, err := cfg.Get("deb")
	if err != nil {
		return nil, fmt.Errorf("nfpm config %s: %w", path, err)
	}
	if err := nfpm.Validate(info); err != nil {
		return nil, fmt.Errorf("nfpm config %s: %w", path, err)
	}
	return info, nil
}

// binaryVersion asks the binary itself (haguard version --format json).
func binaryVersion(ctx context.Context, bin string) (string, error) {
	out, err := exec.CommandContext(ctx, bin, "version", "--format", "json").Output()
	if err != nil {
		return "", fmt.Errorf("%s version: %w", bin, execErr(err))
	}
	var v struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(out, &v); err != nil || v.Version == "" {
		return "", fmt.Errorf("%s version: unreadable output %q", bin, out)
	}
	return v.Version, nil
}

// generateDocs writes stage/man/*.1.gz and stage/completions/*. The
// shipped binary links no doc generator: packaging/cmd/gendocs, built from
// the same source in root, writes the pages of that very command tree.
func generateDocs(ctx context.Context, root, version, stage string) error {
	man := filepath.Join(stage, "man")
	cmd := exec.CommandContext(ctx, "go", "run", "./packaging/cmd/gendocs", "-version", version,
		"-man", man, "-completions", filepath.Join(stage, "completions"))
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("gendocs: %w: %s", err, bytes.TrimSpace(out))
	}
	pages, err := filepath.Glob(filepath.Join(man, "*.1"))
	if err != nil {
		return err
	}
	if len(pages) == 0 {
		return errors.New("gendocs wrote no man page")
	}
	for _, p := range pages {
		if err := gzipFile(p); err != nil {
			return fmt.Errorf("compress %s: %w", p, err)
		}
	}
	return nil
}

// writeDocMeta writes stage/doc/copyright and stage/doc/changelog.gz,
// which Debian policy (12.5, 12.7) wants in /usr/share/doc/haguard.
func writeDocMeta(ctx context.Context, root string, res Result, stage string) error {
	dir := filepath.Join(stage, "doc")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cr, err := Copyright(ctx, root)
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, "copyright"), func(w io.Writer) error {
		_, err := io.WriteString(w, cr)
		return err
	}); err != nil {
		return fmt.Errorf("copyright: %w", err)
	}
	cl := filepath.Join(dir, "changelog")
	if err := os.WriteFile(cl, []byte(Changelog(ctx, root, res.DebVersion, res.Version, res.Maintainer, buildDate(ctx, root))), 0o644); err != nil {
		return fmt.Errorf("changelog: %w", err)
	}
	return gzipFile(cl)
}

// gzipFile replaces p with p.gz, without a name or time in the header
// (like gzip -n), as Debian policy wants for man pages.
func gzipFile(p string) error {
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	err = writeAtomic(p+".gz", func(w io.Writer) error {
		zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
		if err != nil {
			return err
		}
		if _, err := zw.Write(data); err != nil {
			return err
		}
		return zw.Close()
	})
	if err != nil {
		return err
	}
	return os.Remove(p)
}

// writeAtomic writes path through a temp file in the same directory.
func writeAtomic(path string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if err := write(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func execErr(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(ee.Stderr))
	}
	return err
}
