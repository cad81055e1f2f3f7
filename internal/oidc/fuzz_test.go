package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// FuzzVerify feeds arbitrary strings to the token verifier. It must never
// panic, every refusal must be an *Error, and anything it accepts must be a
// token the trusted key really signed, from the trusted issuer, unexpired.
// Seeds: a valid token, an expired one, one from another issuer, one
// without exp, and near-misses.
func FuzzVerify(f *testing.F) {
	const iss = "https://issuer.example"
	now := time.Unix(1_800_000_000, 0)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	set := &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Use: "sig", Algorithm: "ES256"}}}
	v := &Verifier{Sources: map[string]KeySource{iss: Static(func() *jose.JSONWebKeySet { return set })}, Now: func() time.Time { return now }}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		f.Fatal(err)
	}
	tok := func(claims map[string]any) string {
		b, _ := json.Marshal(claims)
		s, err := signer.Sign(b)
		if err != nil {
			f.Fatal(err)
		}
		c, _ := s.CompactSerialize()
		return c
	}
	good := tok(map[string]any{"iss": iss + "/", "exp": now.Add(time.Hour).Unix(), "x-ms-attestation-type": "sevsnpvm"})
	if _, err := v.Verify(context.Background(), good); err != nil {
		f.Fatalf("the valid seed does not verify: %v", err)
	}
	f.Add(good)
	f.Add(good[:len(good)-2])
	f.Add(tok(map[string]any{"iss": iss, "exp": now.Add(-time.Hour).Unix()}))
	f.Add(tok(map[string]any{"iss": "https://other.example", "exp": now.Add(time.Hour).Unix()}))
	f.Add(tok(map[string]any{"iss": iss}))
	f.Add(tok(map[string]any{"iss": iss, "exp": "tomorrow"}))
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIn0.")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		claims, err := v.Verify(context.Background(), token)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("refusal is not an *Error: %v (%T)", err, err)
			}
			return
		}
		sig, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatalf("accepted a token go-jose cannot parse: %v", err)
		}
		if _, err := sig.Verify(&key.PublicKey); err != nil {
			t.Fatalf("accepted a token the trusted key did not sign: %v", err)
		}
		if s, _ := claims["iss"].(string); NormalizeIssuer(s) != iss {
			t.Fatalf("accepted a token from issuer %q", s)
		}
		exp, ok := claims["exp"].(json.Number)
		if !ok {
			t.Fatal("accepted a token without a numeric exp")
		}
		if e, _ := exp.Float64(); time.Unix(int64(e), 0).Add(time.Minute).Before(now) {
			t.Fatalf("accepted an expired token (exp %v)", exp)
		}
	})
}
