//go:build !unix

package relay

import (
	"errors"
	"syscall"
)

// canTryWrite says whether tryWrite works here: it does not, so every
// attached stream keeps a goroutine that writes with a deadline.
const canTryWrite = false

func tryWrite(raw syscall.RawConn, p []byte) (int, error) {
	return 0, errors.New("relay: writes that do not block are not supported here")
}
