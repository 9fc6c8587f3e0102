//go:build unix

// Package rlimit raises the limit of open files for the benchmarks that
// open many connections: the bench's server and its load generator.
package rlimit

import (
	"fmt"
	"syscall"
)

// RaiseFiles raises the soft limit of open files to at least need, up to
// the hard limit.
func RaiseFiles(need int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("get the open file limit: %w", err)
	}
	if lim.Cur >= uint64(need) {
		return nil
	}
	if lim.Max < uint64(need) {
		return fmt.Errorf("need %d open files, the hard limit is %d", need, lim.Max)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raise the open file limit to %d: %w", lim.Max, err)
	}
	return nil
}
