package server

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/kura-project/kura/internal/config"
)

// TestExternalIdentityProvider: with an external OIDC issuer configured
// (trusted through oidc_ca_file), its JWTs reach the Key Vault surface as
// the principal bound to their subject.
func TestExternalIdentityProvider(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	var url string
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": url, "jwks_uri": url + "/jwks"})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "idp-1", Use: "sig", Algorithm: "RS256"}}})
	})
	idp := httptest.NewTLSServer(mux)
	defer idp.Close()
	url = idp.URL
	ca := filepath.Join(t.TempDir(), "idp-ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: idp.Certificate().Raw}), 0o600)

	r := newRig(t, time.Now(), func(c *config.Config) {
		c.OIDCIssuers, c.OIDCCAFile, c.OIDCAudience = []string{idp.URL}, ca, "kura"
	})
	body, _ := json.Marshal(map[string]string{"name": "svc", "oidc_subject": idp.URL + "|svc-1", "role": "crypto-officer"})
	if code, resp, _ := r.do("POST", "/kura/v1/principals", body, r.admin_()...); code != 201 {
		t.Fatalf("bind principal: %d %s", code, resp)
	}
	mint := func(sub string) string {
		sg, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "idp-1"))
		b, _ := json.Marshal(map[string]any{"iss": idp.URL, "sub": sub, "aud": "kura", "exp": time.Now().Add(time.Hour).Unix()})
		j, _ := sg.Sign(b)
		s, _ := j.CompactSerialize()
		return s
	}
	code, resp, _ := r.do("POST", "/keys/ext/create?api-version=2025-07-01", []byte(`{"kty":"EC"}`), "Authorization", "Bearer "+mint("svc-1"))
	if code != 200 {
		t.Fatalf("create with an external token: %d %s", code, resp)
	}
	if code, _, _ := r.do("POST", "/keys/ext2/create?api-version=2025-07-01", []byte(`{"kty":"EC"}`), "Authorization", "Bearer "+mint("svc-2")); code != 401 {
		t.Errorf("unbound subject: %d", code)
	}
}

// TestExpiredAccessToken: a kura access token stops working when it expires.
func TestExpiredAccessToken(t *testing.T) {
	t0 := time.Now()
	r := newRig(t, t0)
	body, _ := json.Marshal(map[string]string{"name": "app", "role": "crypto-officer"})
	code, resp, _ := r.do("POST", "/kura/v1/principals", body, r.admin_()...)
	if code != 201 {
		t.Fatalf("principal: %d %s", code, resp)
	}
	var p struct {
		ID     string `json:"id"`
		Secret string `json:"client_secret"`
	}
	json.Unmarshal(resp, &p)
	code, resp, _ = r.do("POST", "/oauth2/token", []byte("grant_type=client_credentials&client_id="+p.ID+"&client_secret="+p.Secret),
		"Content-Type", "application/x-www-form-urlencoded")
	if code != 200 {
		t.Fatalf("token: %d %s", code, resp)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	json.Unmarshal(resp, &tok)
	auth := []string{"Authorization", "Bearer " + tok.AccessToken}
	if code, _, _ := r.do("GET", "/keys?api-version=2025-07-01", nil, auth...); code != 200 {
		t.Fatalf("fresh token: %d", code)
	}
	r.clk.t = t0.Add(time.Duration(tok.ExpiresIn+1) * time.Second)
	if code, _, h := r.do("GET", "/keys?api-version=2025-07-01", nil, auth...); code != 401 || h.Get("WWW-Authenticate") == "" {
		t.Errorf("expired token: %d", code)
	}
	// Unsupported grant and missing credentials are RFC 6749 errors.
	for _, form := range []string{"grant_type=password", "grant_type=client_credentials"} {
		if code, _, _ := r.do("POST", "/oauth2/token", []byte(form), "Content-Type", "application/x-www-form-urlencoded"); code != 400 {
			t.Errorf("%s: %d", form, code)
		}
	}
}
