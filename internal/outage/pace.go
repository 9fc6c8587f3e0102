package outage

import (
	"sync"
	"time"
)

// Pace paces the log lines of one kind that many goroutines may write at
// once, such as the failures of requests during an outage, where a line
// each would flood the log: the first First, then one per Interval at
// most, each told how many went unwritten since the last. The zero value
// writes the first 10, then one a second. It is safe for concurrent use.
type Pace struct {
	First    int
	Interval time.Duration

	mu        sync.Mutex
	written   int       // lines written
	last      time.Time // when the last was
	unwritten int64     // lines left out since
}

// Do calls write, with how many lines went unwritten before it, if the
// pace allows a line now; else it counts one more unwritten.
func (p *Pace) Do(write func(unwritten int64)) {
	first, interval := p.First, p.Interval
	if first <= 0 {
		first = 10
	}
	if interval <= 0 {
		interval = time.Second
	}
	p.mu.Lock()
	now := time.Now()
	if p.written >= first && now.Sub(p.last) < interval {
		p.unwritten++
		p.mu.Unlock()
		return
	}
	n := p.unwritten
	p.written, p.last, p.unwritten = p.written+1, now, 0
	p.mu.Unlock()
	write(n)
}
