package httpapi

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// checkOrigin refuses what a web page of another site can make a browser
// send to this server:
//
//   - A state-changing request from another origin (cross-site request
//     forgery). A page elsewhere can post a form or a no-cors fetch to any
//     address, the user's own 127.0.0.1 included; browsers mark such a
//     request with Sec-Fetch-Site or Origin, and it is refused. Clients
//     that are not browsers send neither header and are not affected.
//   - On a server without Auth, a request naming a host that is not a
//     loopback one (DNS rebinding). Such a server trusts whoever reaches
//     it as its single user; a page whose name an attacker points at
//     127.0.0.1 reaches it from its own origin, and only the Host header,
//     which is the attacker's name, tells it apart.
func (s *Server) checkOrigin(r *http.Request) *Problem {
	if s.opts.Auth == nil && !loopbackHost(r.Host) {
		return newProblem(http.StatusForbidden, slugForbidden,
			"host "+r.Host+" is not a loopback name: a server without authentication answers requests for localhost, 127.0.0.1 or ::1 only")
	}
	if err := s.origins.Check(r); err != nil {
		return newProblem(http.StatusForbidden, slugForbidden,
			"a "+r.Method+" from a page of another origin is refused (cross-site request forgery)")
	}
	return nil
}

// loopbackHost reports whether host, a Host header with or without a port,
// names this machine's loopback interface: localhost, a name under
// .localhost, or a loopback address (an IPv6 one in brackets).
func loopbackHost(host string) bool {
	bracketed := strings.HasPrefix(host, "[")
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else if bracketed && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if bracketed {
		ip, err := netip.ParseAddr(host)
		return err == nil && ip.Is6() && ip.IsLoopback()
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
