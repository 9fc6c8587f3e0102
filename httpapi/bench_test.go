package httpapi_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/httpapi"
)

// benchmarkPost runs POST /commands through the handler, with no network:
// decode, authenticate, submit to the engine, durable commit on SQLite and
// answer. Commands spread over 64 counters, from 16 clients per CPU.
func benchmarkPost(b *testing.B, query string, auth bool) {
	h := start(b, plait.App{}, httpapi.Options{}, !auth)
	tok := ""
	if auth {
		tok = "Bearer " + token(b, "ann")
	}
	var n atomic.Int64
	b.SetParallelism(16) // many clients at once, as over HTTP: group commit
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			body := fmt.Sprintf(`{"id":"b%d","type":"counter","aggregateId":"c%d","name":"add","data":{"by":1}}`, i, i%64)
			req := httptest.NewRequest("POST", "http://127.0.0.1/commands"+query, strings.NewReader(body))
			if tok != "" {
				req.Header.Set("Authorization", tok)
			}
			w := httptest.NewRecorder()
			h.srv.ServeHTTP(w, req)
			if w.Code != http.StatusAccepted && w.Code != http.StatusOK {
				b.Fatalf("%d %s", w.Code, w.Body)
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(n.Load())/b.Elapsed().Seconds(), "commands/s")
}

func BenchmarkPostCommand(b *testing.B)            { benchmarkPost(b, "", false) }
func BenchmarkPostCommandWithJWT(b *testing.B)     { benchmarkPost(b, "", true) }
func BenchmarkPostCommandWaitOutcome(b *testing.B) { benchmarkPost(b, "?wait=outcome", false) }
