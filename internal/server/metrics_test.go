package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kura-project/kura/internal/attest/sim"
	"github.com/kura-project/kura/internal/config"
)

// scrape reads /metrics through the handler and parses it with the
// Prometheus text parser.
func (r *rig) scrape(t *testing.T, bearer string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body, h := r.do("GET", "/metrics", nil, "Authorization", "Bearer "+bearer)
	if code != 200 {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("content type %q", ct)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("the metrics do not parse: %v\n%s", err, body)
	}
	return fams
}

// value sums the samples of family name whose labels include want.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
	sum, found := 0.0, false
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum, found
}

// principalToken creates a principal with a role and returns its token.
func (r *rig) principalToken(t *testing.T, name, role string) string {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"name": name, "role": role})
	code, resp, _ := r.do("POST", "/kura/v1/principals", b, r.admin_()...)
	if code != 201 && code != 200 {
		t.Fatalf("create principal: %d %s", code, resp)
	}
	var p struct {
		ID           string `json:"id"`
		ClientSecret string `json:"client_secret"`
	}
	json.Unmarshal(resp, &p)
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {p.ID}, "client_secret": {p.ClientSecret}}
	code, resp, _ = r.do("POST", "/oauth2/token", []byte(form.Encode()), "Content-Type", "application/x-www-form-urlencoded")
	if code != 200 {
		t.Fatalf("token: %d %s", code, resp)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.Unmarshal(resp, &tok)
	return tok.AccessToken
}

// TestMetrics scrapes /metrics, parses it with the Prometheus text parser,
// and checks that the counters move with what kura does, that labels are
// bounded (no key name, token or claim value), and who may read it.
func TestMetrics(t *testing.T) {
	r := newRig(t, time.Now(), issuerOpt)
	auditor := r.principalToken(t, "scraper", "auditor")
	before := r.scrape(t, auditor)
	if v, ok := value(before, "kura_sealed", nil); !ok || v != 0 {
		t.Errorf("kura_sealed = %v (%v), want 0", v, ok)
	}

	// An accepted attestation, one refused for its evidence, one for policy.
	g := newTEE(t)
	tok := g.token(t, r, "", sim.Options{}, nil)
	if code, _, _ := r.do("POST", attestPath, []byte(`{"report":"AAAA"}`)); code != 400 {
		t.Fatalf("bad evidence: %d", code)
	}
	// A release granted and one denied by policy; the key's name must not
	// become a label.
	const secretName = "payroll-master-key-7c1d"
	r.importKey(t, secretName, true, releasePolicy(kuraIssuer, nil, cond("x-ms-attestation-type", "equals", "sevsnpvm")))
	if code, resp := r.release(t, secretName, tok, "", ""); code != 200 {
		t.Fatalf("release: %d %s", code, resp)
	}
	r.importKey(t, "denied-key", true, releasePolicy(kuraIssuer, nil, cond("x-ms-attestation-type", "equals", "tdxvm")))
	if code, _ := r.release(t, "denied-key", tok, "", ""); code != 403 {
		t.Fatalf("release against policy: %d", code)
	}
	code, _, _ := r.do("GET", "/keys/"+secretName+"?api-version=2025-07-01", nil, r.admin_()...)
	if code != 200 {
		t.Fatalf("get key: %d", code)
	}

	after := r.scrape(t, auditor)
	moved := func(name string, labels map[string]string, by float64) {
		t.Helper()
		b, _ := value(before, name, labels)
		a, ok := value(after, name, labels)
		if !ok || a-b < by {
			t.Errorf("%s%v moved by %v, want at least %v", name, labels, a-b, by)
		}
	}
	moved("kura_attestations_total", map[string]string{"tee": "SevSnpVm", "verdict": "accepted"}, 1)
	moved("kura_attestations_total", map[string]string{"verdict": "refused_evidence"}, 1)
	moved("kura_key_releases_total", map[string]string{"result": "granted"}, 1)
	moved("kura_key_releases_total", map[string]string{"result": "denied", "reason": "policy"}, 1)
	moved("kura_http_requests_total", map[string]string{"surface": "maa", "operation": "POST /attest/{type}", "code": "200"}, 1)
	moved("kura_http_requests_total", map[string]string{"surface": "keyvault", "code": "403"}, 1)
	moved("kura_http_request_duration_seconds", map[string]string{"surface": "keyvault"}, 3)
	moved("kura_http_requests_total", map[string]string{"surface": "identity"}, 0)
	moved("kura_store_operation_duration_seconds", map[string]string{"op": "commit"}, 1)
	moved("kura_store_operation_duration_seconds", map[string]string{"op": "read"}, 1)
	moved("kura_collateral_lookups_total", nil, 1)
	if h, _ := value(after, "kura_key_cache_lookups_total", map[string]string{"result": "hit"}); h < 1 {
		t.Errorf("key cache hits %v, want the second read of a key served from memory", h)
	}
	for _, name := range []string{"kura_token_signing_key_expiry_timestamp_seconds", "kura_release_signing_key_expiry_timestamp_seconds"} {
		if v, _ := value(after, name, nil); v < float64(time.Now().Unix()) {
			t.Errorf("%s = %v, not in the future", name, v)
		}
	}
	if _, ok := after["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
	// Bounded labels: nothing a tenant or a token chose.
	_, raw, _ := r.do("GET", "/metrics", nil, "Authorization", "Bearer "+auditor)
	for _, leak := range []string{secretName, "denied-key", tok[:40], auditor, "scraper"} {
		if bytes.Contains(raw, []byte(leak)) {
			t.Errorf("the metrics carry %q", leak)
		}
	}

	// Who may read: no token 401, a crypto user 403, the admin token 200.
	if code, _, h := r.do("GET", "/metrics", nil); code != 401 || h.Get("WWW-Authenticate") == "" {
		t.Errorf("anonymous: %d", code)
	}
	user := r.principalToken(t, "user", "crypto-user")
	if code, _, _ := r.do("GET", "/metrics", nil, "Authorization", "Bearer "+user); code != 403 {
		t.Errorf("crypto-user: %d", code)
	}
	if code, _, _ := r.do("GET", "/metrics", nil, r.admin_()...); code != 200 {
		t.Errorf("admin token: %d", code)
	}
}

// TestMetricsAddr: --metrics-addr serves /metrics in plain HTTP without
// authentication, and nothing else.
func TestMetricsAddr(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir, cfg.Dev, cfg.Addr, cfg.MetricsAddr = t.TempDir(), true, "127.0.0.1:0", "127.0.0.1:0"
	srv, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan net.Addr, 1)
	go func() { done <- srv.Serve(ctx, func(a net.Addr) { ready <- a }) }()
	<-ready
	var addr string
	for range 100 {
		if addr = srv.MetricsAddr(); addr != "" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if addr == "" {
		t.Fatal("the metrics listener did not start")
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte("kura_sealed 0")) {
		t.Errorf("metrics listener: %d\n%.300s", resp.StatusCode, body)
	}
	if resp, err := http.Get("http://" + addr + "/keys?api-version=2025-07-01"); err != nil || resp.StatusCode != 404 {
		t.Errorf("the metrics listener serves more than /metrics: %v %v", resp.StatusCode, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("shutdown: %v", err)
	}
}
