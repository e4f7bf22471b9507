package clustercheck

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadDefaultsFile(t *testing.T) {
	for _, tc := range []struct {
		name, cnf                   string
		user, pass, net, addr, errs string
	}{
		{name: "socket", cnf: "[client]\nuser=check\npassword=s3cret\nsocket=/run/x.sock\n",
			user: "check", pass: "s3cret", net: "unix", addr: "/run/x.sock"},
		{name: "default socket", cnf: "[client]\nuser = root\n",
			user: "root", net: "unix", addr: DefaultSocket},
		{name: "localhost means socket", cnf: "[client]\nhost=localhost\nport=3307\nsocket=/s\n",
			net: "unix", addr: "/s"},
		{name: "tcp", cnf: "[client]\nhost=127.0.0.1\nport=3307\nuser=u\npassword=\"p w#x\"\n",
			user: "u", pass: "p w#x", net: "tcp", addr: "127.0.0.1:3307"},
		{name: "tcp default port", cnf: "[client]\nhost=db1\n", net: "tcp", addr: "db1:3306"},
		{name: "ipv6", cnf: "[client]\nhost=::1\nport=3306\n", net: "tcp", addr: "[::1]:3306"},
		{name: "other sections and comments ignored",
			cnf:  "# c\n[mysqld]\nuser=mysql\nport=1\n[client]\n; c\nuser=check # trailing\n!includedir /etc/mysql/conf.d/\n[mysqldump]\nuser=dump\n",
			user: "check", net: "unix", addr: DefaultSocket},
		{name: "later values win, any case", cnf: "[CLIENT]\nUSER=a\n[client]\nuser=b\n",
			user: "b", net: "unix", addr: DefaultSocket},
		{name: "bad port", cnf: "[client]\nhost=h\nport=x\n", errs: `port "x"`},
		{name: "bad header", cnf: "[client\nuser=a\n", errs: "unterminated section"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "my.cnf")
			if err := os.WriteFile(path, []byte(tc.cnf), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := ReadDefaultsFile(path)
			if tc.errs != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errs) {
					t.Fatalf("err = %v, want one containing %q", err, tc.errs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.User != tc.user || cfg.Passwd != tc.pass || cfg.Net != tc.net || cfg.Addr != tc.addr {
				t.Errorf("got user=%q pass=%q net=%q addr=%q; want %q %q %q %q",
					cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, tc.user, tc.pass, tc.net, tc.addr)
			}
		})
	}
}

func TestReadDefaultsFileMissing(t *testing.T) {
	if _, err := ReadDefaultsFile(filepath.Join(t.TempDir(), "nope.cnf")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v, want a not-exist error", err)
	}
}

func TestParseDSN(t *testing.T) {
	if _, err := ParseDSN("probe:pw@tcp(127.0.0.1:3306)/"); err != nil {
		t.Errorf("valid DSN: %v", err)
	}
	if _, err := ParseDSN("probe:pw@tcp(127.0.0.1:3306"); err == nil {
		t.Error("malformed DSN accepted")
	}
}
