package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/haguard/haguard/reload"
)

func (a *app) historyCmd() *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "history",
		Short: "List past reload transactions (newest last)",
		Long: `history lists the reload transactions kept in state_dir/history: when,
who, why, the config before and after (sha256), and the outcome
(committed, unchanged, refused, rolled_back, broken, recovered).
'haguard rollback ID' returns to the config that ran before one of them.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "show only the newest N (0 = all)")
	cmd.RunE = a.exec(func(ctx context.Context) (int, error) {
		cfg, err := a.loadConfig(cmd)
		if err != nil {
			return exitUsage, err
		}
		es, err := reload.ReadHistory(cfg.StateDir)
		if err != nil {
			return exitUsage, err
		}
		if limit > 0 && len(es) > limit {
			es = es[len(es)-limit:]
		}
		if a.jsonOutput() {
			if es == nil {
				es = []reload.Entry{}
			}
			return exitOK, a.writeJSON(es)
		}
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTIME\tWHO\tOUTCOME\tBEFORE\tAFTER\tREASON")
		for _, e := range es {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.Time.Format("2006-01-02 15:04:05Z"), e.Who, e.Outcome,
				short12(e.BeforeSHA256), short12(e.AfterSHA256), e.Reason)
		}
		return exitOK, tw.Flush()
	})
	return cmd
}

func short12(s string) string {
	if s == "" {
		return "-"
	}
	if len(s) > 12 {
		return s[:12]
	}
	return s
}
