//go:build !unix

// Package rlimit raises the limit of open files for the benchmarks that
// open many connections: the bench's server and its load generator.
package rlimit

// RaiseFiles does nothing where there is no RLIMIT_NOFILE.
func RaiseFiles(need int) error { return nil }
