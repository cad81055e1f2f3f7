// Package metrics is what kura tells Prometheus: requests by surface,
// operation and status, attestation verdicts, key releases, seal state,
// cache hit ratios, store latency and the expiry of keys and collateral.
//
// Every label takes its values from a bounded set fixed by kura's code
// (route patterns, TEE types, reason classes, store operations): never a
// key name, a token, a claim value or anything a client chooses freely.
package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds kura's collectors in a registry of its own.
type Metrics struct {
	reg *prometheus.Registry

	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	attestations *prometheus.CounterVec
	releases     *prometheus.CounterVec
	storeLatency *prometheus.HistogramVec
	storeErrors  *prometheus.CounterVec
	collateral   *prometheus.CounterVec

	src atomic.Pointer[Sources]
}

// New makes the collectors, with Go runtime and process metrics beside them.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kura_http_requests_total",
		Help: "HTTP requests by surface (maa, keyvault, identity, operator, ledger, kura), operation (the route pattern) and status code."},
		[]string{"surface", "operation", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kura_http_request_duration_seconds",
		Help: "HTTP request latency by surface and operation.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)},
		[]string{"surface", "operation"})
	m.attestations = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kura_attestations_total",
		Help: "Attestations by TEE type and verdict (accepted, refused_evidence, refused_policy, error)."},
		[]string{"tee", "verdict"})
	m.releases = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kura_key_releases_total",
		Help: "Secure key releases by result (granted, denied) and the denial's reason class (token, key, policy, nonce, tee-key, error)."},
		[]string{"result", "reason"})
	m.storeLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kura_store_operation_duration_seconds",
		Help: "Database statement and commit latency by operation (read, write, commit; with group commit one commit serves several transactions).", Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16)},
		[]string{"op"})
	m.storeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kura_store_errors_total",
		Help: "Database statements and commits that failed, by operation."}, []string{"op"})
	m.collateral = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kura_collateral_lookups_total",
		Help: "Collateral lookups in kura's cache by kind and result (hit: on file; miss: not on file, fetched or refused)."},
		[]string{"kind", "result"})
	m.reg.MustRegister(m.requests, m.latency, m.attestations, m.releases, m.storeLatency, m.storeErrors, m.collateral,
		newServiceCollector(m), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Request counts one HTTP request. pattern is the route pattern that
// served it ("" when none matched); a 404 for an unknown path does not
// become a label of its own.
func (m *Metrics) Request(pattern string, code int, d time.Duration) {
	op := pattern
	if op == "" || op == "/" { // no route, or the catch-all that answers 404 (or 503 while sealed)
		op = "unmatched"
	}
	s := Surface(pattern)
	m.requests.WithLabelValues(s, op, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(s, op).Observe(d.Seconds())
}

// Surface names the API a route pattern belongs to.
func Surface(pattern string) string {
	_, path, ok := strings.Cut(pattern, " ")
	if !ok {
		path = pattern
	}
	switch {
	case path == "":
		return "none"
	case strings.HasPrefix(path, "/keys"), strings.HasPrefix(path, "/deletedkeys"), strings.HasPrefix(path, "/rng"):
		return "keyvault"
	case strings.HasPrefix(path, "/attest/"), strings.HasPrefix(path, "/policies/"), strings.HasPrefix(path, "/certificates"),
		path == "/certs", strings.HasPrefix(path, "/.well-known/"):
		return "maa"
	case strings.HasPrefix(path, "/oauth2/"), strings.HasPrefix(path, "/kura/v1/principals"):
		return "identity"
	case strings.HasPrefix(path, "/kura/v1/operator/"):
		return "operator"
	case strings.HasPrefix(path, "/kura/v1/ledger/"):
		return "ledger"
	}
	return "kura"
}

// Attested counts one attestation verdict.
func (m *Metrics) Attested(tee, verdict string) { m.attestations.WithLabelValues(tee, verdict).Inc() }

// Released counts one release decision.
func (m *Metrics) Released(granted bool, class string) {
	if granted {
		m.releases.WithLabelValues("granted", "").Inc()
		return
	}
	m.releases.WithLabelValues("denied", class).Inc()
}

// StoreOp observes one database statement or commit.
func (m *Metrics) StoreOp(op string, d time.Duration, err error) {
	m.storeLatency.WithLabelValues(op).Observe(d.Seconds())
	if err != nil {
		m.storeErrors.WithLabelValues(op).Inc()
	}
}

// CollateralLookup counts one collateral lookup.
func (m *Metrics) CollateralLookup(kind string, hit bool) {
	r := "miss"
	if hit {
		r = "hit"
	}
	m.collateral.WithLabelValues(kind, r).Inc()
}

// Sealed publishes the seal state (1 sealed, 0 unsealed) as read by f.
func (m *Metrics) Sealed(f func() bool) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kura_sealed",
		Help: "1 while the root of trust is sealed (kura answers 503), 0 once unsealed."}, func() float64 {
		if f() {
			return 1
		}
		return 0
	}))
}

// Sources are what the gauges of the unsealed services read at scrape
// time. Each unseal binds the services it started (a seal and unseal
// builds them anew); a nil field is not published.
type Sources struct {
	KeyCache         func() (hits, misses uint64)
	TokenKeyExpiry   func() time.Time // the active token-signing key's certificate
	ReleaseKeyExpiry func() time.Time // the active release-signing key's certificate (x5c[0])
	CollateralExpiry func() (map[string]time.Time, error)
}

// Bind makes the gauges read src.
func (m *Metrics) Bind(src Sources) { m.src.Store(&src) }

func (m *Metrics) sources() Sources {
	if p := m.src.Load(); p != nil {
		return *p
	}
	return Sources{}
}

// serviceCollector publishes the bound Sources.
type serviceCollector struct {
	m                                  *Metrics
	keyCache, tokenExp, releaseExp, ce *prometheus.Desc
}

func newServiceCollector(m *Metrics) serviceCollector {
	return serviceCollector{m: m,
		keyCache: prometheus.NewDesc("kura_key_cache_lookups_total",
			"Key-version lookups by result: hit (served from memory) or miss (read from the store).", []string{"result"}, nil),
		tokenExp: prometheus.NewDesc("kura_token_signing_key_expiry_timestamp_seconds",
			"When the certificate of the active token-signing key expires (Unix seconds).", nil, nil),
		releaseExp: prometheus.NewDesc("kura_release_signing_key_expiry_timestamp_seconds",
			"When the certificate of the active release-signing key (x5c[0] of release answers) expires (Unix seconds).", nil, nil),
		ce: prometheus.NewDesc("kura_collateral_expiry_timestamp_seconds",
			"When the first collateral item of each kind on file expires (Unix seconds): the earliest of each key's newest item.",
			[]string{"kind"}, nil),
	}
}

func (c serviceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.keyCache
	ch <- c.tokenExp
	ch <- c.releaseExp
	ch <- c.ce
}

func (c serviceCollector) Collect(ch chan<- prometheus.Metric) {
	src := c.m.sources()
	if f := src.KeyCache; f != nil {
		h, mi := f()
		ch <- prometheus.MustNewConstMetric(c.keyCache, prometheus.CounterValue, float64(h), "hit")
		ch <- prometheus.MustNewConstMetric(c.keyCache, prometheus.CounterValue, float64(mi), "miss")
	}
	for _, g := range []struct {
		d *prometheus.Desc
		f func() time.Time
	}{{c.tokenExp, src.TokenKeyExpiry}, {c.releaseExp, src.ReleaseKeyExpiry}} {
		if g.f == nil {
			continue
		}
		if t := g.f(); !t.IsZero() {
			ch <- prometheus.MustNewConstMetric(g.d, prometheus.GaugeValue, float64(t.Unix()))
		}
	}
	if f := src.CollateralExpiry; f != nil {
		exp, err := f()
		if err != nil {
			ch <- prometheus.NewInvalidMetric(c.ce, err)
			return
		}
		for kind, t := range exp {
			ch <- prometheus.MustNewConstMetric(c.ce, prometheus.GaugeValue, float64(t.Unix()), kind)
		}
	}
}
