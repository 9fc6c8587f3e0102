package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"syscall"
)

// poller reads every stream from one epoll instance in one thread: a
// socket's frames are read with one read(2) when they come, where a
// goroutine per stream reads once more to find the socket empty. The load
// generator so takes less of the CPU it shares with the server it
// measures.
type poller struct {
	l    *load
	epfd int

	mu      sync.Mutex
	entries map[int32]*entry // by client index
}

// entry is one stream the poller reads.
type entry struct {
	i    int
	cl   *client
	fd   int
	gone chan struct{} // closed when the stream ended
	done bool
}

const epollET = 1 << 31 // EPOLLET, which package syscall declares negative

func newPoller(l *load) (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	return &poller{l: l, epfd: epfd, entries: map[int32]*entry{}}, nil
}

// add reads client i's stream from now on, from the socket of c, which
// must stay open meanwhile; gone closes when the stream ends.
func (p *poller) add(i int, cl *client, c *net.TCPConn) (gone <-chan struct{}, err error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("raw connection: %w", err)
	}
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return nil, fmt.Errorf("raw connection: %w", err)
	}
	e := &entry{i: i, cl: cl, fd: fd, gone: make(chan struct{})}
	p.mu.Lock()
	p.entries[int32(i)] = e
	p.mu.Unlock()
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | epollET, Fd: int32(i)}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	return e.gone, nil
}

// run reads the streams until ctx ends.
func (p *poller) run(ctx context.Context) {
	runtime.LockOSThread()
	defer syscall.Close(p.epfd)
	events := make([]syscall.EpollEvent, 512)
	buf := make([]byte, 16<<10)
	for ctx.Err() == nil {
		n, err := syscall.EpollWait(p.epfd, events, 100)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			panic(fmt.Sprintf("sseload: epoll_wait: %v", err))
		}
		for _, ev := range events[:n] {
			p.mu.Lock()
			e := p.entries[ev.Fd]
			p.mu.Unlock()
			if e == nil || e.done {
				continue
			}
			hup := ev.Events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0
			for {
				m, err := syscall.Read(e.fd, buf)
				if m > 0 {
					p.l.feed(e.i, e.cl, buf[:m])
				}
				if errors.Is(err, syscall.EINTR) {
					continue
				}
				if errors.Is(err, syscall.EAGAIN) {
					break
				}
				if err != nil || m == 0 {
					if err == nil {
						err = errors.New("the server closed the stream")
					}
					if ctx.Err() == nil {
						e.cl.err.Store(fmt.Errorf("read: %w", err))
					}
					e.done = true
					close(e.gone)
					break
				}
				if m < len(buf) && !hup {
					break // a short read emptied the socket: wait for the next edge
				}
			}
		}
	}
}
