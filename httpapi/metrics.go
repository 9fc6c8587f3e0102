package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strconv"
	"strings"

	"github.com/plaithq/plait/engine"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the server's Prometheus series, in a registry of its own.
type metrics struct {
	reg             *prometheus.Registry
	commands        *prometheus.CounterVec   // type, name, status
	commandDuration *prometheus.HistogramVec // type, wait
	requests        *prometheus.CounterVec   // route, code
	inFlight        prometheus.Gauge
	streams         prometheus.Gauge
}

func newMetrics(e *engine.Engine, running func() bool) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plait_commands_total",
			Help: "Commands posted, by aggregate type, command name and status (accepted, rejected, pending, invalid, unauthorized, limited, forbidden, unavailable).",
		}, []string{"type", "name", "status"}),
		commandDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "plait_command_duration_seconds",
			Help:    "Time to answer POST /commands, by aggregate type and wait mode.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"type", "wait"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plait_http_requests_total",
			Help: "HTTP requests answered, by route pattern and status code.",
		}, []string{"route", "code"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "plait_http_requests_in_flight",
			Help: "HTTP requests being served, the scrape that reads it among them; an SSE stream until the relay takes it over (then see plait_sse_streams).",
		}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "plait_sse_streams",
			Help: "Open SSE streams.",
		}),
	}
	m.reg.MustRegister(
		m.commands, m.commandDuration, m.requests, m.inFlight, m.streams,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "plait_feed_head",
			Help: "The last position published to the feed.",
		}, func() float64 {
			if !running() {
				return 0
			}
			return float64(e.Head())
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "plait_reactions_total",
			Help: "Commands the reactors sent from this instance: scaled out, each reaction is computed by the instance that owns the event's partition.",
		}, func() float64 { return float64(e.Stats().Reactions) }),
		&lagCollector{e: e, running: running},
		&engineCollector{e: e},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

func (m *metrics) request(route string, code int) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
}

// lagCollector reports how far each subscription is behind the feed's head.
type lagCollector struct {
	e       *engine.Engine
	running func() bool
}

var lagDesc = prometheus.NewDesc("plait_subscription_lag",
	"How far a consumer is behind: embedded, the feed positions a reactor has yet to consume; scaled out, the records of the partitions this instance owns not handled yet, per reactor and for the commands (name=\"commands\"), which sum over the instances.", []string{"name"}, nil)

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- lagDesc }

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	if !c.running() {
		return
	}
	for _, l := range c.e.Lags() {
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(l.Behind), l.Name)
	}
}

// engineCollector reports the engine's counters: the outcomes it decided,
// reactors' commands included, and its group commits.
type engineCollector struct{ e *engine.Engine }

var (
	outcomesDesc = prometheus.NewDesc("plait_outcomes_total",
		"Outcomes the engine decided here, by aggregate type and status (accepted, rejected), reactors' commands included: a view's rejections are a reactor's commands its view refused.",
		[]string{"type", "status"}, nil)
	duplicatesDesc = prometheus.NewDesc("plait_duplicates_total",
		"Commands sent again under an id that had its outcome already.", nil, nil)
	commitsDesc = prometheus.NewDesc("plait_commits_total",
		"Group commits, by result (ok, error).", []string{"result"}, nil)
	committedDesc = prometheus.NewDesc("plait_committed_commands_total",
		"Commands written by the group commits.", nil, nil)
	commitSecondsDesc = prometheus.NewDesc("plait_commit_seconds_total",
		"Time spent in successful group commits.", nil, nil)
)

func (c *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{outcomesDesc, duplicatesDesc, commitsDesc, committedDesc, commitSecondsDesc} {
		ch <- d
	}
}

func (c *engineCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.e.Stats()
	for typ, t := range st.Types {
		ch <- prometheus.MustNewConstMetric(outcomesDesc, prometheus.CounterValue, float64(t.Accepted), typ, "accepted")
		ch <- prometheus.MustNewConstMetric(outcomesDesc, prometheus.CounterValue, float64(t.Rejected), typ, "rejected")
	}
	ch <- prometheus.MustNewConstMetric(duplicatesDesc, prometheus.CounterValue, float64(st.Duplicates))
	ch <- prometheus.MustNewConstMetric(commitsDesc, prometheus.CounterValue, float64(st.Commits), "ok")
	ch <- prometheus.MustNewConstMetric(commitsDesc, prometheus.CounterValue, float64(st.CommitErrors), "error")
	ch <- prometheus.MustNewConstMetric(committedDesc, prometheus.CounterValue, float64(st.Committed))
	ch <- prometheus.MustNewConstMetric(commitSecondsDesc, prometheus.CounterValue, st.CommitTime.Seconds())
}

// metricsAuth lets through to h the requests that bear Options.MetricsToken,
// every request if there is none.
func (s *Server) metricsAuth(h http.Handler) http.Handler {
	if s.opts.MetricsToken == "" {
		return h
	}
	want := sha256.Sum256([]byte(s.opts.MetricsToken))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		// Digests compared, so that the time taken tells nothing of the
		// token, not even its length.
		got := sha256.Sum256([]byte(strings.TrimSpace(token)))
		if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			writeProblem(w, unauthorized("GET /metrics asks for the metrics token"))
			return
		}
		h.ServeHTTP(w, r)
	})
}
