//go:build unix

package relay

import (
	"errors"
	"syscall"
)

// canTryWrite says whether tryWrite works here.
const canTryWrite = true

// tryWrite writes what the socket takes of p at once, without blocking,
// and returns how much that was.
func tryWrite(raw syscall.RawConn, p []byte) (int, error) {
	var n int
	var werr error
	err := raw.Write(func(fd uintptr) bool {
		for {
			n, werr = syscall.Write(int(fd), p)
			if werr != syscall.EINTR {
				return true // one attempt: never wait for the socket
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errors.Is(werr, syscall.EAGAIN):
		return 0, nil
	case werr != nil:
		return 0, werr
	}
	return max(n, 0), nil
}
