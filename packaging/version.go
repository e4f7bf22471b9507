// Package packaging builds haguard's Debian package with nfpm used as a
// library: no dpkg-deb, fakeroot or debhelper on the build machine.
package packaging

import (
	"regexp"
	"strings"
)

var (
	// v1.2.3, v1.2.3-rc1, v1.2.3-4-gabc1234, each with an optional -dirty.
	describeTagged = regexp.MustCompile(`^v?(\d+(?:\.\d+)*)(?:-((?:alpha|beta|rc|pre)[.\w]*))?(?:-(\d+)-g([0-9a-f]+))?(-dirty)?$`)
	// abc1234 or abc1234-dirty: no tag yet.
	describeBare = regexp.MustCompile(`^([0-9a-f]{4,40})(-dirty)?$`)
	// What dpkg allows in an upstream version without a revision.
	debUnsafe = regexp.MustCompile(`[^0-9A-Za-z.+~]`)
)

// DebVersion turns `git describe --tags --always --dirty` into a Debian
// version that sorts the way the builds were made:
//
//	v1.2.3             -> 1.2.3
//	v1.2.3-rc1         -> 1.2.3~rc1            (before 1.2.3)
//	v1.2.3-4-gabc1234  -> 1.2.3+git4.abc1234   (after 1.2.3)
//	abc1234            -> 0.0.0~git.abc1234    (no tag: before any release)
//	...-dirty          -> ...+dirty
//
// Anything else is kept with unsafe characters replaced by dots, behind
// "0.0.0~", so that dpkg accepts it. The binary keeps the describe string
// itself (haguard version prints it).
func DebVersion(describe string) string {
	d := strings.TrimSpace(describe)
	if m := describeTagged.FindStringSubmatch(d); m != nil {
		v := m[1]
		if m[2] != "" {
			v += "~" + m[2]
		}
		if m[3] != "" {
			v += "+git" + m[3] + "." + m[4]
		}
		if m[5] != "" {
			v += "+dirty"
		}
		return v
	}
	if m := describeBare.FindStringSubmatch(d); m != nil {
		v := "0.0.0~git." + m[1]
		if m[2] != "" {
			v += "+dirty"
		}
		return v
	}
	s := strings.Trim(debUnsafe.ReplaceAllString(d, "."), ".")
	if s == "" {
		s = "unknown"
	}
	return "0.0.0~" + s
}
