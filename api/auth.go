package api

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

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

// LoadToken reads the bearer token from path. It refuses a file that group
// or others can read or write (anyone who can read it can reload haproxy),
// a file owned by a user other than haguard's or root, a file that is not a
// regular file, and a token shorter than MinTokenLen. A symlink is judged
// by the file it points to.
// Surrounding whitespace (a trailing newline) is dropped.
func LoadToken(path string) ([]byte, error) {
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
	tok := bytes.TrimSpace(data)
	if len(tok) < MinTokenLen {
		return nil, &TokenFileError{Path: path, Reason: fmt.Sprintf("token is shorter than %d bytes", MinTokenLen)}
	}
	if bytes.ContainsAny(tok, " \t\r\n") {
		return nil, &TokenFileError{Path: path, Reason: "token contains whitespace"}
	}
	return tok, nil
}

// bearer checks "Authorization: Bearer <token>" in constant time. Both
// sides are hashed first so that the comparison does not leak the length.
// The token is read on each request so that SetToken can rotate it.
func (s *Server) bearer(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header.Get(echo.HeaderAuthorization)
		scheme, got, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return errUnauthorized
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		want := s.tokenSum.Load()
		if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			return errUnauthorized
		}
		return next(c)
	}
}

// SetToken replaces the bearer token (haguard serve re-reads the token
// file on SIGHUP). An empty token is refused.
func (s *Server) SetToken(token []byte) error {
	if len(token) == 0 {
		return errNoToken
	}
	sum := sha256.Sum256(token)
	s.tokenSum.Store(&sum)
	return nil
}

// errNoToken is returned by New without a token.
var errNoToken = errors.New("api: a bearer token is required")
