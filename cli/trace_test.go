package cli

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plaithq/plait/examples/orderdesk"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// collector is an OTLP/HTTP trace receiver: it decodes every export
// request and keeps the names of the spans, by trace id.
type collector struct {
	mu       sync.Mutex
	requests int
	bad      []string
	spans    map[string][]string // trace id (hex) → span names
	service  string
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	body, err := io.ReadAll(r.Body)
	switch {
	case err != nil:
		c.bad = append(c.bad, err.Error())
	case r.Method != http.MethodPost || r.URL.Path != "/v1/traces":
		c.bad = append(c.bad, r.Method+" "+r.URL.Path)
	case r.Header.Get("Content-Type") != "application/x-protobuf":
		c.bad = append(c.bad, "content type "+r.Header.Get("Content-Type"))
	default:
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			c.bad = append(c.bad, "decode: "+err.Error())
			break
		}
		c.requests++
		for _, rs := range req.ResourceSpans {
			for _, a := range rs.GetResource().GetAttributes() {
				if a.Key == "service.name" {
					c.service = a.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					id := string(s.TraceId)
					c.spans[id] = append(c.spans[id], s.Name)
				}
			}
		}
	}
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

// serveTraced runs plait serve with args until a customer is created and
// an order placed through it, then stops it, which flushes the spans.
func serveTraced(t *testing.T, args ...string) {
	t.Helper()
	addr := freeAddr(t)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var serveOut, serveErr bytes.Buffer
	args = append([]string{"--addr", addr, "--data", t.TempDir(), "--log-level", "warn"}, args...)
	go func() { done <- runServe(ctx, program{app: orderdesk.App()}, args, &serveOut, &serveErr) }()
	base := "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case err := <-done:
			t.Fatalf("serve: %v\n%s", err, serveErr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not start: %v\n%s", err, serveErr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, body := range []string{
		`{"id":"c1-create","type":"customer","aggregateId":"c1","name":"create","data":{"name":"Ada","email":"ada@example.com"}}`,
		`{"id":"o1-place","type":"order","aggregateId":"o1","name":"place","data":{"customerId":"c1","lines":[{"sku":"A","qty":1,"price":2}]}}`,
	} {
		resp, err := http.Post(base+"/commands?wait=settled", "application/json", strings.NewReader(body))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", body, err, resp)
		}
		resp.Body.Close()
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v\n%s", err, serveErr.String())
	}
}

func TestServeExportsSpansOverOTLP(t *testing.T) {
	for _, how := range []string{"flag", "env"} {
		t.Run(how, func(t *testing.T) {
			c := &collector{spans: map[string][]string{}}
			ts := httptest.NewServer(c)
			defer ts.Close()
			if how == "flag" {
				serveTraced(t, "--otlp-endpoint", ts.URL)
			} else {
				t.Setenv(envOTLPEndpoint, ts.URL)
				serveTraced(t)
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if len(c.bad) > 0 || c.requests == 0 {
				t.Fatalf("%d export requests; bad ones: %v", c.requests, c.bad)
			}
			if c.service != "orderdesk" {
				t.Errorf("service.name %q, want orderdesk", c.service)
			}
			// The order's trace holds the HTTP request, the command, its
			// decide and commit, the reactor hops and the view updates.
			var order []string
			for _, names := range c.spans {
				for _, n := range names {
					if n == "plait.command order.place" {
						order = names
					}
				}
			}
			got := strings.Join(order, "\n")
			for _, want := range []string{
				"POST /commands", "plait.command order.place", "plait.decide order.place", "plait.commit",
				"plait.react orderListFeed", "plait.command orderList.setOrder", "plait.decide orderList.setOrder",
				"plait.react customerNameFanout", "plait.command orderList.setCustomerName",
			} {
				if !strings.Contains(got, want+"\n") && !strings.HasSuffix(got, want) {
					t.Errorf("no span %q in the order's trace:\n%s", want, got)
				}
			}
			groups := 0
			for _, names := range c.spans {
				for _, n := range names {
					if n == "plait.group_commit" {
						groups++
					}
				}
			}
			if groups == 0 {
				t.Error("no group commit span exported")
			}
		})
	}
}

func TestServeTracingOffByDefault(t *testing.T) {
	t.Setenv(envOTLPEndpoint, "")
	t.Setenv(envOTLPTracesEndpoint, "")
	tp, stop, _, err := startTracing(context.Background(), "", "orderdesk")
	if err != nil || tp != nil {
		t.Fatalf("tracing without an endpoint: %v, %v", tp, err)
	}
	if err := stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, "serve", "--otlp-endpoint", "localhost:4318", "--data", t.TempDir()); code != 2 || !strings.Contains(stderr, "--otlp-endpoint") {
		t.Errorf("a malformed --otlp-endpoint: exit %d, %q; want 2", code, stderr)
	}
	if _, help, _ := runCLI(t, "serve", "--help"); !strings.Contains(help, "-otlp-endpoint URL") || !strings.Contains(help, envOTLPEndpoint) {
		t.Errorf("serve --help does not explain --otlp-endpoint:\n%s", help)
	}
}
