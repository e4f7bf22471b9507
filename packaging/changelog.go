package packaging

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// changelogEntries is how many first-parent commits the changelog lists.
const changelogEntries = 30

// Changelog is the Debian changelog of a native package
// (/usr/share/doc/haguard/changelog.gz, which Debian policy 12.7 asks
// for): one entry for this version, listing the newest first-parent
// commits of root (the merges name the issues they close), signed by
// maintainer at the build date.
func Changelog(ctx context.Context, root, debVersion, describe, maintainer string, date time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "haguard (%s) unstable; urgency=medium\n\n", debVersion)
	fmt.Fprintf(&b, "  * Built from git %s.\n", describe)
	out, err := exec.CommandContext(ctx, "git", "-C", root, "log", "--first-parent", "-n", strconv.Itoa(changelogEntries), "--format=%s").Output()
	if err == nil {
		for _, s := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if s = strings.TrimSpace(s); s != "" {
				b.WriteString(wrapItem(s, 80))
			}
		}
	}
	fmt.Fprintf(&b, "\n -- %s  %s\n", maintainer, date.UTC().Format(time.RFC1123Z))
	return b.String()
}

// wrapItem renders one "  * text" item, continuation lines indented by 4,
// no line longer than width where the words allow it.
func wrapItem(text string, width int) string {
	var b strings.Builder
	line := "  *"
	for _, w := range strings.Fields(text) {
		if len(line)+1+len(w) > width && len(strings.TrimSpace(line)) > 1 {
			b.WriteString(line + "\n")
			line = "   "
		}
		line += " " + w
	}
	b.WriteString(line + "\n")
	return b.String()
}

// buildDate is SOURCE_DATE_EPOCH when set (reproducible builds), else the
// date of root's HEAD commit, else now.
func buildDate(ctx context.Context, root string) time.Time {
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		if sec, err := strconv.ParseInt(v, 10, 64); err == nil {
			return time.Unix(sec, 0).UTC()
		}
	}
	out, err := exec.CommandContext(ctx, "git", "-C", root, "log", "-1", "--format=%ct").Output()
	if err == nil {
		if sec, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil {
			return time.Unix(sec, 0).UTC()
		}
	}
	return time.Now().UTC()
}
