// Package web holds the browser side of Plait, embedded in the binary: the
// client library plait.js and the orderdesk demo user interface.
//
// Files serves them as they are, with no build step:
//
//	index.html   the orderdesk user interface (GET /)
//	app.js       its code, on plait.js and nothing else
//	style.css    its layout, for a laptop and a phone
//	plait.js     the browser client library (GET /plait.js), an ES module:
//	             submit commands with client-made ids, follow their outcomes
//	             and the events over one resumable EventSource, keep the
//	             pending commands across page reloads, query lists and
//	             aggregates
//	favicon.svg  the icon
//
// The end-to-end tests in e2e/ drive the user interface in headless
// Chromium against a real plait server (scripts/e2e).
package web

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// Files is the browser side of Plait with orderdesk's user interface:
// index.html, plait.js and the files they load, at the root of the file
// system. It is read-only and safe for concurrent use; serve it with
// http.FileServerFS.
var Files fs.FS = mustSub(static, "static")

// Client is plait.js alone, for an application that brings no user
// interface of its own: what a server gives browsers by default.
var Client fs.FS = only{Files, "plait.js"}

// only is a file system of one file of fsys.
type only struct {
	fsys fs.FS
	name string
}

// Open opens the one file; any other name does not exist.
func (o only) Open(name string) (fs.File, error) {
	if name != o.name {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return o.fsys.Open(name)
}

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic("web: " + err.Error()) // only if the embed directive and dir disagree
	}
	return sub
}
