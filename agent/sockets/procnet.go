package sockets

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// readProcNet reads the LISTEN rows of /proc/<pid>/net/tcp{,6} (pid may
// be "self"). A missing file is no sockets: tcp6 without IPv6, both when
// the process has exited.
func readProcNet(pid string) (Table, error) {
	tab := Table{}
	for _, f := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile("/proc/" + pid + "/net/" + f)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("read socket table: %w", err)
		}
		parseProcNet(b, tab)
	}
	return tab, nil
}

// parseProcNet adds the LISTEN rows (state 0A) of a /proc/net/tcp{,6}
// table to into.
func parseProcNet(b []byte, into Table) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	sc.Scan() // header
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[3] != "0A" {
			continue
		}
		ino, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil || ino == 0 {
			continue
		}
		if addr, ok := parseHexAddr(f[1]); ok {
			into[ino] = Listener{AddrPort: addr, Proto: TCP}
		}
	}
}

// parseHexAddr decodes "0100007F:0CEB" (or its 32-hex-digit IPv6 form)
// into 127.0.0.1:3307. The kernel prints each 32-bit word of the address
// (network byte order in memory) as a host-order number, the port as a
// plain number.
func parseHexAddr(s string) (netip.AddrPort, bool) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, false
	}
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, false
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	for w := 0; w < len(raw); w += 4 {
		binary.NativeEndian.PutUint32(raw[w:], binary.BigEndian.Uint32(raw[w:]))
	}
	ip, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(ip.Unmap(), uint16(port)), true
}
