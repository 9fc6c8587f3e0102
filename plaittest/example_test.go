package plaittest_test

import (
	"fmt"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/plaittest"
)

// Add is the data of a counter's add command and added event.
type Add struct {
	By int `json:"by"`
}

// counter is an aggregate type whose state is a number.
var counter = plait.NewAggregate("counter",
	plait.Handle("add", func(n int, c plait.Cmd[Add]) ([]plait.Change, error) {
		if c.Data.By < 1 {
			return nil, plait.Reject("by", plait.CodeInvalid, "add at least 1")
		}
		return []plait.Change{plait.Emit("added", c.Data)}, nil
	}),
	plait.Apply("added", func(n int, e Add) int { return n + e.By }),
)

// In a test, the Then methods check the outcome:
//
//	plaittest.Given(counter, plait.Emit("added", Add{By: 2})).
//		When("add", Add{By: 3}).
//		ThenEvents(t, plait.Emit("added", Add{By: 3})).
//		ThenState(t, 5)
//
// Outside one, the result can be read directly.
func Example() {
	r := plaittest.Given(counter, plait.Emit("added", Add{By: 2})).When("add", Add{By: 3})
	fmt.Println(r.Changes()[0].Name, string(r.State()))

	r = plaittest.Given(counter).When("add", Add{By: 0})
	fmt.Println(r.Err())
	// Output:
	// added 5
	// plait: rejected: by: invalid: add at least 1
}
