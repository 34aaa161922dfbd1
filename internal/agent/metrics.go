package agent

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/maildist/maildist/internal/agent/pki"
)

// metrics are an agent's Prometheus metrics, in a registry of its own.
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	errors    *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	transfers *prometheus.CounterVec
	moves     *prometheus.CounterVec
	bytesIn   prometheus.Counter
	bytesOut  prometheus.Counter
	wireIn    prometheus.Counter
	wireOut   prometheus.Counter
	held      prometheus.Gauge
	holdTime  prometheus.Histogram
	refused   prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "maildist_agent_requests_total",
			Help: "Requests by endpoint and outcome code."}, []string{"endpoint", "code"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "maildist_agent_errors_total",
			Help: "Requests that failed or were refused, by endpoint and error code; a GET of a path that is not there is an answer, not one of them."}, []string{"endpoint", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "maildist_agent_request_seconds",
			Help: "Time to answer a request, by endpoint.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}, []string{"endpoint"}),
		transfers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "maildist_agent_transfers_total",
			Help: "Tree transfers by direction (push, import, export) and outcome."}, []string{"direction", "outcome"}),
		moves: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "maildist_agent_moves_total",
			Help: "Holds ended on this host: moved (the user left) or undone."}, []string{"outcome"}),
		bytesIn:  prometheus.NewCounter(prometheus.CounterOpts{Name: "maildist_agent_received_bytes_total", Help: "Content bytes written by imports."}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{Name: "maildist_agent_sent_bytes_total", Help: "Content bytes sent by pushes and exports."}),
		wireIn:   prometheus.NewCounter(prometheus.CounterOpts{Name: "maildist_agent_received_wire_bytes_total", Help: "Stream bytes received (after compression)."}),
		wireOut:  prometheus.NewCounter(prometheus.CounterOpts{Name: "maildist_agent_sent_wire_bytes_total", Help: "Stream bytes sent (after compression)."}),
		held:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "maildist_agent_held_users", Help: "Users held on this host now (since the agent started)."}),
		holdTime: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "maildist_agent_hold_seconds",
			Help: "How long users were held on this host.", Buckets: prometheus.ExponentialBuckets(0.1, 2, 14)}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "maildist_agent_refused_connections_total",
			Help: "TLS handshakes refused (no client certificate, another CA, …)."}),
	}
	m.reg.MustRegister(m.requests, m.errors, m.latency, m.transfers, m.moves, m.bytesIn, m.bytesOut, m.wireIn, m.wireOut,
		m.held, m.holdTime, m.refused,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request, _ pki.Identity) error {
	promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	return nil
}
