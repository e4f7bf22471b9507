package validate

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// How this package reads a configuration, and why.
//
// HAProxy's own reader decides what a line means: its tokenizer (quotes,
// escapes, environment variables; tokenize.go), its conditional blocks
// (.if; cond.go, reader.go) and its section and defaults rules. We read
// the files ourselves, line by line, the same way, with a light line
// index (file, line, section). client-native's whole-file parser keeps no
// line numbers, builds a map of ~150 directive parsers for every section
// (most of the cost on the 85k-line benchmark config, docs/benchmarks.md)
// and writes a package-level variable while parsing; we only hand it the
// words of the lines whose grammar matters (server, default-server, bind,
// mode, use_backend, default_backend, option mysql-check, option httpchk),
// already split the way haproxy splits them. Every other line is kept as
// words, with its position.

// FileError is an input file that cannot be read (exit code 2).
type FileError struct {
	File string
	Err  error
}

func (e *FileError) Error() string { return fmt.Sprintf("read %s: %v", e.File, e.Err) }
func (e *FileError) Unwrap() error { return e.Err }

// MaxLineBytes bounds one configuration line (HAProxy's own limit is 64 KiB).
const MaxLineBytes = 1 << 20

// Parse reads files in order, as `haproxy -f A -f B` merges them, in
// this process's environment and for an unknown haproxy binary (see
// ParseWith), and resolves each proxy's defaults section. An unreadable
// file is a *FileError; unknown keywords are kept, never refused:
// `haproxy -c` judges the syntax.
func Parse(files ...string) (*Config, error) { return ParseWith(ReadOptions{}, files...) }

// ParseWith is Parse for a given environment and target binary.
func ParseWith(opts ReadOptions, files ...string) (*Config, error) {
	if len(files) == 0 {
		return nil, errors.New("no configuration file given")
	}
	files, err := expandDirs(files)
	if err != nil {
		return nil, err
	}
	b := newBuilder(files, opts)
	for _, f := range files {
		if b.rd.aborted {
			break
		}
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

// ParseReader parses one configuration read from r, named name in
// positions, as Parse does.
func ParseReader(name string, r io.Reader) (*Config, error) {
	return ParseReaderWith(ReadOptions{}, name, r)
}

// ParseReaderWith is ParseReader for a given environment and target.
func ParseReaderWith(opts ReadOptions, name string, r io.Reader) (*Config, error) {
	b := newBuilder([]string{name}, opts)
	if err := b.read(name, r); err != nil {
		return nil, &FileError{File: name, Err: err}
	}
	return b.finish()
}

type builder struct {
	rd           *reading
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
	// pendingIgnores wait for the next directive of the section.
	pendingIgnores []IgnoreComment
}

// flush hands the buffered lines and servers to the current section.
func (b *builder) flush() {
	b.pendingIgnores = b.pendingIgnores[:0]
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

func newBuilder(files []string, opts ReadOptions) *builder {
	return &builder{
		rd:    newReading(opts, files),
		cfg:   &Config{Files: files, Global: newProxy(KindGlobal, "", Pos{}), Target: opts.Target},
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
	lr := &lastByteReader{r: r}
	sc := bufio.NewScanner(lr)
	sc.Buffer(make([]byte, 0, 64*1024), MaxLineBytes)
	n := 0
	// HAProxy starts every file outside any section and any .if.
	b.flush()
	b.cur = nil
	rd := b.rd
	rd.startFile(file)
	for sc.Scan() && !rd.aborted {
		n++
		text := sc.Text() // without its LF, nor the CR of a CRLF
		pos := Pos{File: file, Line: n}
		if k := strings.IndexByte(text, 0); k >= 0 {
			rd.refuse(pos, "Stray NUL character at position %d", k+1)
			break // haproxy stops reading the file there
		}
		rest := strings.TrimLeft(text, " \t\n\v\f\r")
		if rest != "" && rest[0] == '[' { // a scope line "[name]"
			continue
		}
		rd.line = n
		var lx lexed
		if rd.raw {
			if rest == "" {
				continue
			}
			lx.words, lx.comment = rawWords(text)
		} else {
			lx = rd.lex.split(text)
			if lx.err == nil {
				lx.err = rd.outgrow(&lx, len(text)-len(rest))
			}
			if rest == "" {
				continue
			}
			if lx.err != nil {
				rd.refuse(pos, "%s at position %d", lx.err.Msg, lx.err.Col)
				continue
			}
		}
		words := lx.words
		if !rd.raw && len(words) > 0 && words[0] != "" && words[0][0] == '.' && rd.directive(words, pos) {
			continue
		}
		if !rd.live() {
			b.cfg.Masked++
			continue
		}
		for _, v := range lx.unset {
			rd.note(Note{Pos: pos, Kind: NoteUnsetVar, Level: SevWarning, Var: v,
				Text: fmt.Sprintf("variable %s is not set and has no default", v)})
		}
		for _, v := range lx.literal {
			rd.note(Note{Pos: pos, Kind: NoteLiteralVar, Level: SevWarning, Var: v,
				Text: fmt.Sprintf("%s is outside double quotes", v)})
		}
		if len(words) == 0 || words[0] == "" { // haproxy skips a line whose first word is empty
			if b.cur != nil {
				b.tag(pos, lx.comment)
				b.ignore(pos, lx.comment, false)
			}
			continue
		}
		if sectionKeywords[words[0]] {
			b.section(words, lx.comment, pos)
			name := words[0]
			if len(words) > 1 && words[1] != "" {
				name = words[1]
			}
			rd.section = &name
			continue
		}
		if b.cur == nil {
			continue
		}
		if b.cur.Kind == KindGlobal {
			rd.globalKeyword(words)
		}
		d := Directive{Pos: pos, Words: words, Comment: lx.comment}
		b.dirBuf = append(b.dirBuf, d)
		b.tag(pos, lx.comment)
		b.ignoreLine(pos, lx.comment)
		b.directive(d)
	}
	b.flush()
	b.cfg.Lines += n
	if err := sc.Err(); err != nil {
		return err
	}
	if !rd.aborted && lr.n > 0 && lr.last != '\n' {
		rd.refuse(Pos{File: file, Line: n}, "Missing LF on last line, file might have been truncated")
	}
	rd.endFile(Pos{File: file, Line: n})
	return nil
}

// lastByteReader remembers the last byte read: haproxy refuses a file
// whose last line has no LF.
type lastByteReader struct {
	r    io.Reader
	n    int64
	last byte
}

func (l *lastByteReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if n > 0 {
		l.n += int64(n)
		l.last = p[n-1]
	}
	return n, err
}

// ignore records a `# haguard:ignore` comment on a header (header true)
// or on a comment line: it covers the section when no directive of the
// section came before it, else the next directive.
func (b *builder) ignore(pos Pos, comment string, header bool) {
	rules, reason, ok := parseIgnore(comment)
	if !ok || b.cur == nil {
		return
	}
	ic := IgnoreComment{Pos: pos, Rules: rules, Reason: reason}
	if header || len(b.dirBuf) == 0 {
		ic.Section = b.cur.Section()
		b.cfg.Ignores = append(b.cfg.Ignores, ic)
		return
	}
	b.pendingIgnores = append(b.pendingIgnores, ic)
}

// ignoreLine records the ignore comment of a directive line, and gives
// it the comments that were waiting for the next directive.
func (b *builder) ignoreLine(pos Pos, comment string) {
	for _, ic := range b.pendingIgnores {
		ic.Target = pos
		b.cfg.Ignores = append(b.cfg.Ignores, ic)
	}
	b.pendingIgnores = b.pendingIgnores[:0]
	if rules, reason, ok := parseIgnore(comment); ok {
		b.cfg.Ignores = append(b.cfg.Ignores, IgnoreComment{Pos: pos, Rules: rules, Reason: reason, Target: pos})
	}
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

// sectionHeader reads "KIND NAME [from DEFAULTS]" and, for defaults
// only, "defaults from DEFAULTS" (no name), as cfg_parse_listen() does.
func sectionHeader(kind Kind, words []string) (name, from string) {
	at := func(i int) string {
		if i < len(words) {
			return words[i]
		}
		return ""
	}
	name, arg := at(1), 2
	if kind == KindDefaults && at(1) == "from" && at(2) != "" && at(3) == "" {
		name, arg = "", 1
	}
	if at(arg) == "from" {
		from = at(arg + 1)
	}
	return name, from
}

func (b *builder) section(words []string, comment string, pos Pos) {
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
		b.ignore(pos, comment, true)
		return
	case KindDefaults, KindFrontend, KindBackend, KindListen:
	default:
		// program, http-errors, ring, peers, crt-store...: kept as lines
		// only (Config.Others), for the rules about what a config loads.
		b.cur = b.other(kind, words, pos)
		b.cfg.addSpan(pos, nil, strings.Join(words[:min(2, len(words))], " "))
		return
	}
	name, from := sectionHeader(kind, words)
	p := newProxy(kind, name, pos)
	p.From = from
	// The defaults a section inherits: the named one, else the last one
	// read so far, named or not (for a defaults section, only an explicit
	// "from": a defaults section without one starts from haproxy's
	// built-in values).
	if p.From != "" {
		p.Defaults = b.named[p.From]
		if p.Defaults == nil {
			b.rd.refuse(pos, "defaults section '%s' not found for %s '%s'", p.From, kind, name)
			b.rd.aborted = true
		}
	} else if kind != KindDefaults {
		p.Defaults = b.lastDefaults
	}
	b.cur = p
	b.cfg.addSpan(pos, p, "")
	b.tag(pos, comment)
	b.ignore(pos, comment, true)
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
	c.Notes = b.rd.notes
	c.byName = make(map[string]*Proxy, len(c.Backends)+len(c.Listens))
	for _, p := range append(append([]*Proxy(nil), c.Backends...), c.Listens...) {
		if _, dup := c.byName[p.Name]; !dup {
			c.byName[p.Name] = p
		}
	}
	return c, nil
}
