package kafka

// Scans reports how many scans of the commands topics Undecided ran.
func (l *Log) Scans() int64 { return l.scans.Load() }
