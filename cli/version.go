package cli

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

type versionInfo struct {
	Version   string `json:"version"`
	GoVersion string `json:"go_version"`
	Commit    string `json:"commit,omitempty"`
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print haguard's version",
		Args:  cobra.NoArgs,
		RunE: a.exec(func(context.Context) (int, error) {
			info := versionInfo{Version: a.version, GoVersion: runtime.Version()}
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						info.Commit = s.Value
					}
				}
			}
			if a.jsonOutput() {
				return exitOK, a.writeJSON(info)
			}
			fmt.Fprintln(a.stdout, versionLine(info.Version))
			return exitOK, nil
		}),
	}
}

// versionLine is what `haguard version` and `haguard --version` print.
func versionLine(version string) string {
	return fmt.Sprintf("haguard %s (%s)", version, runtime.Version())
}
