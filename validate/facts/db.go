package facts

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"golang.org/x/sync/errgroup"

	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/validate"
)

// Variables and status counters read from every server.
var (
	DBVariables = []string{"wait_timeout", "interactive_timeout", "net_read_timeout", "net_write_timeout",
		"max_execution_time", "max_statement_time", "wsrep_on"}
	DBStatus = []string{"wsrep_local_state", "wsrep_local_state_comment", "wsrep_cluster_size",
		"wsrep_ready", "wsrep_cluster_status"}
)

// mysqlPorts mark a backend as MySQL-like when nothing else does.
var mysqlPorts = map[string]bool{"3306": true, "3307": true, "4006": true}

// MySQLBackends are the backends HAProxy starts (not disabled) whose
// servers speak MySQL: option mysql-check, a "# haguard:db" or
// "# haguard:galera" tag, a declared facts.backends entry, or servers on a
// MySQL port.
func MySQLBackends(cfg *validate.Config, c config.Config) []*validate.Proxy {
	var out []*validate.Proxy
	for _, p := range cfg.LiveBackends() {
		if len(p.Servers) == 0 {
			continue
		}
		_, declared := c.Facts.Backends[p.Name]
		chk := p.EffCheck()
		is := declared || p.Tagged("db") || p.Tagged("galera") || (chk != nil && chk.Name == "mysql-check")
		for _, s := range p.Servers {
			if mysqlPorts[s.Port()] {
				is = true
			}
		}
		if is {
			out = append(out, p)
		}
	}
	return out
}

// DB connects to every server of every MySQL-like backend (at most
// dbConcurrency at a time, each bounded by timeout) and reads DBVariables and DBStatus. A server
// that cannot be asked gets Err set; it never stops the others.
func DB(ctx context.Context, cfg *validate.Config, c config.Config, timeout time.Duration, log *slog.Logger) map[string]map[string]validate.DBServerFacts {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	out := map[string]map[string]validate.DBServerFacts{}
	user, pass, credErr := credentials(c.Facts.DB)
	var mu sync.Mutex
	var g errgroup.Group
	g.SetLimit(dbConcurrency)
	for _, p := range MySQLBackends(cfg, c) {
		out[p.Name] = map[string]validate.DBServerFacts{}
		for _, s := range p.Servers {
			g.Go(func() error {
				var f validate.DBServerFacts
				if credErr != nil {
					f.Err = credErr
				} else {
					f = readServer(ctx, s.Address, user, pass, timeout)
				}
				if f.Err != nil {
					log.Warn("live DB facts", "backend", p.Name, "server", s.Name, "err", f.Err)
				}
				mu.Lock()
				out[p.Name][s.Name] = f
				mu.Unlock()
				return nil
			})
		}
	}
	_ = g.Wait() // every read records its own error in f.Err
	return out
}

// dbConcurrency bounds the live-facts connections in flight, so a config
// with thousands of servers does not open thousands of connections at once.
const dbConcurrency = 16

func readServer(ctx context.Context, addr, user, pass string, timeout time.Duration) validate.DBServerFacts {
	f := validate.DBServerFacts{Variables: map[string]string{}, Status: map[string]string{}}
	mc := mysql.NewConfig()
	mc.User, mc.Passwd, mc.Net, mc.Addr = user, pass, "tcp", validate.DialAddress(addr)
	mc.Timeout, mc.ReadTimeout, mc.WriteTimeout = timeout, timeout, timeout
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		f.Err = fmt.Errorf("connect %s: %w", addr, err)
		return f
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := readPairs(qctx, db, "SHOW GLOBAL VARIABLES WHERE Variable_name IN "+inList(DBVariables), f.Variables); err != nil {
		f.Err = fmt.Errorf("%s: %w", addr, err)
		return f
	}
	if err := readPairs(qctx, db, "SHOW GLOBAL STATUS WHERE Variable_name IN "+inList(DBStatus), f.Status); err != nil {
		f.Err = fmt.Errorf("%s: %w", addr, err)
	}
	return f
}

func inList(names []string) string {
	return "('" + strings.Join(names, "','") + "')"
}

func readPairs(ctx context.Context, db *sql.DB, q string, into map[string]string) error {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return err
		}
		into[strings.ToLower(k)] = v
	}
	return rows.Err()
}

// credentials resolves facts.db: user and password, password_file, or a
// my.cnf-style defaults_file ([client] user=, password=).
func credentials(a config.DBAuth) (user, pass string, err error) {
	user, pass = a.User, a.Password
	if a.DefaultsFile != "" {
		u, p, err := readDefaultsFile(a.DefaultsFile)
		if err != nil {
			return "", "", fmt.Errorf("facts.db.defaults_file: %w", err)
		}
		if user == "" {
			user = u
		}
		if pass == "" {
			pass = p
		}
	}
	if a.PasswordFile != "" {
		b, err := os.ReadFile(a.PasswordFile)
		if err != nil {
			return "", "", fmt.Errorf("facts.db.password_file: %w", err)
		}
		pass = strings.TrimSpace(string(b))
	}
	if user == "" {
		return "", "", fmt.Errorf("facts.db: no user configured (haguard.yaml facts.db.user or defaults_file)")
	}
	return user, pass, nil
}

func readDefaultsFile(path string) (user, pass string, err error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", "", err
	}
	defer fh.Close()
	section := ""
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]") {
			section = strings.Trim(l, "[]")
			continue
		}
		if section != "client" && section != "mysql" && section != "clustercheck" {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		v = strings.Trim(strings.TrimSpace(v), `"'`)
		switch strings.TrimSpace(k) {
		case "user":
			user = v
		case "password":
			pass = v
		}
	}
	return user, pass, sc.Err()
}
