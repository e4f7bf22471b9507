package facts

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/haguard/haguard/validate"
)

// Sysctls are the kernel facts the KN rules read, by dotted name.
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

// Kernel reads the sysctls under procSys ("/proc/sys" when empty). These
// are the reader's network namespace: haguard runs in haproxy's.
func Kernel(procSys string) *validate.KernelFacts {
	if procSys == "" {
		procSys = "/proc/sys"
	}
	k := &validate.KernelFacts{Sysctls: map[string]string{}}
	var errs []string
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
	if len(errs) > 0 {
		k.Sysctls[KernelErrKey] = strings.Join(errs, "; ")
	}
	return k
}
