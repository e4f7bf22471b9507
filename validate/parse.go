package validate

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/haproxytech/client-native/v5/config-parser/parsers/extra"
	"github.com/haproxytech/client-native/v5/config-parser/types"
)

// How this package uses client-native's config-parser, and why.
//
// client-native's whole-file parser (parser.New) keeps no line numbers and
// builds a map of ~150 directive parsers for every section: on the 85k-line
// benchmark config that is 10,000 sections and most of the cost
// (docs/benchmarks.md, section "check"). It also writes a package-level
// variable while parsing, so it cannot run twice at once. We therefore
// read the files ourselves with a light line index (file, line, section)
// and hand each line to client-native: its tokenizer
// (common.StringSplitWithCommentIgnoreEmpty, same quoting and comment rules
// as the full parser) for every line that has quotes, escapes or a comment
// (tokenize.go splits the plain ones itself, identically), and its
// per-directive parsers for the lines whose
// grammar matters (section headers with "from", server, default-server,
// bind, mode, use_backend, default_backend, option mysql-check, option
// httpchk). Every other line is kept as words, with its position.

// FileError is an input file that cannot be read (exit code 2).
type FileError struct {
	File string
	Err  error
}

func (e *FileError) Error() string { return fmt.Sprintf("read %s: %v", e.File, e.Err) }
func (e *FileError) Unwrap() error { return e.Err }

// MaxLineBytes bounds one configuration line (HAProxy's own limit is 64 KiB).
const MaxLineBytes = 1 << 20

// Parse reads files in order, as `haproxy -f A -f B` merges them, and
// resolves each proxy's defaults section. An unreadable file is a
// *FileError; unknown keywords are kept, never refused: `haproxy -c`
// judges the syntax.
func Parse(files ...string) (*Config, error) {
	if len(files) == 0 {
		return nil, errors.New("no configuration file given")
	}
	files, err := expandDirs(files)
	if err != nil {
		return nil, err
	}
	b := newBuilder(files)
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, &FileError{File: f, Err: err}
		}
		err = b.read(f, fh)
		fh.Close()
		if err != nil {
			return nil, &FileError{File: f, Err: err}
		}
	}
	return b.finish()
}

// expandDirs replaces each directory argument by its *.cfg files in
// lexical order, as `haproxy -f DIR` does.
func expandDirs(args []string) ([]string, error) {
	out := make([]string, 0, len(args))
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil || !st.IsDir() {
			out = append(out, a) // Open reports the error with the file's name
			continue
		}
		ents, err := os.ReadDir(a)
		if err != nil {
			return nil, &FileError{File: a, Err: err}
		}
		for _, e := range ents { // ReadDir sorts by name
			if !e.IsDir() && strings.HasSuffix(e.Name(), ".cfg") {
				out = append(out, filepath.Join(a, e.Name()))
			}
		}
	}
	return out, nil
}

// ParseReader parses one configuration read from r, named name in positions.
func ParseReader(name string, r io.Reader) (*Config, error) {
	b := newBuilder([]string{name})
	if err := b.read(name, r); err != nil {
		return nil, &FileError{File: name, Err: err}
	}
	return b.finish()
}

type builder struct {
	cfg          *Config
	cur          *Proxy // nil inside sections we do not model
	lastDefaults *Proxy
	named        map[string]*Proxy // defaults by name
	unnamed      int
	paramCache   map[string]Params // server parameter words → parsed list
	// The current section's lines and servers, copied into it at its end
	// with their exact size: growing 10,000 small slices one append at a
	// time was a third of the benchmark's allocations.
	dirBuf []Directive
	srvBuf []Server
}

// flush hands the buffered lines and servers to the current section.
func (b *builder) flush() {
	if b.cur != nil {
		b.cur.Directives = appendExact(b.cur.Directives, b.dirBuf)
		b.cur.Servers = appendExact(b.cur.Servers, b.srvBuf)
	}
	b.dirBuf, b.srvBuf = b.dirBuf[:0], b.srvBuf[:0]
}

func appendExact[T any](dst, src []T) []T {
	if len(src) == 0 {
		return dst
	}
	out := make([]T, len(dst)+len(src))
	copy(out, dst)
	copy(out[len(dst):], src)
	return out
}

func newBuilder(files []string) *builder {
	return &builder{
		cfg:   &Config{Files: files, Global: newProxy(KindGlobal, "", Pos{})},
		named: map[string]*Proxy{},
	}
}

func newProxy(k Kind, name string, pos Pos) *Proxy {
	return &Proxy{Kind: k, Name: name, Pos: pos}
}

var sectionKeywords = map[string]bool{
	"global": true, "defaults": true, "frontend": true, "backend": true, "listen": true,
	"resolvers": true, "userlist": true, "peers": true, "mailers": true, "cache": true,
	"program": true, "http-errors": true, "ring": true, "log-forward": true, "fcgi-app": true,
	"crt-store": true, "traces": true,
}

func (b *builder) read(file string, r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), MaxLineBytes)
	n := 0
	// HAProxy starts every file outside any section.
	b.flush()
	b.cur = nil
	for sc.Scan() {
		n++
		line := strings.TrimSuffix(sc.Text(), "\r") // CRLF files
		if strings.TrimSpace(line) == "" {
			continue
		}
		words, comment := tokenize(line)
		pos := Pos{File: file, Line: n}
		if len(words) == 0 {
			if b.cur != nil {
				b.tag(pos, comment)
			}
			continue
		}
		if sectionKeywords[words[0]] {
			b.section(line, words, comment, pos)
			continue
		}
		if b.cur == nil {
			continue
		}
		d := Directive{Pos: pos, Words: words, Comment: comment}
		b.dirBuf = append(b.dirBuf, d)
		b.tag(pos, comment)
		b.directive(line, d)
	}
	b.flush()
	b.cfg.Lines += n
	return sc.Err()
}

// tag records "# haguard:<tag>" annotations of the current section.
func (b *builder) tag(pos Pos, comment string) {
	for _, f := range strings.Fields(comment) {
		if t, ok := strings.CutPrefix(f, "haguard:"); ok && t != "" && b.cur != nil {
			if _, seen := b.cur.Tags[t]; !seen {
				put(&b.cur.Tags, t, pos)
			}
		}
	}
}

func (b *builder) section(line string, words []string, comment string, pos Pos) {
	b.flush()
	kind := Kind(words[0])
	switch kind {
	case KindGlobal:
		b.cur = b.cfg.Global
		if b.cur.Pos.Line == 0 {
			b.cur.Pos = pos
		}
		b.cfg.addSpan(pos, b.cur, "")
		b.tag(pos, comment)
		return
	case KindDefaults, KindFrontend, KindBackend, KindListen:
	default:
		// program, http-errors, ring, peers, crt-store...: kept as lines
		// only (Config.Others), for the rules about what a config loads.
		b.cur = b.other(kind, words, pos)
		b.cfg.addSpan(pos, nil, strings.Join(words[:min(2, len(words))], " "))
		return
	}
	// client-native's section parser knows "NAME from DEFAULTS".
	sp := &extra.Section{Name: words[0]}
	sp.Init()
	var sec types.Section
	if _, err := sp.Parse(line, words, comment); err == nil {
		if raw, err := sp.Get(false); err == nil {
			if s, ok := raw.(*types.Section); ok {
				sec = *s
			}
		}
	}
	p := newProxy(kind, sec.Name, pos)
	p.From = sec.FromDefaults
	// The defaults a section inherits: the named one, else the last one
	// read so far (for a defaults section, only an explicit "from").
	if p.From != "" {
		p.Defaults = b.named[p.From]
	} else if kind != KindDefaults {
		p.Defaults = b.lastDefaults
	}
	b.cur = p
	b.cfg.addSpan(pos, p, "")
	b.tag(pos, comment)
	switch kind {
	case KindDefaults:
		if p.Name == "" {
			b.unnamed++
		} else {
			b.named[p.Name] = p
		}
		b.lastDefaults = p
		b.cfg.Defaults = append(b.cfg.Defaults, p)
	case KindFrontend:
		b.cfg.Frontends = append(b.cfg.Frontends, p)
	case KindBackend:
		b.cfg.Backends = append(b.cfg.Backends, p)
	case KindListen:
		b.cfg.Listens = append(b.cfg.Listens, p)
	}
}

func (b *builder) finish() (*Config, error) {
	c := b.cfg
	c.byName = make(map[string]*Proxy, len(c.Backends)+len(c.Listens))
	for _, p := range append(append([]*Proxy(nil), c.Backends...), c.Listens...) {
		if _, dup := c.byName[p.Name]; !dup {
			c.byName[p.Name] = p
		}
	}
	return c, nil
}
