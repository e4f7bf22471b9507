package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"
)

// MinTokenLen is the shortest bearer token LoadToken accepts.
const MinTokenLen = 16

// maxTokenFile bounds what LoadToken reads.
const maxTokenFile = 4096

// TokenFileError is a token file haguard refuses to use.
type TokenFileError struct {
	Path   string
	Reason string
}

func (e *TokenFileError) Error() string {
	return fmt.Sprintf("token file %s: %s", e.Path, e.Reason)
}

// Scope is what a token may do.
type Scope string

// Scopes. A read token sees (status, ghosts, history, GET reloads,
// metrics); a write token does everything.
const (
	ScopeRead  Scope = "read"
	ScopeWrite Scope = "write"
)

// Token is one bearer token and its scope.
type Token struct {
	Scope  Scope
	Secret []byte
}

// LoadTokens reads the bearer tokens from path. It refuses a file that
// group or others can read or write (anyone who can read a write token can
// reload haproxy), a file owned by a user other than haguard's or root, a
// file that is not a regular file. A symlink is judged by the file it
// points to.
//
// Each line that is not empty or a # comment is a token, with its scope
// in front: "read TOKEN" or "write TOKEN". A line with the token alone is
// a write token (the format of earlier versions). A token shorter than
// MinTokenLen, a scope other than read and write, and a token given twice
// are refused; so is a file without a token.
func LoadTokens(path string) ([]Token, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, &TokenFileError{Path: path, Reason: "not a regular file"}
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, &TokenFileError{Path: path, Reason: fmt.Sprintf(
			"mode %#o lets group or others read or write it; run: chmod 0600 %s", perm, path)}
	}
	// Another user who owns the file can read it, and chmod it wider at
	// will: only our own user's and root's files are trusted.
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() && st.Uid != 0 {
		return nil, &TokenFileError{Path: path, Reason: fmt.Sprintf(
			"owned by uid %d, not by uid %d (haguard) or root, who alone may read it; run: chown %d %s", st.Uid, os.Geteuid(), os.Geteuid(), path)}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return nil, fmt.Errorf("token file %s: %w", path, err)
	}
	if len(data) > maxTokenFile {
		return nil, &TokenFileError{Path: path, Reason: fmt.Sprintf("larger than %d bytes", maxTokenFile)}
	}
	var toks []Token
	seen := map[string]bool{}
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		at := fmt.Sprintf("line %d: ", n+1)
		fields := strings.Fields(line)
		t := Token{Scope: ScopeWrite}
		switch len(fields) {
		case 1:
			t.Secret = []byte(fields[0])
		case 2:
			t.Scope, t.Secret = Scope(fields[0]), []byte(fields[1])
			if t.Scope != ScopeRead && t.Scope != ScopeWrite {
				return nil, &TokenFileError{Path: path, Reason: at + fmt.Sprintf("scope %q: want read or write, then the token", fields[0])}
			}
		default:
			return nil, &TokenFileError{Path: path, Reason: at + "want a scope (read or write) and a token without whitespace"}
		}
		if len(t.Secret) < MinTokenLen {
			return nil, &TokenFileError{Path: path, Reason: at + fmt.Sprintf("token is shorter than %d bytes", MinTokenLen)}
		}
		if seen[string(t.Secret)] {
			return nil, &TokenFileError{Path: path, Reason: at + "the same token is given twice"}
		}
		seen[string(t.Secret)] = true
		toks = append(toks, t)
	}
	if len(toks) == 0 {
		return nil, &TokenFileError{Path: path, Reason: fmt.Sprintf("holds no token (a token is at least %d bytes)", MinTokenLen)}
	}
	return toks, nil
}

// tokenSum is a token as the server keeps it: its sha256 and scope.
type tokenSum struct {
	sum   [sha256.Size]byte
	scope Scope
}

// authorize checks "Authorization: Bearer <token>" against every token in
// constant time (sha256 of both sides first, so that the comparison does
// not leak the length; every token is compared, so the time does not say
// which matched) and returns the token's scope. The tokens are read on
// each request so that SetTokens can rotate them.
func (s *Server) authorize(c echo.Context) (Scope, error) {
	h := c.Request().Header.Get(echo.HeaderAuthorization)
	scheme, got, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", errUnauthorized
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
	var scope Scope
	for _, t := range *s.tokens.Load() {
		if subtle.ConstantTimeCompare(sum[:], t.sum[:]) == 1 {
			scope = t.scope
		}
	}
	if scope == "" {
		return "", errUnauthorized
	}
	return scope, nil
}

// need is the auth middleware of a route: a token of scope want (a write
// token may do what a read token may). No token or a wrong one is 401
// (logged at warn, rate-limited); a read token on a write route is 403.
func (s *Server) need(want Scope) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			scope, err := s.authorize(c)
			if err != nil {
				s.denied.log(s.log, c, err)
				return err
			}
			if want == ScopeWrite && scope != ScopeWrite {
				s.denied.log(s.log, c, errForbidden)
				return errForbidden
			}
			return next(c)
		}
	}
}

// denials logs refused requests at warn, at most one line per
// denialLogEvery; the next line counts the ones it left out. A client
// that keeps guessing tokens must not flood the journal.
type denials struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

const denialLogEvery = 10 * time.Second

func (d *denials) log(log *slog.Logger, c echo.Context, err error) {
	d.logRequest(log, c.Request(), err)
}

func (d *denials) logRequest(log *slog.Logger, r *http.Request, err error) {
	d.mu.Lock()
	now := time.Now()
	if !d.last.IsZero() && now.Sub(d.last) < denialLogEvery {
		d.suppressed++
		d.mu.Unlock()
		return
	}
	n := d.suppressed
	d.last, d.suppressed = now, 0
	d.mu.Unlock()
	log.Warn("request refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr,
		"err", err, "refused_since_last_line", n)
}

// SetToken replaces the tokens with one write token.
func (s *Server) SetToken(token []byte) error {
	return s.SetTokens([]Token{{Scope: ScopeWrite, Secret: token}})
}

// SetTokens replaces the tokens (haguard serve re-reads the token file on
// SIGHUP). None, an empty one or an unknown scope is refused.
func (s *Server) SetTokens(toks []Token) error {
	if len(toks) == 0 {
		return errNoToken
	}
	sums := make([]tokenSum, 0, len(toks))
	for _, t := range toks {
		if len(t.Secret) == 0 {
			return errNoToken
		}
		if t.Scope != ScopeRead && t.Scope != ScopeWrite {
			return fmt.Errorf("api: token scope %q: want read or write", t.Scope)
		}
		sums = append(sums, tokenSum{sum: sha256.Sum256(t.Secret), scope: t.Scope})
	}
	s.tokens.Store(&sums)
	return nil
}

// errNoToken is returned by New without a token.
var errNoToken = errors.New("api: a bearer token is required")
