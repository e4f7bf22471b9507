// Package gen writes large, valid HAProxy configurations for benchmarks:
// N frontend/backend pairs of mode tcp, each backend with M servers on
// loopback. 5,000 pairs × 10 servers is about 85k lines.
package gen

import (
	"bufio"
	"fmt"
	"io"
)

// Spec sizes the generated config.
type Spec struct {
	Pairs   int // frontend/backend pairs
	Servers int // servers per backend
}

// Benchmark is the size docs/benchmarks.md measures.
var Benchmark = Spec{Pairs: 5000, Servers: 10}

// Write writes the config to w and returns the number of lines written.
func Write(w io.Writer, s Spec) (int, error) {
	bw := bufio.NewWriterSize(w, 1<<16)
	lines := 0
	p := func(format string, args ...any) {
		fmt.Fprintf(bw, format+"\n", args...)
		lines++
	}
	p("global")
	p("    maxconn 200000")
	p("    hard-stop-after 30m")
	p("")
	p("defaults")
	p("    mode tcp")
	p("    timeout connect 5s")
	p("    timeout client  8h")
	p("    timeout server  8h")
	p("    timeout client-fin 30s")
	p("    timeout check   5s")
	p("    option tcpka")
	p("    clitcpka-idle 240s")
	p("    srvtcpka-idle 240s")
	p("    default-server inter 2s fall 3 rise 2 tcp-ut 30s")
	p("")
	for i := 0; i < s.Pairs; i++ {
		// Listen ports 10000..(10000+Pairs) on 127.0.0.1; haproxy -c never binds.
		p("frontend fe_%d", i)
		p("    bind 127.0.0.1:%d", 10000+i)
		p("    default_backend be_%d", i)
		p("backend be_%d", i)
		p("    balance leastconn")
		p("    option httpchk GET /")
		for j := 0; j < s.Servers; j++ {
			p("    server s%d 127.%d.%d.%d:3306 check port 9200 weight 1", j, 1+i/250%250, i%250+1, j+1)
		}
		p("")
	}
	return lines, bw.Flush()
}
