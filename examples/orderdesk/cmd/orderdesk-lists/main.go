// Command orderdesk-lists is orderdesk's lists application alone (the
// orderList and customerOrders views and their reactors, orderdesk.Lists),
// with Plait's whole command line. Scaled out it reacts to the events
// orderdesk-core publishes, so it takes the same --topic-prefix (not
// orderdesk's own, which the whole orderdesk's topics have), and a
// PostgreSQL schema of its own; it reads the core's to rebuild a view:
//
//	orderdesk-lists serve --kafka BROKERS --postgres URL --topic-prefix od2 --pg-schema orderdesk_lists --events-schemas orderdesk_core
package main

import (
	"os"

	"github.com/plaithq/plait/cli"
	"github.com/plaithq/plait/examples/orderdesk"
)

func main() {
	os.Exit(cli.Main(orderdesk.Lists(), os.Args[1:]))
}
