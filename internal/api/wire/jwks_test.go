package wire

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"path/filepath"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/kura-project/kura/internal/seal"
	"github.com/kura-project/kura/internal/store/sqlite"
	"github.com/kura-project/kura/internal/token"
)

// TestJWKS: each algorithm's key is published with x5c (what MAA clients
// verify with), the coordinates at the curve's size, and a JSON form that
// go-jose reads back as the same public key.
func TestJWKS(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "kura.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	root, err := seal.OpenSoftwareRoot(filepath.Join(t.TempDir(), "root"), make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		alg      token.Alg
		kty, crv string
		size     int
	}{{token.RS256, "RSA", "", 0}, {token.ES256, "EC", "P-256", 32}, {token.ES384, "EC", "P-384", 48}} {
		kr, err := token.Open(ctx, token.Config{Purpose: string(c.alg), Issuer: "https://kura.test", Alg: c.alg}, st, seal.New(root))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(JWKS(kr.Published()))
		var out struct{ Keys []JWK }
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(b, &out); err != nil || json.Unmarshal(b, &set) != nil || len(out.Keys) != 1 || len(set.Keys) != 1 {
			t.Fatalf("%s: %s", c.alg, b)
		}
		j := out.Keys[0]
		if j.Alg != string(c.alg) || j.Kty != c.kty || j.Crv != c.crv || j.Use != "sig" || len(j.X5c) != 1 || j.Kid != kr.Published()[0].Kid {
			t.Errorf("%s: %+v", c.alg, j)
		}
		der, _ := base64.StdEncoding.DecodeString(j.X5c[0])
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatalf("%s x5c: %v", c.alg, err)
		}
		if c.size > 0 {
			x, _ := base64.RawURLEncoding.DecodeString(j.X)
			y, _ := base64.RawURLEncoding.DecodeString(j.Y)
			if len(x) != c.size || len(y) != c.size {
				t.Errorf("%s: x %d, y %d bytes", c.alg, len(x), len(y))
			}
		} else {
			n, _ := base64.RawURLEncoding.DecodeString(j.N)
			if new(big.Int).SetBytes(n).Cmp(cert.PublicKey.(*rsa.PublicKey).N) != 0 {
				t.Errorf("%s: n is not the certificate's modulus", c.alg)
			}
		}
		got, err1 := x509.MarshalPKIXPublicKey(set.Keys[0].Key)
		want, err2 := x509.MarshalPKIXPublicKey(cert.PublicKey)
		if err1 != nil || err2 != nil || string(got) != string(want) {
			t.Errorf("%s: the JWK's key is not x5c[0]'s (%v, %v)", c.alg, err1, err2)
		}
	}
}
