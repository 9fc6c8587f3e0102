// Command plait is the orderdesk demo application, built exactly as a user's
// own Plait application is: its aggregates, views and reactors, handed to
// cli.Main for the whole command line.
package main

import (
	"os"

	"github.com/plaithq/plait/cli"
	"github.com/plaithq/plait/examples/orderdesk"
)

func main() {
	os.Exit(cli.Main(orderdesk.App(), os.Args[1:]))
}
