//go:build !linux

package main

import (
	"context"
	"net"
)

// poller is not used here: each stream's goroutine reads it.
type poller struct{}

func newPoller(l *load) (*poller, error) { return nil, nil }

func (p *poller) add(i int, cl *client, c *net.TCPConn) (<-chan struct{}, error) {
	return nil, nil
}

func (p *poller) run(ctx context.Context) {}
