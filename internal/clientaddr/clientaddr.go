// Package clientaddr says by what key a client's address is counted, by
// the rate limits per address and the cap on connections per address
// alike: its IP, an IPv6 one cut to its /64, which one host commonly holds
// whole (and could otherwise change at will).
package clientaddr

import "net/netip"

// Key is the key of a client at address a.
func Key(a netip.Addr) string {
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
