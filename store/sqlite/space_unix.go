//go:build unix

package sqlite

import "syscall"

// freeBytes returns the bytes the file system of dir has free for the
// process, if it can tell.
func freeBytes(dir string) (uint64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return uint64(st.Bavail) * uint64(st.Bsize), true
}
