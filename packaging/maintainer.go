package packaging

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"os"
	"os/exec"
	"strings"
)

// ResolveMaintainer picks the package's Maintainer field: the one given
// (make deb MAINTAINER=...), else Debian's DEBFULLNAME and DEBEMAIL (as
// dch reads them), else git's user.name and user.email in root. It must
// be "Name <user@host.domain>": lintian calls a host without a dot
// (haguard@localhost) a bogus mail host, an error.
func ResolveMaintainer(ctx context.Context, given, root string) (string, error) {
	m := strings.TrimSpace(given)
	from := "MAINTAINER"
	if m == "" {
		if name, mail := os.Getenv("DEBFULLNAME"), os.Getenv("DEBEMAIL"); name != "" && mail != "" {
			m, from = name+" <"+mail+">", "DEBFULLNAME and DEBEMAIL"
		}
	}
	if m == "" {
		name, _ := gitConfig(ctx, root, "user.name")
		email, _ := gitConfig(ctx, root, "user.email")
		if name != "" && email != "" {
			m, from = name+" <"+email+">", "git config user.name and user.email"
		}
	}
	if m == "" {
		return "", errors.New("no maintainer: give MAINTAINER='Name <you@example.org>' (or set DEBFULLNAME and DEBEMAIL, or git's user.name and user.email)")
	}
	if err := checkMaintainer(m); err != nil {
		return "", fmt.Errorf("maintainer from %s: %w", from, err)
	}
	return m, nil
}

// checkMaintainer accepts "Name <user@host.domain>" only.
func checkMaintainer(m string) error {
	a, err := mail.ParseAddress(m)
	if err != nil {
		return fmt.Errorf("%q is not \"Name <user@host>\": %w", m, err)
	}
	if a.Name == "" {
		return fmt.Errorf("%q has no name before the address", m)
	}
	_, host, _ := strings.Cut(a.Address, "@")
	if !strings.Contains(host, ".") || strings.HasSuffix(host, ".") || strings.EqualFold(host, "localhost.localdomain") {
		return fmt.Errorf("%q: %q is not a mail domain (lintian: bogus-mail-host)", m, host)
	}
	return nil
}

func gitConfig(ctx context.Context, root, key string) (string, error) {
	out, err := exec.CommandContext(ctx, "git", "-C", root, "config", "--get", key).Output()
	return strings.TrimSpace(string(out)), err
}
