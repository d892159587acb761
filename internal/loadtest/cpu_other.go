//go:build !unix

package loadtest

import "time"

// cpuTime is not measured on this system.
func cpuTime() (user, sys time.Duration, maxRSSKiB int64) { return 0, 0, 0 }
