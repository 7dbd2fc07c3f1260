package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The instruments every process moves as things happen. Label values come
// from small fixed sets (outcomes, operations, HTTP statuses, error kinds,
// wait kinds, route patterns), never from ids or phones.
var (
	messages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "messages_total",
		Help: "Recipients moved to an outcome by a send, a reconciliation or a cancel: sent, failed, skipped, unknown, unconfirmed.",
	}, []string{"outcome"})

	providerRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "provider_requests_total",
		Help: "HTTP requests to the provider by operation (send, status_history, quota, find_sent) and HTTP status (no_answer: none came).",
	}, []string{"operation", "status"})

	providerLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "provider_request_duration_seconds",
		Help:    "Time from writing a provider request to its answer (or to giving up), by operation.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"operation"})

	providerErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "provider_errors_total",
		Help: "Provider errors by operation and kind: auth_failed (401), rate_limited (429 or a burst 403), unconfirmed (a send's answer lost), quota_exceeded, calls_exhausted, invalid, forbidden, not_found, transient.",
	}, []string{"operation", "kind"})

	apiCallWait = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "api_call_wait_seconds",
		Help:    "How long provider requests waited for the API-call ceiling (API_CALLS_PER_SECOND) before going out.",
		Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})

	pacingLateness = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "pacing_lateness_seconds",
		Help:    "Per send: from the account's pacing slot to the request on the wire. Above a few ms the account's next slot moves after it.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	})

	taskWaits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "task_waits_total",
		Help: "Tasks that went back to the queue to wait (not a failure), by reason.",
	}, []string{"reason"})

	apiRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "api_requests_total",
		Help: "Requests to the v1 API by route pattern and HTTP status.",
	}, []string{"route", "status"})
)

func registerInstruments(r *prometheus.Registry) {
	r.MustRegister(messages, providerRequests, providerLatency, providerErrors, apiCallWait, pacingLateness, taskWaits, apiRequests)
}

// Outcome counts a recipient moved to state by a send path (queued and
// sending are not outcomes and are not counted).
func Outcome(state string) {
	switch state {
	case "sent", "failed", "skipped", "unknown", "unconfirmed":
		messages.WithLabelValues(state).Inc()
	}
}

// ProviderRequest counts one provider request: its operation, its HTTP
// status (0: no answer) and how long it took.
func ProviderRequest(operation string, status int, took time.Duration) {
	s := "no_answer"
	if status > 0 {
		s = strconv.Itoa(status)
	}
	providerRequests.WithLabelValues(operation, s).Inc()
	providerLatency.WithLabelValues(operation).Observe(took.Seconds())
}

// ProviderError counts a provider error of kind (sender.Kind's names).
func ProviderError(operation, kind string) {
	providerErrors.WithLabelValues(operation, kind).Inc()
}

// APICallWait records a wait for the API-call ceiling.
func APICallWait(d time.Duration) { apiCallWait.Observe(d.Seconds()) }

// PacingLateness records how late after its pacing slot a send went out.
func PacingLateness(d time.Duration) { pacingLateness.Observe(d.Seconds()) }

// TaskWait counts a task that went back to wait, by its reason's label
// (see WaitLabel).
func TaskWait(label string) { taskWaits.WithLabelValues(label).Inc() }

// APIRequest counts a v1 API request by route pattern ("" for no route).
func APIRequest(route string, status int) {
	if route == "" {
		route = "unmatched"
	}
	apiRequests.WithLabelValues(route, strconv.Itoa(status)).Inc()
}
