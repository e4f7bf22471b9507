package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/spf13/cobra"

	"github.com/haguard/haguard/agent/clustercheck"
)

// clustercheckFlags are the flags of `haguard clustercheck`.
type clustercheckFlags struct {
	listen       string
	dsn          string
	defaultsFile string
	donor        bool
	cache        time.Duration
	timeout      time.Duration
}

func (a *app) clustercheckCmd() *cobra.Command {
	var f clustercheckFlags
	var cmd *cobra.Command
	cmd = &cobra.Command{
		Use:   "clustercheck",
		Short: "Serve a Galera node's health for haproxy's option httpchk",
		Long: `clustercheck serves HTTP for haproxy's 'option httpchk' with 'check port 9200':
200 "Galera node is synced." only when wsrep_local_state is 4 (Synced),
otherwise 503 with a one-line reason (the state, or why it could not be
read). --available-when-donor also answers 200 in state 2 (Donor/Desynced).

It logs in with --dsn (go-sql-driver/mysql syntax, e.g.
'clustercheck:secret@tcp(127.0.0.1:3306)/'; env HAGUARD_CLUSTERCHECK_DSN
keeps the password out of ps) or the [client] section of --defaults-file
(user, password, host, port, socket), else facts.db.defaults_file from
haguard.yaml. The user needs no privilege: SHOW GLOBAL STATUS is enough.
The state is cached for --cache; concurrent checks share one query.

It runs until stopped (SIGINT/SIGTERM), then shuts down gracefully.
Exit codes: 0 stopped cleanly; 2 usage error (bad flags, unreadable
defaults file, address in use); 3 the server failed while running.`,
		Args: cobra.NoArgs,
		RunE: a.exec(func(ctx context.Context) (int, error) { return a.runClustercheck(ctx, cmd, f) }),
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:9200", "address to serve HTTP on")
	fl.StringVar(&f.dsn, "dsn", envOr("HAGUARD_CLUSTERCHECK_DSN", ""), "go-sql-driver/mysql DSN of the node (env HAGUARD_CLUSTERCHECK_DSN)")
	fl.StringVar(&f.defaultsFile, "defaults-file", "", "my.cnf whose [client] section holds the login (default: facts.db.defaults_file)")
	fl.BoolVar(&f.donor, "available-when-donor", false, "also answer 200 in state 2 (Donor/Desynced)")
	fl.DurationVar(&f.cache, "cache", time.Second, "how long a read state is reused (0: read on every check)")
	fl.DurationVar(&f.timeout, "timeout", 2*time.Second, "deadline of one state query")
	return cmd
}

func (a *app) runClustercheck(ctx context.Context, cmd *cobra.Command, f clustercheckFlags) (int, error) {
	if f.cache < 0 || f.timeout <= 0 {
		return exitUsage, usagef(errors.New("--cache must be >= 0 and --timeout > 0"))
	}
	dbcfg, err := a.clustercheckLogin(cmd, f)
	if err != nil {
		return exitUsage, err
	}
	db, err := clustercheck.OpenDB(dbcfg)
	if err != nil {
		return exitUsage, usagef(err)
	}
	defer db.Close()

	log := a.logger().With("cmd", "clustercheck")
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", f.listen)
	if err != nil {
		return exitUsage, usagef(fmt.Errorf("--listen: %w", err))
	}
	checker := clustercheck.NewChecker(clustercheck.DBSource{DB: db}, clustercheck.Options{
		AvailableWhenDonor: f.donor,
		CacheTTL:           f.cache,
		QueryTimeout:       f.timeout,
		Logger:             log,
	})
	log.Info("clustercheck listening", "addr", ln.Addr().String(), "db", dbcfg.Net+":"+dbcfg.Addr,
		"user", dbcfg.User, "available_when_donor", f.donor, "cache", f.cache)
	if err := clustercheck.Serve(ctx, ln, checker); err != nil {
		return exitBroken, err
	}
	log.Info("clustercheck stopped")
	return exitOK, nil
}

// clustercheckLogin picks the database login: --dsn, --defaults-file, or
// facts.db.defaults_file from haguard.yaml (read only when needed).
func (a *app) clustercheckLogin(cmd *cobra.Command, f clustercheckFlags) (*mysql.Config, error) {
	fallback := ""
	if f.dsn == "" && f.defaultsFile == "" {
		cfg, err := a.loadConfig(cmd)
		if err != nil {
			return nil, err
		}
		fallback = cfg.Facts.DB.DefaultsFile
	}
	login, err := clustercheck.Login(f.dsn, f.defaultsFile, fallback)
	if err != nil {
		return nil, usagef(err)
	}
	return login, nil
}
