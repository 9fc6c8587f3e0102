package enginetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
)

// Opener opens the store under test. Each call opens the same underlying
// storage again, as a restart would.
type Opener func(t *testing.T) engine.Store

// Factory makes fresh, empty storage for one test and returns its opener.
type Factory func(t *testing.T) Opener

// Run runs the contract suite of invariants 1 to 5 against the stores newStore
// makes, with the engine in its embedded mode.
func Run(t *testing.T, newStore Factory) {
	RunWith(t, newStore, nil)
}

// Configure gives the engine options for a store the suite opened, for an
// engine of app; a scaled-out run sets Options.CommandLog here.
type Configure func(st engine.Store, app plait.App) engine.Options

// RunWith is Run with the engine configured by configure (nil: the embedded
// defaults).
func RunWith(t *testing.T, newStore Factory, configure Configure) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h harness)
	}{
		{"AcceptedCommandCommitsEventsAndState", testAccepted},
		{"RejectionRecordsCommandWithAnnotations", testRejected},
		{"SameIDTwiceYieldsOneOutcome", testDuplicate},
		{"SameIDConcurrentlyYieldsOneOutcome", testDuplicateConcurrent},
		{"ExpectedSeqMismatchIsConflict", testConflict},
		{"PanicBecomesInternalRejection", testPanic},
		{"ConcurrentCommandsToOneInstanceAreSerialised", testOneInstance},
		{"ConcurrentCommandsToManyInstances", testManyInstances},
		{"OutcomesAndDedupSurviveRestart", testRestart},
		{"BadEnvelopeChangesNothing", testBadEnvelope},
		{"ReactorEffectsExactlyOnceAcrossRestart", testReactorRestart},
		{"SettledFollowsTheCausalChain", testSettled},
		{"FeedHasEveryEventAndOutcomeInOrder", testFeed},
		{"OwnerIsWhoeverSentTheFirstCommand", testOwner},
		{"OwnerFieldMovesTheInstance", testOwnerField},
		{"UnstorableDecisionIsRejected", testUnstorable},
		{"CheckpointsOnlyMoveForward", testCheckpointForward},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, harness{open: newStore(t), configure: configure}) })
	}
}

// harness starts engines on one test's storage.
type harness struct {
	open      Opener
	configure Configure
}

func (h harness) start(t *testing.T) *Node { return StartWith(t, h.open, h.configure) }

// Node is a running engine over an opened store.
type Node struct {
	Engine *engine.Engine
	Store  engine.Store
	stop   context.CancelFunc
	done   chan error
}

// Start opens the store and runs an engine with the suite's App on it.
func Start(t *testing.T, open Opener) *Node { return StartWith(t, open, nil) }

// StartWith is Start with the engine configured by configure.
func StartWith(t *testing.T, open Opener, configure Configure) *Node {
	t.Helper()
	return start(t, open, App(), configure)
}

// StartApp is Start with app instead of the suite's App.
func StartApp(t *testing.T, open Opener, app plait.App) *Node {
	t.Helper()
	return start(t, open, app, nil)
}

// StartAppWith is StartApp with the engine configured by configure.
func StartAppWith(t *testing.T, open Opener, app plait.App, configure Configure) *Node {
	t.Helper()
	return start(t, open, app, configure)
}

func start(t *testing.T, open Opener, app plait.App, configure Configure) *Node {
	t.Helper()
	st := open(t)
	opts := engine.Options{Partitions: 4}
	if configure != nil {
		opts = configure(st, app)
	}
	e, err := engine.New(app, st, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{Engine: e, Store: st, stop: cancel, done: make(chan error, 1)}
	go func() { n.done <- e.Run(ctx) }()
	waitRunning(t, e)
	t.Cleanup(n.Stop)
	return n
}

// Background runs e until the test ends, or until stop is called, and
// waits until it takes commands. done receives what Run returns: a test of
// how the engine stops reads it.
func Background(t *testing.T, e *engine.Engine) (done <-chan error, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ran, finished := make(chan error, 1), make(chan struct{})
	go func() {
		ran <- e.Run(ctx)
		close(finished)
	}()
	t.Cleanup(func() {
		cancel()
		<-finished
	})
	waitRunning(t, e)
	return ran, cancel
}

func waitRunning(t *testing.T, e *engine.Engine) {
	select {
	case <-e.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("engine did not start")
	}
}

// Stop stops the engine and closes the store. It is idempotent.
func (n *Node) Stop() {
	if n.stop == nil {
		return
	}
	n.stop()
	<-n.done
	if c, ok := n.Store.(io.Closer); ok {
		c.Close()
	}
	n.stop = nil
}

var user = plait.User{ID: "tester"}

func add(id, agg string, by int) plait.Command {
	return plait.Command{ID: id, Type: "counter", AggregateID: agg, Name: "add", Data: json.RawMessage(fmt.Sprintf(`{"by":%d}`, by))}
}

func submit(t *testing.T, n *Node, cmd plait.Command) engine.Receipt {
	t.Helper()
	r, err := n.Engine.Submit(context.Background(), cmd, user)
	if err != nil {
		t.Fatalf("submit %s: %v", cmd.ID, err)
	}
	if r.Outcome == nil {
		out, err := n.Engine.Await(context.Background(), r.Command.ID)
		if err != nil {
			t.Fatalf("await %s: %v", cmd.ID, err)
		}
		r.Outcome = &out
	}
	return r
}

func load(t *testing.T, n *Node, typ, id string) (engine.Instance, Counter) {
	t.Helper()
	in, err := n.Store.Load(context.Background(), typ, id)
	if err != nil {
		t.Fatal(err)
	}
	var c Counter
	if in.Seq > 0 {
		if err := json.Unmarshal(in.State, &c); err != nil {
			t.Fatal(err)
		}
	}
	return in, c
}

func testAccepted(t *testing.T, h harness) {
	n := h.start(t)
	r := submit(t, n, plait.Command{ID: "c1", Type: "counter", AggregateID: "a", Name: "label", Data: json.RawMessage(`{"label":"hi"}`)})
	out := r.Outcome
	if out.Status != plait.StatusAccepted || len(out.Events) != 2 {
		t.Fatalf("outcome = %+v, want accepted with 2 events", out)
	}
	for i, ev := range out.Events {
		if ev.Seq != int64(i+1) || ev.CausationID != "c1" || ev.CorrelationID != "c1" || ev.ID != plait.EventID("c1", i) || ev.Position == 0 {
			t.Errorf("event %d = %+v", i, ev)
		}
	}
	in, c := load(t, n, "counter", "a")
	if in.Seq != 2 || c.Label != "HI" || c.Count != 1 || in.Owner != "tester" {
		t.Fatalf("instance = %+v %+v", in, c)
	}
	stored, ok, err := n.Store.Outcome(context.Background(), "c1")
	if err != nil || !ok || stored.Status != plait.StatusAccepted || len(stored.Events) != 2 || stored.Events[1].Name != "added" {
		t.Fatalf("stored outcome = %+v %v %v", stored, ok, err)
	}
}

func testRejected(t *testing.T, h harness) {
	n := h.start(t)
	out := submit(t, n, add("c1", "a", 0)).Outcome
	if out.Status != plait.StatusRejected || len(out.Errors) != 1 || out.Errors[0].Path != "by" || out.Errors[0].Code != plait.CodeInvalid {
		t.Fatalf("outcome = %+v", out)
	}
	if string(out.Command.Data) != `{"by":0}` {
		t.Errorf("rejection carries data %s, want the command's", out.Command.Data)
	}
	if in, _ := load(t, n, "counter", "a"); in.Seq != 0 {
		t.Fatalf("a rejected command changed the instance: %+v", in)
	}
	stored, ok, _ := n.Store.Outcome(context.Background(), "c1")
	if !ok || stored.Status != plait.StatusRejected || stored.Errors[0].Code != plait.CodeInvalid {
		t.Fatalf("stored = %+v", stored)
	}
}

func testDuplicate(t *testing.T, h harness) {
	n := h.start(t)
	first := submit(t, n, add("c1", "a", 5))
	second := submit(t, n, add("c1", "a", 5))
	if !second.Duplicate || second.Outcome.Events[0].ID != first.Outcome.Events[0].ID {
		t.Fatalf("second = %+v, want the first outcome again", second)
	}
	// Even with another payload, the id decides.
	third := submit(t, n, add("c1", "a", 7))
	if !third.Duplicate || third.Outcome.Status != plait.StatusAccepted {
		t.Fatalf("third = %+v", third)
	}
	if in, c := load(t, n, "counter", "a"); in.Seq != 1 || c.Count != 5 {
		t.Fatalf("instance = %+v %+v, want one add of 5", in, c)
	}
}

func testDuplicateConcurrent(t *testing.T, h harness) {
	n := h.start(t)
	var wg sync.WaitGroup
	outs := make([]engine.Receipt, 20)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Some land on other instances: the id still wins.
			outs[i] = submit(t, n, add("same", fmt.Sprintf("a%d", i%2), 1))
		}()
	}
	wg.Wait()
	for _, r := range outs {
		if r.Outcome.Events[0].ID != outs[0].Outcome.Events[0].ID {
			t.Fatalf("outcomes differ: %+v vs %+v", r.Outcome, outs[0].Outcome)
		}
	}
	_, c0 := load(t, n, "counter", "a0")
	_, c1 := load(t, n, "counter", "a1")
	if c0.Count+c1.Count != 1 {
		t.Fatalf("counts %d+%d, want the command run once", c0.Count, c1.Count)
	}
}

func testConflict(t *testing.T, h harness) {
	n := h.start(t)
	submit(t, n, add("c1", "a", 1))
	zero, one := int64(0), int64(1)
	stale := add("c2", "a", 1)
	stale.ExpectedSeq = &zero
	out := submit(t, n, stale).Outcome
	if out.Status != plait.StatusRejected || out.Errors[0].Code != plait.CodeConflict || out.Errors[0].Path != "expectedSeq" ||
		!strings.Contains(out.Errors[0].Message, "changed meanwhile") {
		t.Fatalf("outcome = %+v, want a conflict saying the counter changed meanwhile", out)
	}
	// A version the instance never reached is no change made meanwhile.
	ahead := add("c2b", "a", 1)
	ahead.ExpectedSeq = new(int64(5))
	out = submit(t, n, ahead).Outcome
	if out.Status != plait.StatusRejected || out.Errors[0].Code != plait.CodeConflict || !strings.Contains(out.Errors[0].Message, "has no version 5") {
		t.Fatalf("outcome = %+v, want a conflict saying the counter has no version 5", out)
	}
	fresh := add("c3", "a", 1)
	fresh.ExpectedSeq = &one
	if out := submit(t, n, fresh).Outcome; out.Status != plait.StatusAccepted {
		t.Fatalf("outcome = %+v, want accepted", out)
	}
	if in, _ := load(t, n, "counter", "a"); in.Seq != 2 {
		t.Fatalf("seq = %d, want 2", in.Seq)
	}
}

func testPanic(t *testing.T, h harness) {
	n := h.start(t)
	out := submit(t, n, plait.Command{ID: "b", Type: "counter", AggregateID: "a", Name: "boom"}).Outcome
	if out.Status != plait.StatusRejected || out.Errors[0].Code != plait.CodeInternal {
		t.Fatalf("outcome = %+v, want internal rejection", out)
	}
	if out := submit(t, n, add("c1", "a", 1)).Outcome; out.Status != plait.StatusAccepted {
		t.Fatalf("after a panic: %+v", out)
	}
}

func testOneInstance(t *testing.T, h harness) {
	n := h.start(t)
	const workers, each = 16, 25
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				submit(t, n, add(fmt.Sprintf("w%d-%d", w, i), "hot", 1))
			}
		}()
	}
	wg.Wait()
	in, c := load(t, n, "counter", "hot")
	if in.Seq != workers*each || c.Count != workers*each {
		t.Fatalf("seq %d count %d, want %d", in.Seq, c.Count, workers*each)
	}
	CheckGapFree(t, n.Store, "counter", "hot", workers*each)
}

func testManyInstances(t *testing.T, h harness) {
	n := h.start(t)
	const workers, each, instances = 16, 20, 10
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				submit(t, n, add(fmt.Sprintf("w%d-%d", w, i), fmt.Sprintf("i%d", (w+i)%instances), 1))
			}
		}()
	}
	wg.Wait()
	total := 0
	for i := 0; i < instances; i++ {
		id := fmt.Sprintf("i%d", i)
		in, c := load(t, n, "counter", id)
		if int64(c.Count) != in.Seq {
			t.Fatalf("%s: count %d seq %d", id, c.Count, in.Seq)
		}
		CheckGapFree(t, n.Store, "counter", id, int(in.Seq))
		total += c.Count
	}
	if total != workers*each {
		t.Fatalf("total %d, want %d", total, workers*each)
	}
}

// CheckGapFree fails t unless the instance has exactly want events, with seq
// 1 to want in order.
func CheckGapFree(t *testing.T, st engine.Store, typ, id string, want int) {
	t.Helper()
	evs, err := st.Events(context.Background(), typ, id, 0, want+10)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != want {
		t.Fatalf("%s/%s has %d events, want %d", typ, id, len(evs), want)
	}
	for i, ev := range evs {
		if ev.Seq != int64(i+1) {
			t.Fatalf("%s/%s event %d has seq %d", typ, id, i, ev.Seq)
		}
	}
}

func testRestart(t *testing.T, h harness) {
	n := h.start(t)
	first := submit(t, n, add("c1", "a", 3))
	submit(t, n, add("c2", "a", 0))
	n.Stop()
	n = h.start(t)
	again := submit(t, n, add("c1", "a", 3))
	if !again.Duplicate || again.Outcome.Events[0].ID != first.Outcome.Events[0].ID {
		t.Fatalf("after restart: %+v", again)
	}
	rej, err := n.Engine.Await(context.Background(), "c2")
	if err != nil || rej.Status != plait.StatusRejected {
		t.Fatalf("c2 after restart: %+v %v", rej, err)
	}
	out := submit(t, n, add("c3", "a", 1)).Outcome
	if out.Events[0].Seq != 2 {
		t.Fatalf("seq after restart = %d, want 2", out.Events[0].Seq)
	}
}

func testBadEnvelope(t *testing.T, h harness) {
	n := h.start(t)
	c1 := submit(t, n, add("c1", "a", 1))
	// Let the reactor's command for c1 land first: then nothing but the bad
	// submissions below could move the head.
	if err := n.Engine.WaitSettled(context.Background(), c1.Command.CorrelationID); err != nil {
		t.Fatal(err)
	}
	head, _ := n.Store.Head(context.Background())
	cases := []struct {
		cmd  plait.Command
		want error
	}{
		{plait.Command{Type: "nope", AggregateID: "a", Name: "add"}, plait.ErrUnknownType},
		{plait.Command{Type: "counter", AggregateID: "a", Name: "nope"}, plait.ErrUnknownCommand},
		{plait.Command{Type: "counter", AggregateID: "a", Name: "add", Data: json.RawMessage(`{"by":"x"}`)}, plait.ErrBadPayload},
		{plait.Command{Type: "counter", AggregateID: "a", Name: "add", Data: json.RawMessage(`{"by":1,"extra":2}`)}, plait.ErrBadPayload},
		{plait.Command{Type: "counter", AggregateID: "", Name: "add", Data: json.RawMessage(`{"by":1}`)}, plait.ErrBadID},
		{plait.Command{Type: "counter", AggregateID: "../etc", Name: "add", Data: json.RawMessage(`{"by":1}`)}, plait.ErrBadID},
		{plait.Command{ID: "bad id", Type: "counter", AggregateID: "a", Name: "add", Data: json.RawMessage(`{"by":1}`)}, plait.ErrBadID},
		{plait.Command{Type: "tally", AggregateID: "a", Name: "note", Data: json.RawMessage(`{}`)}, plait.ErrForbidden},
		{plait.Command{Type: "counter", AggregateID: "a", Name: "label", Data: json.RawMessage(`{"label":"a\u0000b"}`)}, plait.ErrBadPayload},
		// Text no store can hold (PostgreSQL's JSONB refuses both).
		{plait.Command{Type: "counter", AggregateID: "a", Name: "label", Data: json.RawMessage(`{"label":"a\ud800b"}`)}, plait.ErrBadPayload},
		{plait.Command{Type: "counter", AggregateID: "a", Name: "label", Data: json.RawMessage("{\"label\":\"a\xffb\"}")}, plait.ErrBadPayload},
	}
	for _, tc := range cases {
		_, err := n.Engine.Submit(context.Background(), tc.cmd, user)
		var env *plait.EnvelopeError
		if !errors.Is(err, tc.want) || !errors.As(err, &env) {
			t.Errorf("%+v: err = %v, want %v as *plait.EnvelopeError", tc.cmd, err, tc.want)
		}
	}
	if after, _ := n.Store.Head(context.Background()); after != head {
		t.Fatalf("head moved from %d to %d: bad input changed the store", head, after)
	}
}

func testReactorRestart(t *testing.T, h harness) {
	n := h.start(t)
	for i := 0; i < 30; i++ {
		r := submit(t, n, add(fmt.Sprintf("c%d", i), "a", 1))
		if i == 14 {
			n.Engine.WaitSettled(context.Background(), r.Command.CorrelationID)
			n.Stop()
			n = h.start(t)
		}
	}
	last := submit(t, n, add("last", "a", 1))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Engine.WaitSettled(ctx, last.Command.CorrelationID); err != nil {
		t.Fatal(err)
	}
	// Every earlier correlation has settled too: the reactor consumes in order.
	in, err := n.Store.Load(context.Background(), "tally", "a")
	if err != nil {
		t.Fatal(err)
	}
	var tally Tally
	json.Unmarshal(in.State, &tally)
	if tally.Adds != 31 || in.Seq != 31 {
		t.Fatalf("tally = %+v seq %d, want 31 notes exactly", tally, in.Seq)
	}
	if l := in.Lineage["adds"]; l.Type != "counter" || l.AggregateID != "a" || l.Seq != 31 {
		t.Fatalf("lineage = %+v, want counter/a@31", l)
	}
}

func testSettled(t *testing.T, h harness) {
	n := h.start(t)
	for i := 0; i < 20; i++ {
		r := submit(t, n, add(fmt.Sprintf("c%d", i), "a", 1))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := n.Engine.WaitSettled(ctx, r.Command.CorrelationID)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		// Settled means the view already shows this command's effect.
		in, _ := n.Store.Load(context.Background(), "tally", "a")
		if in.Seq != int64(i+1) {
			t.Fatalf("settled after c%d but tally is at %d", i, in.Seq)
		}
	}
}

func testFeed(t *testing.T, h harness) {
	n := h.start(t)
	ids := map[string]bool{}
	for i := 0; i < 10; i++ {
		cmd := add(fmt.Sprintf("c%d", i), "a", i%3) // every third is rejected
		submit(t, n, cmd)
		ids[cmd.ID] = true
	}
	items, err := n.Store.ReadFeed(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var prev int64
	outcomes := map[string]bool{}
	for _, it := range items {
		if it.Position <= prev {
			t.Fatalf("positions out of order: %d after %d", it.Position, prev)
		}
		prev = it.Position
		if it.Outcome != nil && ids[it.Outcome.Command.ID] {
			if outcomes[it.Outcome.Command.ID] {
				t.Fatalf("two outcomes for %s", it.Outcome.Command.ID)
			}
			outcomes[it.Outcome.Command.ID] = true
		}
	}
	if len(outcomes) != len(ids) {
		t.Fatalf("%d outcomes in the feed, want %d", len(outcomes), len(ids))
	}
}

// testOwner: an instance's owner is whoever sent its first command, even
// nobody (a command submitted through the Go API without a user): a later
// sender does not take it over, as a replay of its events would not.
func testOwner(t *testing.T, h harness) {
	n := h.start(t)
	ctx := context.Background()
	for i, u := range []plait.User{{}, user, {ID: "other"}} {
		r, err := n.Engine.Submit(ctx, add(fmt.Sprintf("n%d", i), "nobodys", 1), u)
		if err == nil && r.Outcome == nil {
			_, err = n.Engine.Await(ctx, r.Command.ID)
		}
		if err != nil {
			t.Fatalf("submit as %q: %v", u.ID, err)
		}
	}
	submit(t, n, add("t1", "testers", 1))
	if _, err := n.Engine.Submit(ctx, add("t2", "testers", 1), plait.User{ID: "other"}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Engine.Await(ctx, "t2"); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]struct {
		owner string
		count int
	}{"nobodys": {"", 3}, "testers": {"tester", 2}} {
		if in, c := load(t, n, "counter", id); in.Owner != want.owner || c.Count != want.count {
			t.Errorf("%s: owner %q, count %d; want %+v", id, in.Owner, c.Count, want)
		}
	}
}

// desk is a record whose owner is its assignee (plait.Access.OwnerField).
type desk struct {
	Assignee string `json:"assignee"`
	Notes    int    `json:"notes"`
}

type deskTo struct {
	To string `json:"to"`
}

// deskApp is an application of desks: "give" assigns one, "note" counts a
// note on it; the role boss sees them all.
func deskApp() plait.App {
	return plait.App{Name: "desks", Aggregates: []plait.Definition{plait.NewAggregate("desk",
		plait.Handle("give", func(_ desk, c plait.Cmd[deskTo]) ([]plait.Change, error) {
			return []plait.Change{plait.Emit("given", c.Data)}, nil
		}),
		plait.Handle("note", func(_ desk, c plait.Cmd[Empty]) ([]plait.Change, error) {
			return []plait.Change{plait.Emit("noted", Empty{})}, nil
		}),
		plait.Apply("given", func(s desk, e deskTo) desk { s.Assignee = e.To; return s }),
		plait.Apply("noted", func(s desk, _ Empty) desk { s.Notes++; return s }),
		plait.WithAccess[desk](plait.Access{OwnerOnly: true, OwnerField: "assignee", SeeAllRoles: []string{"boss"}}),
	)}}
}

// testOwnerField: an instance whose owner is a field of its state changes
// owner with the field, in the store's record and its lists by owner, and
// keeps it across a restart; a later command in the same batch that leaves
// the field keeps the new owner.
func testOwnerField(t *testing.T, h harness) {
	ctx := context.Background()
	n := StartAppWith(t, h.open, deskApp(), h.configure)
	cmd := func(id, name, data string, by ...string) plait.Command {
		c := plait.Command{ID: id, Type: "desk", AggregateID: "d1", Name: name, Data: json.RawMessage(data), User: "tester"}
		if len(by) > 0 {
			c.User = by[0]
		}
		return c
	}
	submitAll := func(cmds ...plait.Command) {
		t.Helper()
		for _, c := range cmds {
			if _, err := n.Engine.Submit(ctx, c, plait.User{ID: c.User, Roles: []string{c.User}}); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range cmds {
			if _, err := n.Engine.Await(ctx, c.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	owner := func(want string) {
		t.Helper()
		in, err := n.Store.Load(ctx, "desk", "d1")
		if err != nil {
			t.Fatal(err)
		}
		if in.Owner != want {
			t.Errorf("owner %q, want %q", in.Owner, want)
		}
		for _, u := range []string{"tester", "ann", "bob"} {
			page, err := n.Store.List(ctx, "desk", engine.ListQuery{Owner: u})
			if err != nil {
				t.Fatal(err)
			}
			if got := len(page.Items) == 1; got != (u == want) {
				t.Errorf("the list of %s's desks has %d, with owner %q", u, len(page.Items), want)
			}
		}
	}
	submitAll(cmd("g1", "give", `{"to":"tester"}`))
	owner("tester")
	// Given away and noted by the boss at once: the note leaves it with
	// its new owner.
	submitAll(cmd("g2", "give", `{"to":"ann"}`), cmd("n1", "note", `{}`, "boss"))
	owner("ann")
	// Its former owner may no longer act on it.
	if _, err := n.Engine.Submit(ctx, cmd("n2", "note", `{}`), user); !errors.Is(err, plait.ErrForbidden) {
		t.Errorf("its former owner's note: %v, want forbidden", err)
	}
	n.Stop()
	n = StartAppWith(t, h.open, deskApp(), h.configure)
	owner("ann")
	submitAll(cmd("g3", "give", `{"to":""}`, "ann"))
	owner("") // no one's: only a role that sees all sees it

	// The feed, which a stream resumed from the store reads, names the
	// owner each event took the desk from: g2's took it from tester,
	// g3's from ann; the others moved it from no one.
	items, err := n.Store.ReadFeed(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range items {
		if it.Event != nil && it.Event.Type == "desk" {
			got = append(got, it.Event.CausationID+" from "+it.FormerOwner)
		} else if it.FormerOwner != "" {
			t.Errorf("item %+v, no event of a command that moved a desk, names a former owner", it)
		}
	}
	if want := []string{"g1 from ", "g2 from tester", "n1 from ", "g3 from ann"}; !slices.Equal(got, want) {
		t.Errorf("the desk's events and their former owners: %q, want %q", got, want)
	}
}

// testUnstorable: a decision no store can keep (event data holding a NUL
// character, which PostgreSQL's JSONB refuses) is rejected as internal, in
// every deployment alike, and the commands after it go on: it must not
// fail its commit, and scaled out every commit of its partition after it.
func testUnstorable(t *testing.T, h harness) {
	n := h.start(t)
	poison := submit(t, n, plait.Command{ID: "p1", Type: "counter", AggregateID: "a", Name: "poison", Data: json.RawMessage(`{}`)})
	if out := poison.Outcome; out.Status != plait.StatusRejected || len(out.Errors) != 1 || out.Errors[0].Code != plait.CodeInternal ||
		!strings.Contains(out.Errors[0].Message, "NUL") {
		t.Fatalf("outcome of the poison = %+v, want rejected as internal, saying why", out)
	}
	if in, _ := load(t, n, "counter", "a"); in.Seq != 0 {
		t.Fatalf("the poison's instance has seq %d, want nothing stored", in.Seq)
	}
	if r := submit(t, n, add("p2", "a", 1)); r.Outcome.Status != plait.StatusAccepted {
		t.Fatalf("the command after the poison: %+v", r.Outcome)
	}
}

// testCheckpointForward: a checkpoint saved behind the recorded one leaves
// it, so that a subscriber that lost its turn while it saved (a publisher
// whose lease another instance took) cannot move the new one's back, for
// a restart to do again all it did since.
func testCheckpointForward(t *testing.T, h harness) {
	n := h.start(t)
	ctx := context.Background()
	for _, save := range []struct{ pos, want int64 }{{12, 12}, {6, 12}, {13, 13}} {
		if err := n.Store.SaveCheckpoint(ctx, "publisher", save.pos); err != nil {
			t.Fatal(err)
		}
		if pos, err := n.Store.Checkpoint(ctx, "publisher"); err != nil || pos != save.want {
			t.Fatalf("checkpoint %d after saving %d, %v; want %d", pos, save.pos, err, save.want)
		}
	}
}
