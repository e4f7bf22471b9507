package config

import (
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the strict haguard.yaml loader: it
// must return a config or an error, never panic, and what it accepts must
// validate.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"",
		"haproxy:\n  configs: [/etc/haproxy/haproxy.cfg]\n",
		"haproxy:\n  configs: []\n",
		"reload:\n  settle_timeout: 15s\n  lock: fail\n",
		"reload:\n  settle_timeout: 15\n",
		"facts:\n  backends:\n    galera:\n      galera: true\n      wait_timeout: 8h\n",
		"path:\n  middleboxes:\n    - {name: f5, kind: f5-ltm, hop: client, idle_timeout: 300s}\n",
		"path:\n  clients:\n    - {kind: sqlalchemy, pool_recycle: unlimited}\n",
		"probe:\n  targets:\n    - {address: 127.0.0.1:3307, kind: mysql}\n",
		"unknown: 1\n",
		"haproxy:\n  check_timeout: 60s\n  check_memory_max: 1GiB\n  check_user: nobody\n",
		"policy:\n  cli: false\n  allowed_paths: [/etc/haproxy]\n  allow: [\"lua-load /x/*.lua\"]\n",
		"haproxy:\n  check_memory_max: 9999999999TiB\n",
		"a: &a [*a]\n",
		"---\n---\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that does not validate: %v", err)
		}
	})
}
