// Command orderdesk-core is orderdesk's core application alone (customers
// and orders, orderdesk.Core), with Plait's whole command line. Run beside
// orderdesk-lists, scaled out, with the same --topic-prefix (not
// orderdesk's own, which the whole orderdesk's topics have on a cluster
// it runs on) and a PostgreSQL schema of its own:
//
//	orderdesk-core serve --kafka BROKERS --postgres URL --topic-prefix od2 --pg-schema orderdesk_core
package main

import (
	"os"

	"github.com/plaithq/plait/cli"
	"github.com/plaithq/plait/examples/orderdesk"
)

func main() {
	os.Exit(cli.Main(orderdesk.Core(), os.Args[1:]))
}
