package cli_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// buildBinaries builds the given commands of the module into a temporary
// directory, in one go build, and returns their paths by base name.
func buildBinaries(t *testing.T, pkgs ...string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", append([]string{"build", "-o", dir + string(filepath.Separator)}, pkgs...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	bins := map[string]string{}
	for _, p := range pkgs {
		bins[filepath.Base(p)] = filepath.Join(dir, filepath.Base(p))
	}
	return bins
}

// reactions reads plait_reactions_total from an instance's /metrics.
func reactions(t *testing.T, in *instance) int {
	t.Helper()
	return metric(t, in, "plait_reactions_total")
}

// metric reads a series without labels from an instance's /metrics.
func metric(t *testing.T, in *instance, name string) int {
	t.Helper()
	resp, err := client.Get(in.base + "/metrics")
	if err != nil {
		t.Fatalf("GET %s/metrics: %v", in.name, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %s %q: %v", in.name, name, v, err)
			}
			return int(f)
		}
	}
	t.Fatalf("%s/metrics has no %s", in.name, name)
	return 0
}

// eventPartitions lists the partitions of events topics an instance's logs
// say it was assigned, since its logs were length from.
func eventPartitions(logs string, from int) []string {
	var ps []string
	for _, p := range assigned(logs[from:]) {
		if strings.Contains(p, ".events/") {
			ps = append(ps, p)
		}
	}
	return ps
}

// TestScaledOutSplitApplications runs orderdesk as two applications, each
// its own processes: orderdesk-core (customers and orders) and two
// instances of orderdesk-lists (the orderList and customerOrders views and
// their reactors), on one kfake broker and one PostgreSQL server, each
// application in a schema of its own. Commands go to the core; the lists
// application reacts to the events the core publishes. The two are distinct
// consumer groups; the lists' reactions are each computed by one of its two
// instances; when one is killed with SIGKILL the other takes its
// partitions over and the orderList view still converges with nothing
// lost.
func TestScaledOutSplitApplications(t *testing.T) {
	start := time.Now()
	conn, url := pgConn(t)
	bins := buildBinaries(t, "github.com/plaithq/plait/examples/orderdesk/cmd/orderdesk-core",
		"github.com/plaithq/plait/examples/orderdesk/cmd/orderdesk-lists")
	t.Logf("built the two applications in %s", time.Since(start).Round(time.Millisecond))
	kc := oneBrokerKafka(t)
	b := make([]byte, 6)
	rand.Read(b)
	prefix := "plait_test_" + hex.EncodeToString(b)
	coreSchema, listsSchema := prefix+"_core", prefix+"_lists"
	t.Cleanup(func() {
		for _, s := range []string{coreSchema, listsSchema} {
			conn.Exec(context.Background(), `DROP SCHEMA IF EXISTS `+pgx.Identifier{s}.Sanitize()+` CASCADE`)
		}
	})
	brokers := strings.Join(kc.ListenAddrs(), ",")
	common := []string{"--kafka", brokers, "--postgres", url, "--topic-prefix", prefix, "--partitions", "4", "--session-timeout", "1500ms"}
	// No --group: each application's group is its name.
	core := startInstance(t, bins["orderdesk-core"], "core", append(common, "--pg-schema", coreSchema)...)
	// The lists read the core's events in its schema when they rebuild a view.
	listsArgs := append(common, "--pg-schema", listsSchema, "--events-schemas", coreSchema)
	l1 := startInstance(t, bins["orderdesk-lists"], "lists1", listsArgs...)
	l2 := startInstance(t, bins["orderdesk-lists"], "lists2", listsArgs...)

	// The groups: one per application, the lists' with both its instances.
	kcl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer kcl.Close()
	adm := kadm.NewClient(kcl)
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		groups, err := adm.DescribeGroups(ctx, "orderdesk_core", "orderdesk_lists")
		lists := groups["orderdesk_lists"]
		if err == nil && len(groups["orderdesk_core"].Members) == 1 && len(lists.Members) == 2 && lists.State == "Stable" &&
			len(eventPartitions(l1.log(), 0)) > 0 && len(eventPartitions(l2.log(), 0)) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the groups did not settle: %+v (err %v)", groups, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := listed.Groups()
	slices.Sort(names)
	if !slices.Contains(names, "orderdesk_core") || !slices.Contains(names, "orderdesk_lists") {
		t.Fatalf("consumer groups %v: want orderdesk_core and orderdesk_lists", names)
	}
	t.Logf("groups %v after %s", names, time.Since(start).Round(time.Millisecond))
	// The core's group consumes the core's commands only; the lists' group
	// its views' commands and the events of the types its reactors read.
	groups, _ := adm.DescribeGroups(ctx, "orderdesk_core", "orderdesk_lists")
	topicsOf := func(g kadm.DescribedGroup) []string {
		seen := map[string]bool{}
		for _, m := range g.Members {
			if a, ok := m.Assigned.AsConsumer(); ok {
				for _, tp := range a.Topics {
					seen[tp.Topic] = true
				}
			}
		}
		return keys(seen)
	}
	coreTopics, listsTopics := topicsOf(groups["orderdesk_core"]), topicsOf(groups["orderdesk_lists"])
	slices.Sort(coreTopics)
	slices.Sort(listsTopics)
	wantCore := []string{prefix + ".customer.commands", prefix + ".order.commands"}
	wantLists := []string{prefix + ".customer.events", prefix + ".customerOrders.commands", prefix + ".customerOrders.events",
		prefix + ".order.events", prefix + ".orderList.commands"}
	if !slices.Equal(coreTopics, wantCore) || !slices.Equal(listsTopics, wantLists) {
		t.Fatalf("assigned topics: core %v, lists %v; want %v and %v", coreTopics, listsTopics, wantCore, wantLists)
	}

	const customers = 6
	posted := 0
	send := func(cmd map[string]any) {
		t.Helper()
		for try := 0; ; try++ {
			ok, err := post(core.base, cmd)
			if ok {
				posted++
				return
			}
			if try > 20 {
				t.Fatalf("command %s not acknowledged: %v", cmd["id"], err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	placeOrders := func(from, to int) {
		for i := from; i < to; i++ {
			send(map[string]any{"id": fmt.Sprintf("po%d", i), "type": "order", "aggregateId": fmt.Sprintf("ord%d", i), "name": "place",
				"data": map[string]any{"customerId": fmt.Sprintf("cust%d", i%customers), "lines": []map[string]any{
					{"sku": "a", "qty": 1 + i%3, "price": 2.5}, {"sku": "b", "qty": 1, "price": float64(i)}}}})
			if i%4 == 0 {
				send(map[string]any{"id": fmt.Sprintf("so%d", i), "type": "order", "aggregateId": fmt.Sprintf("ord%d", i), "name": "ship", "data": map[string]any{}})
			}
			if i%9 == 0 {
				c := i % customers
				send(map[string]any{"id": fmt.Sprintf("rn%d", i), "type": "customer", "aggregateId": fmt.Sprintf("cust%d", c),
					"name": "rename", "data": map[string]any{"name": fmt.Sprintf("Customer %d v%d", c, i)}})
			}
		}
	}
	tbl := func(schema, name string) string { return pgx.Identifier{schema, name}.Sanitize() }
	// converged waits until the lists application's orderList, as served
	// by in, agrees with the core's orders and customers.
	converged := func(in *instance, orders int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		var diff string
		for {
			diff = ""
			names := map[string]string{}
			rows, _ := conn.Query(ctx, `SELECT id, state->>'name' FROM `+tbl(coreSchema, "instances")+` WHERE type = 'customer'`)
			for rows.Next() {
				var id, name string
				rows.Scan(&id, &name)
				names[id] = name
			}
			rows.Close()
			type item struct {
				ID           string  `json:"id"`
				CustomerName string  `json:"customerName"`
				Total        float64 `json:"total"`
				Status       string  `json:"status"`
			}
			var page struct{ Items []item }
			resp, err := client.Get(in.base + "/lists/orderList?limit=1000&fields=customerName,total,status")
			if err == nil {
				json.NewDecoder(resp.Body).Decode(&page)
				resp.Body.Close()
			}
			items := map[string]item{}
			for _, it := range page.Items {
				items[it.ID] = it
			}
			type orderDoc struct {
				CustomerID string `json:"customerId"`
				Lines      []struct {
					Qty   int     `json:"qty"`
					Price float64 `json:"price"`
				} `json:"lines"`
				Status string `json:"status"`
			}
			rows, _ = conn.Query(ctx, `SELECT id, state FROM `+tbl(coreSchema, "instances")+` WHERE type = 'order'`)
			n := 0
			for rows.Next() {
				var id string
				var o orderDoc
				rows.Scan(&id, &o)
				n++
				want := item{ID: id, CustomerName: names[o.CustomerID], Status: o.Status}
				for _, l := range o.Lines {
					want.Total += float64(l.Qty) * l.Price
				}
				got := items[id]
				if got.CustomerName != want.CustomerName || got.Status != want.Status || math.Abs(got.Total-want.Total) > 1e-6 {
					diff = fmt.Sprintf("%s: item %+v, want %+v", id, got, want)
				}
			}
			rows.Close()
			if n != orders {
				diff = fmt.Sprintf("%d orders, want %d", n, orders)
			}
			if diff == "" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("orderList of %s did not converge: %s", in.name, diff)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	for i := range customers {
		send(map[string]any{"id": fmt.Sprintf("cc%d", i), "type": "customer", "aggregateId": fmt.Sprintf("cust%d", i),
			"name": "create", "data": map[string]any{"name": fmt.Sprintf("Customer %d", i), "email": fmt.Sprintf("c%d@example.com", i)}})
	}
	placeOrders(0, 60)
	converged(l1, 60)
	converged(l2, 60)
	t.Logf("orderList converged on both lists instances after %s (%d commands to the core)", time.Since(start).Round(time.Millisecond), posted)

	// Each reaction was computed by one instance: together they sent each
	// reaction command once, and both did their share. An instance counts
	// a batch's reactions once it has committed the batch's offset, after
	// their commands are decided: the counts catch up with the commands.
	var listCommands, r1, r2 int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+tbl(listsSchema, "commands")).Scan(&listCommands); err != nil {
			t.Fatal(err)
		}
		r1, r2 = reactions(t, l1), reactions(t, l2)
		if r1+r2 >= listCommands || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("reactions: lists1 %d, lists2 %d; %d commands decided by the lists application", r1, r2, listCommands)
	if r1 == 0 || r2 == 0 || r1+r2 != listCommands {
		t.Fatalf("reactions: lists1 sent %d, lists2 %d, want both some and %d in all (each once)", r1, r2, listCommands)
	}
	if rc := reactions(t, core); rc != 0 {
		t.Fatalf("the core sent %d reactions; it has no reactor", rc)
	}
	// The core's one instance publishes its events, which the lists read:
	// its publisher holds the lease, and has published them.
	if h, p := metric(t, core, "plait_publisher_holding"), metric(t, core, "plait_publisher_published_total"); h != 1 || p < 60 {
		t.Fatalf("the core's publisher: holding %d, published %d; want 1 and the events of 60 orders at least", h, p)
	}
	if cp := metric(t, core, "plait_publisher_checkpoint"); cp <= 0 {
		t.Fatalf("the core's publisher checkpoint: %d", cp)
	}
	if h1, h2 := metric(t, l1, "plait_publisher_holding"), metric(t, l2, "plait_publisher_holding"); h1+h2 != 1 {
		t.Fatalf("of the lists' two instances, %d hold their publisher's lease, want 1", h1+h2)
	}
	// The core application's schema holds no view, the lists' no order.
	var n int
	conn.QueryRow(ctx, `SELECT count(*) FROM `+tbl(coreSchema, "instances")+` WHERE type IN ('orderList', 'customerOrders')`).Scan(&n)
	if n != 0 {
		t.Fatalf("the core's schema holds %d view instances", n)
	}
	conn.QueryRow(ctx, `SELECT count(*) FROM `+tbl(listsSchema, "instances")+` WHERE type IN ('order', 'customer')`).Scan(&n)
	if n != 0 {
		t.Fatalf("the lists' schema holds %d orders or customers", n)
	}

	// Kill one lists instance: the other takes its partitions over.
	from := len(l1.log())
	l2.kill()
	t.Logf("killed lists2 after %s", time.Since(start).Round(time.Millisecond))
	var wg sync.WaitGroup
	wg.Go(func() {
		deadline := time.Now().Add(30 * time.Second)
		for len(eventPartitions(l1.log(), from)) == 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	})
	placeOrders(60, 120)
	wg.Wait()
	if len(eventPartitions(l1.log(), from)) == 0 {
		t.Fatalf("lists1 was assigned no events partition after lists2 died\n%s", l1.log()[from:])
	}
	converged(l1, 120)
	t.Logf("orderList converged on lists1 alone after %s", time.Since(start).Round(time.Millisecond))
	resp, err := client.Get(l1.base + "/aggregates/orderList/ord119")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET orderList/ord119 from lists1: %v %v", resp, err)
	}
	resp.Body.Close()
	// The orderdesk UI needs all three types from one server, so neither
	// part serves it: a browser gets plait.js alone.
	for _, in := range []*instance{core, l1} {
		for path, want := range map[string]int{"/": http.StatusNotFound, "/plait.js": http.StatusOK} {
			resp, err := client.Get(in.base + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Fatalf("GET %s from %s: %d, want %d", path, in.name, resp.StatusCode, want)
			}
		}
	}

	// The orderList rebuilt through lists1, from the core's events in its
	// schema and the lists' own: every item as it was, field and lineage.
	listAll := func() string {
		t.Helper()
		resp, err := client.Get(l1.base + "/lists/orderList?limit=1000")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("list the orderList: %v %v", resp, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	before := listAll()
	if out, err := exec.Command(bins["orderdesk-lists"], "replay", "--view", "orderList", "--server", l1.base).CombinedOutput(); err != nil {
		t.Fatalf("replay --view orderList through lists1: %v\n%s", err, out)
	}
	if after := listAll(); after != before {
		t.Fatalf("the rebuilt orderList differs from the live one:\nbefore %s\nafter  %s", before, after)
	}
	converged(l1, 120)
	t.Logf("orderList rebuilt through lists1 after %s", time.Since(start).Round(time.Millisecond))

	// plait inspect, scaled out: nothing left to handle, every partition of
	// the lists' group owned by lists1, the only one left.
	inspectArgs := func(schema string) []string {
		return []string{"inspect", "--kafka", brokers, "--postgres", url, "--pg-schema", schema, "--topic-prefix", prefix}
	}
	var lists inspected
	deadline = time.Now().Add(30 * time.Second)
	for {
		lists = inspect(t, bins["orderdesk-lists"], inspectArgs(listsSchema)...)
		if lists.lag(prefix+".") == 0 && lists.publisherLag == 0 && lists.owners()["-"] == 0 && len(lists.owners()) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("inspect of the lists: want no lag and one owner\n%s", lists.out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(lists.parts) != 5*4 || !strings.Contains(lists.out, "group orderdesk_lists: Stable, 1 members") {
		t.Fatalf("inspect of the lists: want the group and its 20 partitions\n%s", lists.out)
	}
	t.Logf("inspect of the lists:\n%s", lists.out)

	// With lists1 gone too, what the core decides waits in the events
	// topics: inspect shows it as the lists' lag, one per order placed.
	l1.kill()
	for i := 120; i < 125; i++ {
		send(map[string]any{"id": fmt.Sprintf("po%d", i), "type": "order", "aggregateId": fmt.Sprintf("ord%d", i), "name": "place",
			"data": map[string]any{"customerId": "cust1", "lines": []map[string]any{{"sku": "a", "qty": 1, "price": 1}}}})
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		c := inspect(t, bins["orderdesk-core"], inspectArgs(coreSchema)...)
		if c.publisherLag == 0 && c.lag(prefix+".") == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("inspect of the core: want its commands decided and its events published\n%s", c.out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	lists = inspect(t, bins["orderdesk-lists"], inspectArgs(listsSchema)...)
	if got := lists.lag(prefix + ".order.events"); got != 5 {
		t.Fatalf("inspect of the lists: lag %d on order.events, want 5 (the orders placed since lists1 died)\n%s", got, lists.out)
	}
	if got := lists.lag(prefix + ".customer."); got != 0 {
		t.Fatalf("inspect of the lists: lag %d on the customer events, want 0\n%s", got, lists.out)
	}
}

// inspected is the output of plait inspect --kafka … --postgres ….
type inspected struct {
	out          string
	publisherLag int64
	parts        []inspectedPartition
}

type inspectedPartition struct {
	topic, kind, owner string
	partition          int
	handled, end, lag  int64
}

// lag sums the lag of the partitions of the topics starting with prefix.
func (in inspected) lag(prefix string) int64 {
	var n int64
	for _, p := range in.parts {
		if strings.HasPrefix(p.topic, prefix) {
			n += p.lag
		}
	}
	return n
}

// owners counts the partitions of each owner ("-" for none).
func (in inspected) owners() map[string]int {
	m := map[string]int{}
	for _, p := range in.parts {
		m[p.owner]++
	}
	return m
}

// inspect runs bin inspect with args and parses its tables.
func inspect(t *testing.T, bin string, args ...string) inspected {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", filepath.Base(bin), args, err, out)
	}
	in := inspected{out: string(out), publisherLag: -1}
	table := ""
	for line := range strings.SplitSeq(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
			table = ""
		case table == "" && len(f) > 1:
			table = f[0]
		case table == "SUBSCRIPTION" && f[0] == "publisher:kafka" && len(f) == 3:
			in.publisherLag, _ = strconv.ParseInt(f[2], 10, 64)
		case table == "TOPIC" && len(f) >= 7:
			p := inspectedPartition{topic: f[0], kind: f[1], owner: strings.Join(f[6:], " ")}
			p.partition, _ = strconv.Atoi(f[2])
			p.handled, _ = strconv.ParseInt(f[3], 10, 64)
			p.end, _ = strconv.ParseInt(f[4], 10, 64)
			p.lag, _ = strconv.ParseInt(f[5], 10, 64)
			if p.lag != p.end-p.handled {
				t.Fatalf("inspect: %s/%d: lag %d, handled %d, end %d\n%s", p.topic, p.partition, p.lag, p.handled, p.end, out)
			}
			in.parts = append(in.parts, p)
		}
	}
	return in
}
