package generations

import (
	"bufio"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// LogFile is the escalation's audit log in the state dir: one Step per
// line, appended by `haguard serve`.
const LogFile = "generations.log"

// AppendLog appends s to the log at path.
func AppendLog(path string, s Step) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ReadLog reads the steps at path (none when there is no log); lines
// that do not parse are skipped.
func ReadLog(path string) ([]Step, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Step
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var s Step
		if json.Unmarshal(sc.Bytes(), &s) == nil {
			out = append(out, s)
		}
	}
	return out, sc.Err()
}

// Annotate sets the Escalation of each draining generation of rep from
// the latest logged step on the same workers (what `haguard status`
// shows; the daemon holds the live state).
func Annotate(rep *Report, steps []Step) {
	for i := range rep.Generations {
		g := &rep.Generations[i]
		if g.State != Draining {
			continue
		}
		for j := len(steps) - 1; j >= 0; j-- {
			s := steps[j]
			if s.Generation == g.Generation && slices.Equal(s.PIDs, g.PIDs) {
				g.Escalation = &Escalation{Step: s.Step, At: s.Time, Holders: s.Holders, Closed: s.Closed}
				break
			}
		}
	}
}
