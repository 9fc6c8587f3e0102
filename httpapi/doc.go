// Package httpapi serves a Plait engine over HTTP: commands in, outcomes,
// state, history and lists out, and the relay of outcomes and events as
// Server-Sent Events. It implements Plait's HTTP contract (the README's
// "The HTTP API").
//
//	POST /commands[?wait=outcome|materialized|settled&timeout=5s]
//	GET  /commands/{id}
//	GET  /aggregates/{type}/{id}
//	GET  /aggregates/{type}/{id}/events?after=N&limit=M
//	GET  /lists/{type}?eq.F=v&prefix.F=v&search.F=v&sort=F|-F&fields=a,b&limit=N&after=CURSOR
//	GET  /stream?types=a,b            (SSE, resumable with Last-Event-ID)
//	HEAD /stream                      (a stream's headers only: the position it would start from)
//	GET  /schemas/{type}[/{name}]     (the JSON Schemas of a type's commands; see below)
//	GET  /healthz, /readyz, /metrics
//	POST /views/{name}/rebuild        (admin: rebuild a view while serving)
//	POST /subjects/{subject}/forget   (admin: erase a data subject's personal data)
//	GET  /, /plait.js, …              (the optional web files)
//
// Every error is an RFC 9457 problem (application/problem+json) with type,
// title, status and detail, and errors [{path, code, message}] where a field
// is at fault. Users are authenticated with a bearer JWT (see Auth); without
// an Auth every request is the single local user "local".
//
// With Options.TracerProvider, each POST /commands is an OpenTelemetry
// server span that continues an incoming W3C traceparent and names the
// command; given the same provider, the engine's spans of the command and
// of every reaction it sets off are its children.
//
// The server knows the engine only: it holds no state of its own beyond its
// metrics and its open streams, so several servers may serve one engine.
//
//	srv := httpapi.New(eng, httpapi.Options{Auth: httpapi.NewHS256Auth(secret)})
//	hs := &http.Server{Addr: "127.0.0.1:8080", Handler: srv}
//	go hs.ListenAndServe()
//	// on shutdown:
//	srv.CloseStreams()
//	hs.Shutdown(ctx)
package httpapi
