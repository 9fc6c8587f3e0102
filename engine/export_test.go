package engine

// AwaitersOf is how many Await calls wait for command id, so that a test
// can let a command go only once its waiters are in place.
func (e *Engine) AwaitersOf(id string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.waiters[id])
}

// WaitsForIdle reports whether a WaitSettled of the correlation waits for
// its commands in flight.
func (e *Engine) WaitsForIdle(correlationID string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.corrIdle[correlationID]
	return ok
}
