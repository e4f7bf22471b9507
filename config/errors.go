package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// cleanYAMLError turns the YAML library's messages into haguard.yaml's
// words: "line N: unknown field "x" in reload (known: ...)" rather than a
// Go type name, "want a whole number" rather than "!!str into int".
func cleanYAMLError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, len(te.Errors))
		for i, m := range te.Errors {
			msgs[i] = yamlMessage(m)
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
}

// Compiled on first use: a package-level regexp is compiled at start-up
// by every command, even those that never read a bad haguard.yaml.
var (
	reUnknownField = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^(line \d+): field (\S+) not found in type config\.(\w+)$`)
	})
	reCannot = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^(line \d+): cannot unmarshal !!(\w+) (?:` + "`" + `(.*)` + "`" + ` )?into (\S+)$`)
	})
)

func yamlMessage(m string) string {
	if g := reUnknownField().FindStringSubmatch(m); g != nil {
		sec, known := sections()[g[3]], fieldsOf(g[3])
		where := "at the top level"
		if sec != "" {
			where = "in " + sec
		}
		if near := closest(g[2], known); near != "" {
			return fmt.Sprintf("%s: unknown field %q %s (did you mean %s?)", g[1], g[2], where, near)
		}
		return fmt.Sprintf("%s: unknown field %q %s (known: %s)", g[1], g[2], where, strings.Join(known, ", "))
	}
	if g := reCannot().FindStringSubmatch(m); g != nil {
		got := map[string]string{"seq": "a list", "map": "a mapping", "str": "a string", "int": "a number",
			"bool": "true or false", "float": "a number"}[g[2]]
		if got == "" {
			got = g[2]
		}
		if g[3] != "" {
			got += fmt.Sprintf(" (%s)", g[3])
		}
		return fmt.Sprintf("%s: want %s, got %s", g[1], wantOf(g[4]), got)
	}
	return m
}

// wantOf says in words what a Go type of this package wants.
func wantOf(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["):
		return "a mapping"
	case strings.HasPrefix(goType, "int") || strings.HasPrefix(goType, "uint"):
		return "a whole number"
	case goType == "bool":
		return "true or false"
	case goType == "string":
		return "a string"
	case goType == "config.Config":
		return "a mapping of settings at the top level"
	case strings.HasPrefix(goType, "config."):
		if sec := sections()[strings.TrimPrefix(goType, "config.")]; sec != "" {
			return "a mapping for " + sec
		}
		return "a mapping"
	}
	return goType
}

// sections maps this package's struct type names to the haguard.yaml key
// that holds them ("Reload" -> "reload", "ProbeTarget" -> "probe.targets[]").
func sections() map[string]string {
	out := map[string]string{}
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			if t.Kind() != reflect.Pointer {
				path += "[]"
			}
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t.PkgPath() != reflect.TypeFor[Config]().PkgPath() {
			return
		}
		if _, seen := out[t.Name()]; seen {
			return
		}
		out[t.Name()] = path
		for i := range t.NumField() {
			f := t.Field(i)
			key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if key == "" || key == "-" {
				continue
			}
			walk(f.Type, strings.TrimPrefix(path+"."+key, "."))
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return out
}

// fieldsOf lists the yaml keys of struct type name, sorted.
func fieldsOf(name string) []string {
	var t reflect.Type
	var find func(reflect.Type)
	find = func(c reflect.Type) {
		for c.Kind() == reflect.Pointer || c.Kind() == reflect.Slice || c.Kind() == reflect.Map {
			c = c.Elem()
		}
		if t != nil || c.Kind() != reflect.Struct || c.PkgPath() != reflect.TypeFor[Config]().PkgPath() {
			return
		}
		if c.Name() == name {
			t = c
			return
		}
		for i := range c.NumField() {
			find(c.Field(i).Type)
		}
	}
	find(reflect.TypeFor[Config]())
	if t == nil {
		return nil
	}
	var keys []string
	for i := range t.NumField() {
		if key, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); key != "" && key != "-" {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys)
	return keys
}

// closest is the key of known nearest to k (at most two edits away), ""
// when none is.
func closest(k string, known []string) string {
	best, bestD := "", 3
	for _, c := range known {
		if d := editDistance(k, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
