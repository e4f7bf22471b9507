package clustercheck

import (
	"bufio"
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// DBSource reads wsrep_local_state with SHOW GLOBAL STATUS, which needs no
// privilege beyond a login.
type DBSource struct {
	DB *sql.DB
}

// LocalState implements StateSource.
func (s DBSource) LocalState(ctx context.Context) (int, error) {
	var name, value string
	err := s.DB.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'wsrep_local_state'").Scan(&name, &value)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotGalera
	}
	if err != nil {
		return 0, fmt.Errorf("read wsrep_local_state: %w", err)
	}
	n, err := strconv.Atoi(value)
	if err != nil {
		return 0, fmt.Errorf("read wsrep_local_state: %q is not a number", value)
	}
	return n, nil
}

// OpenDB opens a small pool for cfg suited to health checks: short
// connect/read timeouts and few connections.
func OpenDB(cfg *mysql.Config) (*sql.DB, error) {
	cfg = cfg.Clone()
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = 2 * time.Second
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 2 * time.Second
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mysql config: %w", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(2)
	db.SetMaxIdleConns(1)
	// A node with a short wait_timeout closes idle connections; do not
	// keep them around long enough for that.
	db.SetConnMaxIdleTime(5 * time.Second)
	return db, nil
}

// ParseDSN parses a go-sql-driver/mysql DSN.
func ParseDSN(dsn string) (*mysql.Config, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("--dsn: %w", err)
	}
	return cfg, nil
}

// DefaultSocket is where the client looks when a defaults file names
// neither a host nor a socket (Debian's path).
const DefaultSocket = "/run/mysqld/mysqld.sock"

// ReadDefaultsFile builds a connection config from the [client] section of
// a my.cnf-style file: user, password, host, port and socket, as the mysql
// client reads them. host "localhost" (or none) means the unix socket.
// Includes (!include, !includedir) are not followed.
func ReadDefaultsFile(path string) (*mysql.Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("defaults file: %w", err)
	}
	defer f.Close()
	kv, err := parseClientSection(f)
	if err != nil {
		return nil, fmt.Errorf("defaults file %s: %w", path, err)
	}
	cfg := mysql.NewConfig()
	cfg.User = kv["user"]
	cfg.Passwd = kv["password"]
	host, port, socket := kv["host"], kv["port"], kv["socket"]
	if host == "" || host == "localhost" {
		cfg.Net, cfg.Addr = "unix", socket
		if socket == "" {
			cfg.Addr = DefaultSocket
		}
		return cfg, nil
	}
	if port == "" {
		port = "3306"
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return nil, fmt.Errorf("defaults file %s: port %q is not a port number", path, port)
	}
	cfg.Net, cfg.Addr = "tcp", host+":"+port
	if strings.Contains(host, ":") { // IPv6 literal
		cfg.Addr = "[" + host + "]:" + port
	}
	return cfg, nil
}

// parseClientSection returns the keys of every [client] section; later
// values win, option names treat '-' and '_' alike.
func parseClientSection(f *os.File) (map[string]string, error) {
	kv := map[string]string{}
	in := false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '!' {
			continue
		}
		if line[0] == '[' {
			end := strings.IndexByte(line, ']')
			if end < 0 {
				return nil, fmt.Errorf("line %d: unterminated section header", n)
			}
			in = strings.EqualFold(strings.TrimSpace(line[1:end]), "client")
			continue
		}
		if !in {
			continue
		}
		key, value, _ := strings.Cut(line, "=")
		key = strings.ReplaceAll(strings.ToLower(strings.TrimSpace(key)), "-", "_")
		kv[key] = unquote(strings.TrimSpace(value))
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return kv, nil
}

// unquote strips one pair of matching quotes; unquoted values lose a
// trailing " # comment".
func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	if i := strings.Index(v, " #"); i >= 0 {
		v = strings.TrimSpace(v[:i])
	}
	return v
}

// ErrNoLogin: Login was given no way to log in.
var ErrNoLogin = errors.New("no login: give --dsn, --defaults-file or facts.db.defaults_file in haguard.yaml")

// Login picks the database login of `haguard clustercheck`: a DSN, else a
// defaults file, else fallback (haguard.yaml's facts.db.defaults_file).
// Every error is the caller's input.
func Login(dsn, defaultsFile, fallback string) (*mysql.Config, error) {
	if dsn != "" && defaultsFile != "" {
		return nil, errors.New("--dsn and --defaults-file exclude each other")
	}
	if dsn != "" {
		return ParseDSN(dsn)
	}
	path := cmp.Or(defaultsFile, fallback)
	if path == "" {
		return nil, ErrNoLogin
	}
	return ReadDefaultsFile(path)
}
