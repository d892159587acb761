//go:build unix

package loadtest

import (
	"runtime"
	"syscall"
	"time"
)

// cpuTime is this process's user and system CPU time so far (getrusage)
// and its peak resident set in KiB.
func cpuTime() (user, sys time.Duration, maxRSSKiB int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0, 0
	}
	rss := int64(ru.Maxrss)
	if runtime.GOOS == "darwin" || runtime.GOOS == "ios" {
		rss /= 1024 // bytes there
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano()), rss
}
