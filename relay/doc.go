// Package relay streams the feed of an engine — every outcome and every
// event, in position order — to its clients as Server-Sent Events, each
// filtered to what that client may see, resumable from any position.
//
// A stream holds only its position: it reads the feed a page at a time with
// ReadFeed (from the engine's in-memory tail when it keeps up, from the store
// when it has fallen behind) and waits on FeedChanged when it has caught up.
// A slow client therefore costs no memory and cannot stall anybody else; the
// caller cuts a stuck one loose with a write deadline in its Sink.
//
// Each frame's id is the item's position, a decimal number; a client that
// reconnects with it (Last-Event-ID) resumes right after that item, so the
// frames it receives over all its connections are every frame it may see,
// each exactly once and in order.
//
// Many streams share a Hub: it reads the feed once, encodes each item once,
// and queues the frame only for the streams one of whose routing keys the
// item carries (HubOptions.Route; package httpapi derives the keys from
// the access rules, so an owner-only instance's items reach its owner's
// streams and nobody else's), waking only those. A connection handed to
// the hub with Attach costs no goroutine of its own while its client keeps
// up: writer goroutines, one per CPU, write the queued frames to the
// connections without blocking, and a client that does not keep up gets a
// goroutine that writes with a deadline, or, once it is too far behind,
// reads the feed from where it stands as a resuming client does.
//
// The package knows no HTTP: package httpapi authenticates the client,
// parses the resume token with ParseToken, builds the Subscription and
// hands the hub the connection (Attach) or a Sink over the response
// (Hub.Stream).
//
//	hub := relay.NewHub(engine, relay.HubOptions{Heartbeat: 15 * time.Second})
//	err := hub.Stream(ctx, sink, from, relay.Subscription{Filter: func(it engine.Item) bool {
//		return maySee(user, it)
//	}})
package relay
