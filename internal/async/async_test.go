package async

import (
	"errors"
	"strings"
	"testing"
)

func TestValue(t *testing.T) {
	task := Go(func() int { return 42 })
	if a, b := task.Wait(), task.Wait(); a != 42 || b != 42 {
		t.Fatalf("Wait: %d, %d", a, b)
	}
}

// TestPanicCarried: the panic surfaces in the waiting goroutine, where a
// recover (the daemon's) sees it with the stack of where it happened.
func TestPanicCarried(t *testing.T) {
	task := Go(func() int { panic("probe exploded") })
	got := func() (p any) {
		defer func() { p = recover() }()
		task.Wait()
		return nil
	}()
	var pe *PanicError
	if err, ok := got.(error); !ok || !errors.As(err, &pe) || pe.Recovered != "probe exploded" ||
		!strings.Contains(string(pe.Stack), "TestPanicCarried") {
		t.Fatalf("recovered %#v", got)
	}
}
