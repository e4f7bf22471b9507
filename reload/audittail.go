package reload

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// AuditTail reads the transactions appended to <state>/audit.log since it
// was made: `haguard serve` counts in its metrics the reloads run on the
// command line as well as its own. It reads whole lines only (a line being
// written is left for the next Read), starts over at the top of a file
// that was replaced or truncated (log rotation: a new inode, a smaller
// size, or other first bytes than those already read), and is safe for
// concurrent use.
type AuditTail struct {
	mu       sync.Mutex
	path     string
	off      int64
	dev, ino uint64
	head     []byte // the file's first bytes, up to headLen, among those read
}

const headLen = 128

// maxAuditRead bounds one Read; what is left is read by the next one.
const maxAuditRead = 8 << 20

// NewAuditTail starts at the current end of stateDir's audit log: what it
// already holds is not read.
func NewAuditTail(stateDir string) *AuditTail {
	a := &AuditTail{path: filepath.Join(stateDir, auditFile)}
	if f, err := os.Open(a.path); err == nil {
		defer f.Close()
		if st, err := f.Stat(); err == nil {
			a.off = st.Size()
			a.dev, a.ino = fileID(st)
			a.head = readHead(f, a.off)
		}
	}
	return a
}

// readHead returns the first bytes of f, at most headLen and at most n.
func readHead(f *os.File, n int64) []byte {
	b := make([]byte, min(n, headLen))
	k, _ := f.ReadAt(b, 0)
	return b[:k]
}

// Dir is the state dir the tail reads.
func (a *AuditTail) Dir() string { return filepath.Dir(a.path) }

// Read returns the records appended since the last Read. Lines that do not
// parse are skipped, and counted in the error that comes with the records.
func (a *AuditTail) Read() ([]AuditRecord, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f, err := os.Open(a.path)
	if errors.Is(err, fs.ErrNotExist) {
		a.off, a.dev, a.ino, a.head = 0, 0, 0, nil // a new file is read from its start
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	if dev, ino := fileID(st); dev != a.dev || ino != a.ino || st.Size() < a.off || !bytes.Equal(readHead(f, int64(len(a.head))), a.head) {
		a.off, a.dev, a.ino, a.head = 0, dev, ino, nil
	}
	n := min(st.Size()-a.off, maxAuditRead)
	if n <= 0 {
		return nil, nil
	}
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, a.off); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	end := bytes.LastIndexByte(buf, '\n')
	if end < 0 {
		if n < maxAuditRead {
			return nil, nil // a line still being written
		}
		a.off += n
		return nil, fmt.Errorf("audit log: skipped a line longer than %d bytes", maxAuditRead)
	}
	a.off += int64(end) + 1
	if len(a.head) < headLen {
		a.head = readHead(f, a.off)
	}
	var out []AuditRecord
	bad := 0
	for line := range bytes.SplitSeq(buf[:end], []byte("\n")) {
		if line = bytes.TrimSpace(line); len(line) == 0 {
			continue
		}
		var r AuditRecord
		if json.Unmarshal(line, &r) != nil || r.Result.ID == "" {
			bad++
			continue
		}
		out = append(out, r)
	}
	if bad > 0 {
		return out, fmt.Errorf("audit log: skipped %d lines that are not transaction records", bad)
	}
	return out, nil
}

func fileID(st fs.FileInfo) (dev, ino uint64) {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return uint64(s.Dev), s.Ino
	}
	return 0, 0
}
