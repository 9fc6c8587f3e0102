//go:build !unix

package bench

import "time"

// raiseFileLimit does nothing where there is no RLIMIT_NOFILE.
func raiseFileLimit(need int) error { return nil }

// processCPU returns 0: the CPU time is not measured here.
func processCPU() time.Duration { return 0 }
