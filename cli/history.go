package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/haguard/haguard/config"
	"github.com/haguard/haguard/reload"
	"github.com/haguard/haguard/validate"
)

func (a *app) historyCmd() *cobra.Command {
	var limit int
	var verify bool
	cmd := &cobra.Command{
		Use:   "history [--limit N] [--verify]",
		Short: "List past reload transactions (newest last)",
		Long: `history lists the reload transactions of state_dir: when, who, why
(--reason), the config before and after (sha256), the outcome and, when a
stage failed, which one and why.

Outcomes: committed, refused (the check failed: nothing was installed, no
snapshot), rolled_back, broken, raced (the config changed on disk during
the run: not recorded as running, both versions kept), recovered (a run
that died, finished by the next one), running (in progress). Transactions that got past the
check are kept in state_dir/history (reload.history_keep of them); refused
ones come from state_dir/audit.log. Unchanged runs are in audit.log only.

'haguard rollback ID' returns to the config that ran before transaction
ID; a refused transaction installed nothing and is not a rollback target.

--verify reads every kept config (state_dir/history/blobs) and checks it
against its sha256, and that every config an entry or running.json names
is there. A corrupt one is rewritten by the next reload that holds the
same config; until then a rollback to it is refused before anything is
touched.

Exit codes:
  0  listed (also when the history is empty); --verify: every blob is sound
  1  --verify: a blob is corrupt or missing (each is named, with the
     entries that need it)
  2  usage error, unreadable haguard.yaml or state dir

Examples:
  haguard history --limit 10
  haguard history --verify
  haguard history --format json | jq '.[] | select(.outcome=="refused")'`,
		Args: cobra.NoArgs,
	}
	var uf unitFlags
	cmd.Flags().IntVar(&limit, "limit", 0, "show only the newest N (0 = all)")
	cmd.Flags().BoolVar(&verify, "verify", false, "check every kept config against its sha256 instead of listing")
	listVarP(cmd.Flags(), &uf.units, "unit", "", false, "the unit whose history to list (its own state dir); repeat it, or give a glob, for several (default: systemd.unit)")
	cmd.RunE = a.execConfig(func(ctx context.Context, cfg config.Config) (int, error) {
		if limit < 0 {
			return exitUsage, usagef(errors.New("--limit: must not be negative (0 = all)"))
		}
		return a.forUnits(ctx, cfg, uf, func(_ context.Context, cfg config.Config) unitResult {
			if verify {
				return verifyHistory(cfg.StateDir)
			}
			es, err := reload.ReadHistory(cfg.StateDir)
			if err != nil {
				return unitResult{code: exitUsage, err: err}
			}
			if limit > 0 && len(es) > limit {
				es = es[len(es)-limit:]
			}
			if es == nil {
				es = []reload.Entry{}
			}
			return unitResult{code: exitOK, doc: es, human: func(w io.Writer) {
				if len(es) == 0 {
					fmt.Fprintf(w, "no transaction in %s yet\n", filepath.Join(cfg.StateDir, "history"))
					return
				}
				writeHistoryHuman(w, es)
			}}
		})
	})
	return cmd
}

// verifyHistory is history --verify.
func verifyHistory(stateDir string) unitResult {
	rep, err := reload.VerifyHistory(stateDir)
	if err != nil {
		return unitResult{code: exitUsage, err: err}
	}
	code := exitOK
	if len(rep.Problems) > 0 {
		code = exitNegative
	}
	return unitResult{code: code, doc: rep, human: func(w io.Writer) {
		for _, p := range rep.Problems {
			needed := "no entry needs it"
			if len(p.Entries) > 0 {
				needed = "needed by " + strings.Join(p.Entries, ", ")
			}
			fmt.Fprintf(w, "%s: %s (%s)\n", strings.ToUpper(p.Problem), filepath.Join(stateDir, "history", "blobs", p.SHA256), needed)
		}
		if len(rep.Problems) == 0 {
			fmt.Fprintf(w, "history blobs: %d checked, all match their sha256\n", rep.Checked)
			return
		}
		fmt.Fprintf(w, "history blobs: %d checked, %d unusable; a reload that holds the same config rewrites a corrupt one\n", rep.Checked, len(rep.Problems))
	}}
}

// writeHistoryHuman prints one row per transaction; ERROR is the first
// failed stage on one line, shortened (the JSON has it whole).
func writeHistoryHuman(w io.Writer, es []reload.Entry) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tWHO\tOUTCOME\tBEFORE\tAFTER\tREASON\tERROR")
	for _, e := range es {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.Time.Format("2006-01-02 15:04:05Z"), dash(e.Who), e.Outcome,
			short12(e.BeforeSHA256), short12(e.AfterSHA256), dash(oneLine(e.Reason, 60)), dash(oneLine(firstAlert(e.Error), 160)))
	}
	tw.Flush()
}

// firstAlert shortens a refusal by haproxy -c to its first ALERT, as
// "file:line: error: message": runs of older haguard versions recorded
// haproxy's first output lines joined by "; ", NOTICE lines first.
func firstAlert(e string) string {
	i := strings.Index(e, "[NOTICE]")
	if j := strings.Index(e, "[ALERT]"); j >= 0 && (i < 0 || j < i) {
		i = j
	}
	if i < 0 {
		return e
	}
	ds := validate.ParseDiagnostics(strings.ReplaceAll(e[i:], "; [", "\n["))
	d, ok := validate.FirstError(ds)
	if !ok {
		return e
	}
	head := strings.TrimSuffix(strings.TrimSpace(e[:i]), ":")
	head = strings.TrimSuffix(head, " refused the config")
	return head + ": " + d.String()
}

// oneLine folds s onto one line (no tabs, which would break the table)
// and shortens it to n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
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
