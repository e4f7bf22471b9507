package facts

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/haguard/haguard/agent/netns"
	"github.com/haguard/haguard/validate"
)

// Sysctls are the kernel facts the KN rules read, by dotted name. All of
// them are per network namespace (net.*): the value that matters is the
// one of haproxy's namespace.
var Sysctls = []string{
	"net.ipv4.tcp_keepalive_time",
	"net.ipv4.tcp_keepalive_intvl",
	"net.ipv4.tcp_keepalive_probes",
	"net.ipv4.tcp_retries2",
	"net.netfilter.nf_conntrack_tcp_timeout_established",
}

// Optional sysctls are absent on hosts without the module (conntrack).
var optional = map[string]bool{"net.netfilter.nf_conntrack_tcp_timeout_established": true}

// KernelErrKey holds, in KernelFacts.Sysctls, why a required sysctl could
// not be read ("name: error; ..."); the rules turn it into a finding.
const KernelErrKey = "haguard.error"

// Kernel reads the sysctls under procSys ("/proc/sys" when empty) in the
// network namespace of pid, haproxy's master (0: haguard's own).
//
// A net.* file under /proc/sys shows the namespace of the thread that
// opens it, whatever procfs it is opened through (/proc/PID/root/proc/sys
// included: measured, agent/netns's tests), so when pid is in another
// namespace the files are opened from a thread that enters it
// (netns.Do: CAP_SYS_ADMIN). If that is not permitted, nothing is read
// and the error is recorded: haguard's own values would be another
// host's, as haproxy sees it.
func Kernel(procSys string, pid int32) *validate.KernelFacts {
	if procSys == "" {
		procSys = "/proc/sys"
	}
	k := &validate.KernelFacts{Sysctls: map[string]string{}}
	var errs []string
	read := func() error {
		for _, name := range Sysctls {
			b, err := os.ReadFile(filepath.Join(procSys, strings.ReplaceAll(name, ".", "/")))
			if err != nil {
				if !optional[name] || !os.IsNotExist(err) {
					errs = append(errs, name+": "+err.Error())
				}
				continue
			}
			k.Sysctls[name] = strings.TrimSpace(string(b))
		}
		return nil
	}
	if pid == 0 {
		_ = read()
	} else if err := netns.Do(pid, read); err != nil {
		clear(k.Sysctls)
		errs = []string{fmt.Sprintf("read in the network namespace of haproxy's master (pid %d): %v; haguard's own namespace's values are not haproxy's, so none were used", pid, err)}
	}
	if len(errs) > 0 {
		k.Sysctls[KernelErrKey] = strings.Join(errs, "; ")
	}
	return k
}
