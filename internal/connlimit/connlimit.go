// Package connlimit bounds the connections each client address holds open
// at once on a listener: a client that opens thousands and holds them
// (slowly, within every timeout of the server) would use up the process's
// file descriptors, which every other client needs too.
package connlimit

import (
	"net"
	"net/netip"
	"sync"

	"github.com/plaithq/plait/internal/clientaddr"
)

// Listener is a net.Listener that accepts at most Max connections open at
// once from one client address (an IPv6 address counted by its /64, which
// one host commonly holds whole); past it, a new connection of that
// address is closed at once, unanswered, and the next is accepted.
type Listener struct {
	net.Listener
	max int

	mu   sync.Mutex
	open map[string]int // connections open, by client key
}

// New returns ln limited to max connections per client address.
func New(ln net.Listener, max int) *Listener {
	return &Listener{Listener: ln, max: max, open: map[string]int{}}
}

// Accept waits for and returns the next connection whose address is under
// its limit.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := clientKey(c.RemoteAddr())
		l.mu.Lock()
		if l.open[key] >= l.max {
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.open[key]++
		l.mu.Unlock()
		return &conn{Conn: c, release: func() { l.release(key) }}, nil
	}
}

// Open returns how many connections the client address addr holds open.
func (l *Listener) Open(addr net.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open[clientKey(addr)]
}

func (l *Listener) release(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[key]--; l.open[key] <= 0 {
		delete(l.open, key)
	}
}

// conn releases its place once closed, however many times it is.
type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// clientKey is the key addr is counted by (see clientaddr.Key); anything
// but an IP address and port, as it is written.
func clientKey(addr net.Addr) string {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return addr.String()
	}
	return clientaddr.Key(ap.Addr())
}
