package reload

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/haguard/haguard/validate"
)

func up(be, srv string) ServerHealth {
	return ServerHealth{Backend: be, Server: srv, Status: "UP", Check: "L4OK"}
}

func down(be, srv string) ServerHealth {
	return ServerHealth{Backend: be, Server: srv, Status: "DOWN", Check: "L4CON"}
}

func TestBackendVerdict(t *testing.T) {
	cfg, err := validate.ParseReader("cand.cfg", strings.NewReader(`
backend db
    server a 127.0.0.1:1 check
    server b 127.0.0.1:2 check disabled
    server c 127.0.0.1:3 check
backend fresh
    server n 127.0.0.1:4 check
`))
	if err != nil {
		t.Fatal(err)
	}
	maint := ServerHealth{Backend: "db", Server: "b", Status: "MAINT"}
	starting := ServerHealth{Backend: "db", Server: "a", Status: "UP 1/3", Check: "L4OK"}
	http503 := ServerHealth{Backend: "db", Server: "c", Status: "DOWN", Check: "L7STS", Code: 503}
	for _, tc := range []struct {
		name          string
		policy        string
		before, after []ServerHealth
		cfg           *validate.Config
		want          []string // substrings, one per violation
	}{
		{"all still up", BackendsPreviouslyUp, []ServerHealth{up("db", "a")}, []ServerHealth{up("db", "a")}, cfg, nil},
		{"was up now down", BackendsPreviouslyUp, []ServerHealth{up("db", "a")}, []ServerHealth{down("db", "a")}, cfg,
			[]string{"db/a was UP before the reload, now DOWN L4CON"}},
		{"check code shown", BackendsPreviouslyUp, []ServerHealth{up("db", "c")}, []ServerHealth{http503}, cfg,
			[]string{"db/c was UP before the reload, now DOWN L7STS 503"}},
		{"was down stays down", BackendsPreviouslyUp, []ServerHealth{down("db", "a")}, []ServerHealth{down("db", "a")}, cfg, nil},
		{"disabled by the candidate", BackendsPreviouslyUp, []ServerHealth{{Backend: "db", Server: "b", Status: "UP"}}, []ServerHealth{maint}, cfg, nil},
		{"bottom of the UP range", BackendsPreviouslyUp, []ServerHealth{up("db", "a")}, []ServerHealth{starting}, cfg, nil},
		{"new backend none up", BackendsPreviouslyUp, []ServerHealth{up("db", "a")}, []ServerHealth{up("db", "a"), down("fresh", "n")}, cfg,
			[]string{"backend fresh has no server UP: n DOWN L4CON"}},
		{"new backend one up", BackendsPreviouslyUp, nil, []ServerHealth{up("fresh", "n")}, cfg, nil},
		{"any-up tolerates one down", BackendsAnyUp, []ServerHealth{up("db", "a"), up("db", "c")}, []ServerHealth{up("db", "a"), http503}, cfg, nil},
		{"any-up all down", BackendsAnyUp, []ServerHealth{up("db", "a")}, []ServerHealth{down("db", "a"), http503}, cfg,
			[]string{"backend db has no server UP"}},
		{"ignore", BackendsIgnore, []ServerHealth{up("db", "a")}, []ServerHealth{down("db", "a")}, cfg, nil},
		{"unknown candidate judges every server", BackendsPreviouslyUp, []ServerHealth{{Backend: "db", Server: "b", Status: "UP"}}, []ServerHealth{maint}, nil,
			[]string{"db/b was UP before the reload, now MAINT"}},
		{"health unreadable after", BackendsPreviouslyUp, []ServerHealth{up("db", "a")}, nil, cfg, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := backendVerdict(tc.policy, tc.before, tc.after, tc.cfg)
			if len(got) != len(tc.want) {
				t.Fatalf("got %q, want %d violations like %q", got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("violation %d: %q does not contain %q", i, got[i], w)
				}
			}
		})
	}
}

// A candidate that leaves a previously UP server DOWN is rolled back; the
// policy "ignore" commits it and only reports.
func TestServerDownRollsBack(t *testing.T) {
	f := newFixture(t)
	res, err := f.r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v2 downserver\n")})
	if !errors.Is(err, ErrRolledBack) || f.disk(t) != "good v1\n" {
		t.Fatalf("err %v disk %q, want a rollback to v1", err, f.disk(t))
	}
	if msg := stageError(res, StageProbe); !strings.Contains(msg, "be/s1 was UP before the reload, now DOWN L4CON") {
		t.Fatalf("probe stage error %q", msg)
	}

	f.s.Backends = BackendsIgnore
	r, err := New(f.s, f.w.deps())
	if err != nil {
		t.Fatal(err)
	}
	res, err = r.Run(context.Background(), Options{Candidate: f.candidate(t, "good v2 downserver\n")})
	if err != nil || !res.OK || f.disk(t) != "good v2 downserver\n" {
		t.Fatalf("ignore: err %v ok %v disk %q", err, res.OK, f.disk(t))
	}
	if len(res.Probes.Servers) != 1 || res.Probes.Servers[0].Status != "DOWN" {
		t.Fatalf("servers not reported: %+v", res.Probes.Servers)
	}
}

func TestBackendsPolicyValidated(t *testing.T) {
	f := newFixture(t)
	f.s.Backends = "most-up"
	if _, err := New(f.s, f.w.deps()); err == nil || !strings.Contains(err.Error(), "most-up") {
		t.Fatalf("err %v", err)
	}
}

func stageError(res Result, name string) string {
	for _, s := range res.Stages {
		if s.Name == name && !s.OK {
			return s.Error
		}
	}
	return ""
}
