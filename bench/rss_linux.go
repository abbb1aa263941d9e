//go:build linux

package bench

import (
	"bytes"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// rusageMaxRSSMiB is a finished child's ru_maxrss in MiB (Linux reports
// KiB). It is only an upper bound of the child's own peak: Go starts
// children with clone(CLONE_VM|CLONE_VFORK), and at exec the kernel folds
// the high-water RSS of the mm it leaves — the parent's — into the child's
// maxrss. A child of a 300 MiB parent reports at least 300 MiB.
func rusageMaxRSSMiB(ps *os.ProcessState) float64 {
	if ps == nil {
		return 0
	}
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok || ru == nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024
}

// watchPeakRSS samples the high-water RSS of a running process (VmHWM of
// /proc/<pid>/status: its own address space since exec) every 10 ms; stop
// returns the last value read, in MiB. VmHWM only grows, so that misses
// only what the process grew in its last 10 ms.
func watchPeakRSS(pid int) (stop func() float64) {
	var (
		mu   sync.Mutex
		peak int64 // KiB
		done = make(chan struct{})
		fin  = make(chan struct{})
	)
	path := "/proc/" + strconv.Itoa(pid) + "/status"
	sample := func() {
		b, err := os.ReadFile(path)
		if err != nil {
			return
		}
		i := bytes.Index(b, []byte("VmHWM:"))
		if i < 0 {
			return // exited: its memory is gone
		}
		f := bytes.Fields(b[i+len("VmHWM:"):])
		if len(f) == 0 {
			return
		}
		if kib, err := strconv.ParseInt(string(f[0]), 10, 64); err == nil {
			mu.Lock()
			peak = max(peak, kib)
			mu.Unlock()
		}
	}
	go func() {
		defer close(fin)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			sample()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() float64 {
		close(done)
		<-fin
		mu.Lock()
		defer mu.Unlock()
		return float64(peak) / 1024
	}
}

// cpuSeconds is the CPU time (user and system) this process has used.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
