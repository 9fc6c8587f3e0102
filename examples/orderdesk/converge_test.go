package orderdesk_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/examples/orderdesk"
	"github.com/plaithq/plait/plaittest"
)

// world runs the orderdesk application in memory, purely, the way the engine
// does: commands through decide and evolve, events through every reactor. It
// delivers the pending commands and events in whatever order pick chooses, and
// sometimes twice, to show that the views converge regardless.
type world struct {
	t       *testing.T
	app     plait.App
	docs    map[string]*doc
	log     map[plait.Lineage]plait.Event // every event, by where it came from
	handled map[string]bool               // command ids, as the engine dedups them
	pending []any                         // plait.Command or plait.Event
	users   []plait.Command               // user commands, sent in this order
}

type doc struct {
	state   json.RawMessage
	seq     int64
	lineage map[string]plait.Lineage
}

func newWorld(t *testing.T) *world {
	return &world{
		t: t, app: orderdesk.App(),
		docs: map[string]*doc{}, log: map[plait.Lineage]plait.Event{}, handled: map[string]bool{},
	}
}

// user queues a command a user sends.
func (w *world) user(typ, id, name string, data any) {
	raw, err := json.Marshal(data)
	if err != nil {
		w.t.Fatal(err)
	}
	n := len(w.users)
	w.users = append(w.users, plait.Command{
		ID: fmt.Sprintf("u%d", n), Type: typ, AggregateID: id, Name: name, Data: raw,
		CorrelationID: fmt.Sprintf("u%d", n), User: "ann", At: plaittest.FixedTime.Add(time.Duration(n) * time.Minute),
	})
}

// run delivers everything: at each step pick chooses among the pending
// commands and events and, while any is left, the next user command.
func (w *world) run(rng *rand.Rand) {
	for len(w.pending) > 0 || len(w.users) > 0 {
		i := rng.IntN(len(w.pending) + min(len(w.users), 1))
		if i == len(w.pending) {
			w.handle(w.users[0])
			w.users = w.users[1:]
			continue
		}
		item := w.pending[i]
		if rng.IntN(10) > 0 { // one time in ten, deliver it again later
			w.pending = append(w.pending[:i], w.pending[i+1:]...)
		}
		switch item := item.(type) {
		case plait.Command:
			w.handle(item)
		case plait.Event:
			for _, r := range w.app.Reactors {
				cmds, err := r.React(item)
				if err != nil {
					w.t.Fatal(err)
				}
				for _, c := range cmds {
					w.pending = append(w.pending, c)
				}
			}
		}
	}
}

func (w *world) handle(cmd plait.Command) {
	if w.handled[cmd.ID] {
		return
	}
	w.handled[cmd.ID] = true
	def, ok := w.app.Definition(cmd.Type)
	if !ok {
		w.t.Fatalf("command %s for unknown type %s", cmd.Name, cmd.Type)
	}
	if err := def.CheckCommand(cmd.Name, cmd.Data); err != nil {
		w.t.Fatalf("%s.%s %s: %v", cmd.Type, cmd.Name, cmd.Data, err)
	}
	key := cmd.Type + "/" + cmd.AggregateID
	d := w.docs[key]
	if d == nil {
		d = &doc{lineage: map[string]plait.Lineage{}}
		w.docs[key] = d
	}
	changes, err := def.Decide(plait.Current{Seq: d.seq, State: d.state, Lineage: d.lineage}, cmd)
	if err != nil {
		w.t.Fatalf("%s %s.%s %s: %v", cmd.AggregateID, cmd.Type, cmd.Name, cmd.Data, err)
	}
	for i, c := range changes {
		if d.state, err = def.Evolve(d.state, c.Name, c.Data); err != nil {
			w.t.Fatal(err)
		}
		d.seq++
		maps.Copy(d.lineage, c.Lineage)
		ev := plait.Event{
			ID: plait.EventID(cmd.ID, i), Type: cmd.Type, AggregateID: cmd.AggregateID, Seq: d.seq,
			Name: c.Name, Data: c.Data, CorrelationID: cmd.CorrelationID, CausationID: cmd.ID, User: cmd.User, At: cmd.At,
		}
		w.log[plait.Lineage{Type: ev.Type, AggregateID: ev.AggregateID, Seq: ev.Seq}] = ev
		w.pending = append(w.pending, ev)
	}
}

// item returns an orderList item and its lineage.
func (w *world) item(id string) (orderdesk.OrderItem, map[string]plait.Lineage) {
	var item orderdesk.OrderItem
	d := w.docs["orderList/"+id]
	if d == nil {
		w.t.Fatalf("no orderList item %s", id)
	}
	if err := json.Unmarshal(d.state, &item); err != nil {
		w.t.Fatal(err)
	}
	return item, d.lineage
}

// TestTheOrderListConverges plays one story of customers and orders, with the
// reactions delivered in many different orders, and checks every list item
// and the lineage of each of its fields.
func TestTheOrderListConverges(t *testing.T) {
	line := func(qty int, price float64) M { return M{"sku": "TEA", "qty": qty, "price": price} }
	at := func(n int) plait.Time {
		return plait.Time{Time: plaittest.FixedTime.Add(time.Duration(n) * time.Minute)}
	}
	src := func(typ, id string, seq int64) plait.Lineage {
		return plait.Lineage{Type: typ, AggregateID: id, Seq: seq}
	}

	for seed := range uint64(300) {
		w := newWorld(t)
		w.user("customer", "c1", "create", M{"name": "Ann Lee", "email": "ann@example.com"}) // u0
		w.user("order", "o1", "place", M{"customerId": "c1", "lines": []M{line(2, 4.5), line(1, 12)}})
		w.user("order", "o2", "place", M{"customerId": "c1", "lines": []M{line(3, 1)}})
		w.user("order", "o3", "place", M{"customerId": "c2", "lines": []M{line(1, 7)}}) // c2 is not known yet
		w.user("customer", "c1", "rename", M{"name": "Ann Smith"})
		w.user("order", "o1", "ship", M{}) // u5
		w.user("order", "o2", "cancel", M{"reason": "too late"})
		w.user("customer", "c2", "create", M{"name": "Bob", "email": "bob@example.com"})
		w.user("order", "o4", "place", M{"customerId": "c3", "lines": []M{line(5, 0)}}) // c3 never exists
		w.user("customer", "c1", "rename", M{"name": "Ann Jones"})
		w.user("customer", "c1", "changeEmail", M{"email": "ann@jones.example"}) // u10
		w.run(rand.New(rand.NewPCG(seed, 1)))

		for _, want := range []struct {
			id        string
			item      orderdesk.OrderItem
			name      plait.Lineage // of the customerName: seq 0 while no name of the customer is known
			status    plait.Lineage
			nameEvent string
		}{
			{"o1", orderdesk.OrderItem{CustomerName: "Ann Jones", Total: 21, Currency: "EUR", Status: "shipped", Lines: 2, PlacedAt: at(1)},
				src("customer", "c1", 3), src("order", "o1", 2), "renamed"},
			{"o2", orderdesk.OrderItem{CustomerName: "Ann Jones", Total: 3, Currency: "EUR", Status: "cancelled", Lines: 1, PlacedAt: at(2)},
				src("customer", "c1", 3), src("order", "o2", 2), "renamed"},
			{"o3", orderdesk.OrderItem{CustomerName: "Bob", Total: 7, Currency: "EUR", Status: "placed", Lines: 1, PlacedAt: at(3)},
				src("customer", "c2", 1), src("order", "o3", 1), "created"},
			{"o4", orderdesk.OrderItem{Total: 0, Currency: "EUR", Status: "placed", Lines: 1, PlacedAt: at(8)},
				src("customer", "c3", 0), src("order", "o4", 1), ""},
		} {
			got, lineage := w.item(want.id)
			if got != want.item {
				t.Fatalf("seed %d: item %s is %+v, want %+v", seed, want.id, got, want.item)
			}
			placed := src("order", want.id, 1)
			wantLineage := map[string]plait.Lineage{"total": placed, "currency": placed, "lines": placed, "placedAt": placed, "status": want.status, "customerName": want.name}
			if !maps.Equal(lineage, wantLineage) {
				t.Fatalf("seed %d: item %s has lineage %v, want %v", seed, want.id, lineage, wantLineage)
			}
			// Each lineage leads to the event that set the field.
			if ev := w.log[lineage["total"]]; ev.Name != "placed" {
				t.Fatalf("seed %d: item %s: total comes from %s, want a placed event", seed, want.id, ev.Name)
			}
			if ev := w.log[lineage["status"]]; ev.Name != want.item.Status {
				t.Fatalf("seed %d: item %s: status comes from %s, want the %s event", seed, want.id, ev.Name, want.item.Status)
			}
			if want.nameEvent != "" {
				var data struct{ Name string }
				ev := w.log[lineage["customerName"]]
				if err := json.Unmarshal(ev.Data, &data); err != nil || ev.Name != want.nameEvent || data.Name != want.item.CustomerName {
					t.Fatalf("seed %d: item %s: customerName comes from %s %s, want the %s event naming %s",
						seed, want.id, ev.Name, ev.Data, want.nameEvent, want.item.CustomerName)
				}
			}
		}
	}
}
