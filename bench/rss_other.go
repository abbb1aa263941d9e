//go:build !linux

package bench

import "os"

// Peak RSS is measured on Linux only (/proc and ru_maxrss in KiB).

func rusageMaxRSSMiB(*os.ProcessState) float64 { return 0 }

func watchPeakRSS(int) func() float64 { return func() float64 { return 0 } }

// cpuSeconds is not measured on this system.
func cpuSeconds() float64 { return 0 }
