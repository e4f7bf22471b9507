package probe

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
)

// maxStats bounds what ReadStats reads from the socket.
const maxStats = 64 << 20

// ServerStatus is one server line of `show stat`.
type ServerStatus struct {
	Backend string `json:"backend"`
	Server  string `json:"server"`
	// Status is haproxy's: UP, DOWN, NOLB, MAINT, DRAIN, "UP 1/3" (going
	// down), "DOWN 1/2" (going up), "no check".
	Status string `json:"status"`
	// CheckStatus is the last health check's result: L4OK, L4CON, L4TOUT,
	// L6OK, L7OK, L7STS, L7RSP, L7TOUT, SOCKERR, INI, ... (empty when the
	// server has no check).
	CheckStatus string `json:"check_status"`
	// CheckCode is the layer-5/7 code of the last check (HTTP status or
	// MySQL error), 0 when there is none.
	CheckCode int `json:"check_code,omitempty"`
	// CheckDesc is haproxy's text about the last check.
	CheckDesc string `json:"check_desc,omitempty"`
	// Address is the server's address when haproxy reports it.
	Address string `json:"address,omitempty"`
}

// Down reports whether the server takes no traffic because of its state.
func (s ServerStatus) Down() bool {
	return strings.HasPrefix(s.Status, "DOWN") || strings.HasPrefix(s.Status, "MAINT")
}

// BackendDown is a backend with at least one server down.
type BackendDown struct {
	Backend string `json:"backend"`
	// Status is the backend's own line: DOWN when no server is usable.
	Status      string   `json:"status"`
	ServersDown []string `json:"servers_down"`
	ServersUp   int      `json:"servers_up"`
}

// Health is the runtime state of haproxy's servers from `show stat`.
type Health struct {
	Servers      []ServerStatus `json:"servers"`
	BackendsDown []BackendDown  `json:"backends_down"`
}

// ReadStats runs `show stat` on haproxy's stats/admin socket (a unix
// socket path, or host:port for a TCP stats socket) and parses it.
func ReadStats(ctx context.Context, socket string) (Health, error) {
	network := "unix"
	if !strings.HasPrefix(socket, "/") && !strings.HasPrefix(socket, ".") && strings.Contains(socket, ":") {
		network = "tcp"
	}
	socket = strings.TrimPrefix(socket, "unix@")
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, socket)
	if err != nil {
		return Health{}, fmt.Errorf("stats socket %s: %w", socket, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return Health{}, err
		}
	}
	if _, err := io.WriteString(conn, "show stat\n"); err != nil {
		return Health{}, fmt.Errorf("stats socket %s: %w", socket, err)
	}
	h, err := ParseStats(io.LimitReader(conn, maxStats))
	if err != nil {
		return Health{}, fmt.Errorf("stats socket %s: %w", socket, err)
	}
	return h, nil
}

// ParseStats parses `show stat` CSV output (the header line starts with
// "# "). Columns are found by name, so older and newer haproxy versions
// with more or fewer columns parse alike.
func ParseStats(r io.Reader) (Health, error) {
	br := bufio.NewReader(r)
	header, err := br.ReadString('\n')
	if err != nil && header == "" {
		return Health{}, errors.New("show stat: empty answer")
	}
	if !strings.HasPrefix(header, "# ") {
		return Health{}, fmt.Errorf("show stat: unexpected answer %q", strings.TrimSpace(header))
	}
	cols := strings.Split(strings.TrimRight(strings.TrimPrefix(header, "# "), ",\r\n"), ",")
	idx := map[string]int{}
	for i, c := range cols {
		idx[c] = i
	}
	for _, need := range []string{"pxname", "svname", "status"} {
		if _, ok := idx[need]; !ok {
			return Health{}, fmt.Errorf("show stat: no %q column", need)
		}
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	get := func(rec []string, name string) string {
		if i, ok := idx[name]; ok && i < len(rec) {
			return rec[i]
		}
		return ""
	}
	h := Health{Servers: []ServerStatus{}, BackendsDown: []BackendDown{}}
	backendStatus := map[string]string{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Health{}, fmt.Errorf("show stat: %w", err)
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		px, sv := get(rec, "pxname"), get(rec, "svname")
		switch sv {
		case "FRONTEND":
			continue
		case "BACKEND":
			backendStatus[px] = get(rec, "status")
			continue
		}
		if t := get(rec, "type"); t != "" && t != "2" {
			continue // a listener line (type 3) when stats are per listener
		}
		s := ServerStatus{
			Backend:     px,
			Server:      sv,
			Status:      get(rec, "status"),
			CheckStatus: strings.TrimPrefix(get(rec, "check_status"), "* "),
			CheckDesc:   get(rec, "last_chk"),
			Address:     get(rec, "addr"),
		}
		if code, err := strconv.Atoi(get(rec, "check_code")); err == nil {
			s.CheckCode = code
		}
		h.Servers = append(h.Servers, s)
	}
	h.BackendsDown = backendsDown(h.Servers, backendStatus)
	return h, nil
}

func backendsDown(servers []ServerStatus, backendStatus map[string]string) []BackendDown {
	byName := map[string]*BackendDown{}
	var order []string
	for _, s := range servers {
		b, ok := byName[s.Backend]
		if !ok {
			b = &BackendDown{Backend: s.Backend, Status: backendStatus[s.Backend], ServersDown: []string{}}
			byName[s.Backend] = b
			order = append(order, s.Backend)
		}
		if s.Down() {
			b.ServersDown = append(b.ServersDown, s.Server)
		} else {
			b.ServersUp++
		}
	}
	out := []BackendDown{}
	for _, name := range order {
		if b := byName[name]; len(b.ServersDown) > 0 || strings.HasPrefix(b.Status, "DOWN") {
			out = append(out, *b)
		}
	}
	slices.SortStableFunc(out, func(a, b BackendDown) int { return strings.Compare(a.Backend, b.Backend) })
	return out
}
