package stream

import "time"

// SetNoAssignmentWait changes how long a sink without partitions waits
// before it counts as caught up, for a test; it returns the old value.
func SetNoAssignmentWait(d time.Duration) time.Duration {
	old := noAssignmentWait
	noAssignmentWait = d
	return old
}

// SetAfterCommit makes a Consume run call fn after each committed
// validator transaction with the number of records it consumed, so a test
// can stop it on progress rather than after a time.
func SetAfterCommit(c *ConsumeConfig, fn func(records int)) { c.afterCommit = fn }
