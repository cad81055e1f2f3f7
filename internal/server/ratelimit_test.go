package server

import (
	"bytes"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/config"
)

// TestRateLimits bursts past the per-client and global limits of
// POST /attest/* and /oauth2/token: the excess is refused with 429 and
// Retry-After before any work, in each surface's error shape; another
// client is limited only by what is left globally; the clock refills them.
func TestRateLimits(t *testing.T) {
	on := true
	r := newRig(t, time.Now(), func(c *config.Config) {
		c.RateLimit = &on
		c.AttestRate = config.Rate{PerClient: 3, Global: 5}
		c.TokenRate = config.Rate{PerClient: 2}
	})
	send := func(path, from string, body string) (int, string, string) {
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		req.RemoteAddr = from
		if strings.HasPrefix(path, "/oauth2") {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		w := httptest.NewRecorder()
		r.srv.Handler().ServeHTTP(w, req)
		return w.Code, w.Header().Get("Retry-After"), w.Body.String()
	}
	burst := func(path, from, body string, n int) (admitted int, retry, last string) {
		for range n {
			code, ra, b := send(path, from, body)
			if code == 429 {
				retry, last = ra, b
				continue
			}
			admitted++
		}
		return
	}
	a, b := "192.0.2.1:1111", "198.51.100.7:2222"
	got, retry, body := burst(attestPath, a, `{"report":"AAAA"}`, 10)
	if got != 3 {
		t.Errorf("client a: %d attestations admitted, want 3 (its burst)", got)
	}
	if n, err := strconv.Atoi(retry); err != nil || n < 1 {
		t.Errorf("Retry-After %q", retry)
	}
	if !strings.Contains(body, `"code":"TooManyRequests"`) || !strings.Contains(body, "192.0.2.1") {
		t.Errorf("429 body: %s", body)
	}
	if got, _, _ := burst(attestPath, b, `{"report":"AAAA"}`, 10); got != 2 {
		t.Errorf("client b: %d admitted, want 2 (what is left of the global 5)", got)
	}
	// Other routes are not limited.
	if code, _, _ := r.do("GET", "/certs", nil); code != 200 {
		t.Errorf("GET /certs: %d", code)
	}
	r.clk.t = r.clk.t.Add(2 * time.Second)
	if got, _, _ := burst(attestPath, a, `{"report":"AAAA"}`, 10); got != 3 {
		t.Errorf("client a a second later: %d admitted", got)
	}
	got, _, body = burst("/oauth2/token", a, "grant_type=client_credentials&client_id=x&client_secret=y", 5)
	if got != 2 || !strings.Contains(body, `"error":"temporarily_unavailable"`) {
		t.Errorf("token endpoint: %d admitted; %s", got, body)
	}
	// The refusals (7 + 8 + 7) are counted under their route.
	_, m, _ := r.do("GET", "/metrics", nil, r.admin_()...)
	if !bytes.Contains(m, []byte(`kura_http_requests_total{code="429",operation="POST /attest/{type}",surface="maa"} 22`)) {
		t.Errorf("429s not counted as attestation requests:\n%s", grepLines(m, "429"))
	}
}

func TestRateLimitDefaults(t *testing.T) {
	c := config.Default()
	if !c.RateLimited() {
		t.Error("rate limits are off by default outside --dev")
	}
	c.Dev = true
	if c.RateLimited() {
		t.Error("rate limits are on with --dev")
	}
	off := false
	c.Dev, c.RateLimit = false, &off
	if c.RateLimited() {
		t.Error("rate_limit false ignored")
	}
}

func grepLines(b []byte, s string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestClientKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:443":              "192.0.2.1",
		"[2001:db8:1:2:aaaa::1]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:2:bbbb::9]:1":   "2001:db8:1:2::/64",
		"[::ffff:192.0.2.7]:80":      "::ffff:192.0.2.7",
		"not-an-address":             "not-an-address",
	} {
		if got := clientKey(in); got != want {
			t.Errorf("clientKey(%q) = %q, want %q", in, got, want)
		}
	}
}
