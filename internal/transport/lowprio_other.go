//go:build !linux

package transport

// lowerPriority does nothing where a thread's priority cannot be set
// apart from its process's.
func lowerPriority() {}
