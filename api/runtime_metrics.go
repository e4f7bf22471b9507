package api

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// userHZ is the kernel's USER_HZ, the unit of /proc/self/stat's times:
// 100 on every Linux architecture Debian builds for (procfs assumes it
// too).
const userHZ = 100

// runtimeFamilies are the usual go_* and process_* series, under the
// names client_golang's collectors give them, read at scrape time.
func runtimeFamilies() []family {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fams := []family{
		single("go_goroutines", "gauge", "Number of goroutines that currently exist.", float64(runtime.NumGoroutine())),
		{name: "go_info", typ: "gauge", help: "Information about the Go environment.",
			samples: []sample{{labels: []label{{"version", runtime.Version()}}, value: 1}}},
		single("go_memstats_alloc_bytes", "gauge", "Number of bytes allocated in heap and currently in use.", float64(ms.HeapAlloc)),
		single("go_memstats_heap_inuse_bytes", "gauge", "Number of heap bytes that are in use.", float64(ms.HeapInuse)),
		single("go_memstats_sys_bytes", "gauge", "Number of bytes obtained from system.", float64(ms.Sys)),
		single("go_gc_cycles_total", "counter", "Number of completed GC cycles.", float64(ms.NumGC)),
	}
	if st, err := readSelfStat(); err == nil {
		fams = append(fams,
			single("go_threads", "gauge", "Number of OS threads created.", st.threads),
			single("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", st.cpuSeconds),
			single("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", st.rss),
			single("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", st.vsize),
		)
		if btime, err := bootTime(); err == nil {
			fams = append(fams, single("process_start_time_seconds", "gauge",
				"Start time of the process since unix epoch in seconds.", btime+st.startTicks/userHZ))
		}
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		fams = append(fams, single("process_open_fds", "gauge", "Number of open file descriptors.", float64(len(fds))))
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		fams = append(fams, single("process_max_fds", "gauge", "Maximum number of open file descriptors.", float64(lim.Cur)))
	}
	return fams
}

type selfStat struct {
	threads, cpuSeconds, rss, vsize, startTicks float64
}

// readSelfStat reads /proc/self/stat (proc(5)); fields are counted from
// 1, and the command name in parentheses may hold spaces.
func readSelfStat() (selfStat, error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return selfStat{}, err
	}
	return parseStat(b)
}

func parseStat(b []byte) (selfStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return selfStat{}, strconv.ErrSyntax
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state)
	field := func(n int) (float64, error) {
		if n-3 >= len(f) {
			return 0, strconv.ErrSyntax
		}
		return strconv.ParseFloat(f[n-3], 64)
	}
	var st selfStat
	var utime, stime, rssPages float64
	for _, x := range []struct {
		n   int
		dst *float64
	}{{14, &utime}, {15, &stime}, {20, &st.threads}, {22, &st.startTicks}, {23, &st.vsize}, {24, &rssPages}} {
		v, err := field(x.n)
		if err != nil {
			return selfStat{}, err
		}
		*x.dst = v
	}
	st.cpuSeconds = (utime + stime) / userHZ
	st.rss = rssPages * float64(os.Getpagesize())
	return st, nil
}

// bootTime is /proc/stat's btime, the boot time in Unix seconds.
func bootTime() (float64, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "btime "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, strconv.ErrSyntax
}
