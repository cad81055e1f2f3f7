package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// provider is a fake OpenID Connect issuer over TLS.
type provider struct {
	srv       *httptest.Server
	keys      []jose.JSONWebKey
	jwksFetch atomic.Int64
}

func newProvider(t *testing.T) *provider {
	p := &provider{}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": p.srv.URL, "jwks_uri": p.srv.URL + "/keys"})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		p.jwksFetch.Add(1)
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: p.keys})
	})
	p.srv = httptest.NewTLSServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *provider) addKey(kid string, key any) {
	var pub any
	switch k := key.(type) {
	case *rsa.PrivateKey:
		pub = &k.PublicKey
	case *ecdsa.PrivateKey:
		pub = &k.PublicKey
	}
	p.keys = append(p.keys, jose.JSONWebKey{Key: pub, KeyID: kid, Use: "sig"})
}

func sign(t *testing.T, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	jws, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}

func TestVerifier(t *testing.T) {
	p := newProvider(t)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p.addKey("r1", rsaKey)
	p.addKey("e1", ecKey)
	now := time.Now()
	v := &Verifier{Sources: map[string]KeySource{p.srv.URL: &Discovery{Client: p.srv.Client(), RefreshInterval: time.Nanosecond}}, Now: func() time.Time { return now }}
	claims := func(extra map[string]any) map[string]any {
		c := map[string]any{"iss": p.srv.URL + "/", "sub": "alice", "exp": now.Add(time.Hour).Unix(), "nbf": now.Add(-time.Minute).Unix()}
		for k, x := range extra {
			c[k] = x
		}
		return c
	}
	ctx := context.Background()
	for _, alg := range []struct {
		a   jose.SignatureAlgorithm
		key any
		kid string
	}{{jose.RS256, rsaKey, "r1"}, {jose.PS256, rsaKey, "r1"}, {jose.ES256, ecKey, "e1"}} {
		c, err := v.Verify(ctx, sign(t, alg.a, alg.key, alg.kid, claims(nil)))
		if err != nil || c["sub"] != "alice" {
			t.Errorf("%s: %v", alg.a, err)
		}
	}

	// A key added later is found by refreshing on the unknown kid.
	late, _ := rsa.GenerateKey(rand.Reader, 2048)
	p.addKey("r2", late)
	before := p.jwksFetch.Load()
	if _, err := v.Verify(ctx, sign(t, jose.RS256, late, "r2", claims(nil))); err != nil {
		t.Errorf("rotated key: %v", err)
	}
	if p.jwksFetch.Load() != before+1 {
		t.Errorf("JWKS fetched %d times for an unknown kid", p.jwksFetch.Load()-before)
	}

	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	good := sign(t, jose.RS256, rsaKey, "r1", claims(nil))
	parts := strings.Split(good, ".")
	for _, c := range []struct {
		name, token, want string
	}{
		{"expired", sign(t, jose.RS256, rsaKey, "r1", claims(map[string]any{"exp": now.Add(-time.Hour).Unix()})), "expired"},
		{"not yet valid", sign(t, jose.RS256, rsaKey, "r1", claims(map[string]any{"nbf": now.Add(time.Hour).Unix()})), "not valid before"},
		{"no exp", sign(t, jose.RS256, rsaKey, "r1", map[string]any{"iss": p.srv.URL, "sub": "a"}), "no exp"},
		{"unknown kid", sign(t, jose.RS256, other, "zz", claims(nil)), "publishes no key"},
		{"wrong key for kid", sign(t, jose.RS256, other, "r1", claims(nil)), "does not verify"},
		{"untrusted issuer", sign(t, jose.RS256, rsaKey, "r1", claims(map[string]any{"iss": "https://evil.example"})), "not trusted"},
		{"tampered", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"`+p.srv.URL+`","sub":"mallory","exp":9999999999}`)) + "." + parts[2], "does not verify"},
		{"alg none", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + parts[1] + ".", "accepted algorithm"},
		{"HS256 with the public key as secret", hs256(parts[1]), "accepted algorithm"},
		{"garbage", "not a token", "accepted algorithm"},
		{"ISS chooses the keys, iss says another issuer", sign(t, jose.RS256, rsaKey, "r1", claims(map[string]any{"iss": "https://evil.example", "ISS": p.srv.URL})), "not trusted"},
		{"nbf beyond int64", sign(t, jose.RS256, rsaKey, "r1", claims(map[string]any{"nbf": 1e19})), "out of range"},
		{"exp beyond int64", sign(t, jose.RS256, rsaKey, "r1", claims(map[string]any{"exp": 1e19})), "out of range"},
	} {
		_, err := v.Verify(ctx, c.token)
		var oe *Error
		if !errors.As(err, &oe) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want a refusal containing %q", c.name, err, c.want)
		}
	}

	// An unreachable issuer is unavailable, not a verdict.
	down := &Verifier{Sources: map[string]KeySource{"https://127.0.0.1:1": &Discovery{Timeout: time.Second}}}
	_, err := down.Verify(ctx, sign(t, jose.RS256, rsaKey, "r1", map[string]any{"iss": "https://127.0.0.1:1", "exp": now.Add(time.Hour).Unix()}))
	var ue *UnavailableError
	if !errors.As(err, &ue) {
		t.Errorf("unreachable issuer: %v", err)
	}
}

func hs256(payload string) string {
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","kid":"r1"}`))
	m := hmac.New(sha256.New, []byte("public"))
	m.Write([]byte(h + "." + payload))
	return h + "." + payload + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// TestDiscoveryOutageIsRateLimited: an issuer that fails is asked once per
// RefreshInterval, however many tokens arrive, with or without cached keys.
func TestDiscoveryOutageIsRateLimited(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	defer srv.Close()
	d := &Discovery{Client: srv.Client(), RefreshInterval: time.Hour}
	for i := 0; i < 5; i++ {
		if _, err := d.Keys(context.Background(), srv.URL, i%2 == 0); err == nil {
			t.Fatal("keys from an issuer that is down")
		}
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("%d requests to an issuer that is down, want 1", n)
	}
}

// TestLoadedRefreshIsThrottled: an unknown kid reloads kura's own key set at
// most once per MinRefresh; the TTL still reloads it on schedule.
func TestLoadedRefreshIsThrottled(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	loads := 0
	l := &Loaded{Load: func() *jose.JSONWebKeySet { loads++; return &jose.JSONWebKeySet{} }, Now: func() time.Time { return now }}
	ctx := context.Background()
	for range 100 {
		if _, err := l.Keys(ctx, "", true); err != nil {
			t.Fatal(err)
		}
	}
	if loads != 1 {
		t.Fatalf("100 refreshes within a second loaded the set %d times", loads)
	}
	now = t0.Add(1100 * time.Millisecond)
	l.Keys(ctx, "", true)
	if loads != 2 {
		t.Fatalf("a refresh after MinRefresh: %d loads", loads)
	}
	now = now.Add(3 * time.Second)
	l.Keys(ctx, "", false)
	if loads != 2 {
		t.Fatalf("a read within the TTL reloaded: %d loads", loads)
	}
	now = now.Add(3 * time.Second)
	l.Keys(ctx, "", false)
	if loads != 3 {
		t.Fatalf("a read past the TTL did not reload: %d loads", loads)
	}
	now = t0 // the clock stepped back: reload rather than trust the old set forever
	l.Keys(ctx, "", false)
	if loads != 4 {
		t.Fatalf("a clock step back: %d loads", loads)
	}
}
