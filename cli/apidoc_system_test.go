package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// apiExample is one JSON answer docs/api.md shows, with the section it
// is under.
type apiExample struct {
	section string
	doc     any
}

var (
	docHeading = regexp.MustCompile(`(?m)^#{2,3} (.+)$`)
	jsonFence  = regexp.MustCompile("(?s)```json\n(.*?)\n```")
)

// apiExamples reads docs/api.md's ```json blocks. An example elides with
// "…": `[…]` is any array, `{…}` any object, `, …` in an object "more
// keys", "…" any value. They become a sentinel the comparison knows.
func apiExamples(t *testing.T) map[string]apiExample {
	t.Helper()
	md, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(md)
	out := map[string]apiExample{}
	for _, m := range jsonFence.FindAllStringSubmatchIndex(text, -1) {
		section := ""
		for _, h := range docHeading.FindAllStringSubmatchIndex(text[:m[0]], -1) {
			section = text[h[2]:h[3]]
		}
		body := text[m[2]:m[3]]
		body = strings.NewReplacer("[…]", `["…"]`, "{…}", `{"…": "…"}`, ", …}", `, "…": "…"}`, ", …]", "]").Replace(body)
		var v any
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatalf("docs/api.md, %s: the example is not JSON once … is read: %v\n%s", section, err, body)
		}
		key := section
		for n := 2; out[key].doc != nil; n++ {
			key = fmt.Sprintf("%s #%d", section, n)
		}
		out[key] = apiExample{section: section, doc: v}
	}
	return out
}

// conforms lists where real differs from the documented shape: a key the
// example shows that the answer lacks, a value of another JSON type, and
// a key of the answer that an example without "…" does not show.
func conforms(doc, real any, path string) []string {
	if s, ok := doc.(string); ok && s == "…" {
		return nil
	}
	switch d := doc.(type) {
	case map[string]any:
		r, ok := real.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: documented as an object, is %s", path, jsonType(real))}
		}
		var diffs []string
		for k, dv := range d {
			if k == "…" {
				continue
			}
			rv, ok := r[k]
			if !ok {
				diffs = append(diffs, fmt.Sprintf("%s.%s: documented, not in the answer", path, k))
				continue
			}
			diffs = append(diffs, conforms(dv, rv, path+"."+k)...)
		}
		if _, open := d["…"]; !open {
			for k := range r {
				if _, ok := d[k]; !ok {
					diffs = append(diffs, fmt.Sprintf("%s.%s: in the answer, not in the example", path, k))
				}
			}
		}
		sort.Strings(diffs)
		return diffs
	case []any:
		r, ok := real.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s: documented as an array, is %s", path, jsonType(real))}
		}
		if len(d) == 0 || d[0] == "…" {
			return nil
		}
		var diffs []string
		for i, rv := range r {
			diffs = append(diffs, conforms(d[0], rv, fmt.Sprintf("%s[%d]", path, i))...)
		}
		return diffs
	case nil:
		return nil
	default:
		if jsonType(doc) != jsonType(real) {
			return []string{fmt.Sprintf("%s: documented as %s (%v), is %s (%v)", path, jsonType(doc), doc, jsonType(real), real)}
		}
		return nil
	}
}

func jsonType(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

func TestConformsReadsElisions(t *testing.T) {
	doc := map[string]any{"a": "…", "b": []any{"…"}, "c": map[string]any{"x": 1.0, "…": "…"}, "d": "9f2c…"}
	if d := conforms(doc, map[string]any{"a": 3.0, "b": []any{1.0}, "c": map[string]any{"x": 2.0, "y": true}, "d": "abc"}, ""); len(d) != 0 {
		t.Errorf("a conforming answer: %v", d)
	}
	d := conforms(doc, map[string]any{"a": 1.0, "b": "x", "c": map[string]any{}, "e": 1.0}, "")
	want := []string{".b: documented as an array, is a string", ".c.x: documented, not in the answer", ".d: documented, not in the answer", ".e: in the answer, not in the example"}
	if strings.Join(d, "|") != strings.Join(want, "|") {
		t.Errorf("got %q\nwant %q", d, want)
	}
}

// TestAPIDocExamplesAreReal sends docs/api.md's requests to haguard serve
// running as its unit in the box, and holds every JSON example of the
// page to the real answer's shape: the keys it shows exist, with the JSON
// types it shows, and an example that does not elide ("…") shows every
// key there is.
func TestAPIDocExamplesAreReal(t *testing.T) {
	ex := apiExamples(t)
	for _, want := range []string{"Errors", "GET /v1/status", "POST /v1/check", "POST /v1/reloads: the queue", "GET /v1/ghosts"} {
		if _, ok := ex[want]; !ok {
			t.Fatalf("docs/api.md has no JSON example under %q (found %v)", want, keys(ex))
		}
	}
	b := newServeBox(t, "")
	answer := func(method, path, body string, hdr map[string]string, wantCode int) any {
		t.Helper()
		var r *strings.Reader
		if body != "" {
			r = strings.NewReader(body)
		}
		var code int
		var data []byte
		if r != nil {
			code, _, data = b.do(t, method, path, r, hdr)
		} else {
			code, _, data = b.do(t, method, path, nil, hdr)
		}
		if code != wantCode {
			t.Fatalf("%s %s: %d, want %d: %s", method, path, code, wantCode, data)
		}
		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
		return v
	}
	check := func(section string, real any) {
		t.Helper()
		for _, d := range conforms(ex[section].doc, real, "") {
			t.Errorf("docs/api.md, %s: %s", section, d)
		}
	}

	// A reload first, so that the status has a last reload and the job
	// example a finished transaction.
	posted := answer("POST", "/v1/reloads", b.good+"\n# a new candidate\n", map[string]string{"Content-Type": "text/plain"}, 202)
	id, _ := posted.(map[string]any)["id"].(string)
	if j := b.waitJob(t, id); j.Result != "ok" {
		t.Fatalf("the reload behind the examples did not commit: %+v\n%s", j, b.journal(t))
	}
	check("POST /v1/reloads: the queue", answer("GET", "/v1/reloads/"+id, "", nil, 200))
	// The example is a healthy host's status: right after a reload the
	// master CLI may not answer yet (unit_error) or the sweep the reload
	// triggered may still run; ask until the answer settles.
	var statusDiffs []string
	for range 40 {
		if statusDiffs = conforms(ex["GET /v1/status"].doc, answer("GET", "/v1/status", "", nil, 200), ""); len(statusDiffs) == 0 {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, d := range statusDiffs {
		t.Errorf("docs/api.md, GET /v1/status: %s", d)
	}
	bad := strings.Replace(b.good, "timeout client 30s", "timeout client 30", 1) // HA001: 30 ms
	check("POST /v1/check", answer("POST", "/v1/check", bad, map[string]string{"Content-Type": "text/plain"}, 200))
	check("GET /v1/ghosts", answer("GET", "/v1/ghosts?fresh=1", "", nil, 200))
	check("Errors", answer("POST", "/v1/reloads", "", map[string]string{"If-Match": `"` + strings.Repeat("0", 64) + `"`}, 412))
}

func keys(m map[string]apiExample) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
