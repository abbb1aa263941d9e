package stream

import "time"

// SetNoAssignmentWait changes how long a sink without partitions waits
// before it counts as caught up, for a test; it returns the old value.
func SetNoAssignmentWait(d time.Duration) time.Duration {
	old := noAssignmentWait
	noAssignmentWait = d
	return old
}
