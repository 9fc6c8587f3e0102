// Command plait is the orderdesk demo application, built exactly as a user's
// own Plait application is: its aggregates, views and reactors, handed to
// cli.Main for the whole command line, with its user interface (web.Files).
package main

import (
	"os"

	"github.com/plaithq/plait/cli"
	"github.com/plaithq/plait/examples/orderdesk"
	"github.com/plaithq/plait/web"
)

func main() {
	os.Exit(cli.Main(orderdesk.App(), os.Args[1:], cli.WithWeb(web.Files)))
}
