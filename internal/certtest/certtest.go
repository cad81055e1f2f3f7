// Package certtest makes self-signed certificates and x5c-carrying compact
// JWS for tests: policy signers, release answers, token keys.
package certtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"testing"
	"time"
)

// SelfSigned returns a self-signed certificate for key, valid for an hour
// either side of now.
func SelfSigned(tb testing.TB, key crypto.Signer, cn string) *x509.Certificate {
	tb.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// CompactX5C signs payload as a compact JWS with header {"alg", "x5c"}:
// RS256 with an RSA key, ES256 or ES384 (raw r||s) with an EC key.
func CompactX5C(tb testing.TB, alg string, key crypto.Signer, cert *x509.Certificate, payload []byte) string {
	tb.Helper()
	h, _ := json.Marshal(map[string]any{"alg": alg, "x5c": []string{base64.StdEncoding.EncodeToString(cert.Raw)}})
	b64 := base64.RawURLEncoding.EncodeToString
	input := b64(h) + "." + b64(payload)
	var sig []byte
	var err error
	switch k := key.(type) {
	case *rsa.PrivateKey:
		d := sha256.Sum256([]byte(input))
		sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, d[:])
	case *ecdsa.PrivateKey:
		var d []byte
		size := (k.Curve.Params().BitSize + 7) / 8 // r||s as the curve has it, whatever alg says
		if alg == "ES384" {
			s := sha512.Sum384([]byte(input))
			d = s[:]
		} else {
			s := sha256.Sum256([]byte(input))
			d = s[:]
		}
		var r, s *big.Int
		if r, s, err = ecdsa.Sign(rand.Reader, k, d); err == nil {
			sig = append(r.FillBytes(make([]byte, size)), s.FillBytes(make([]byte, size))...)
		}
	default:
		tb.Fatalf("certtest: unsupported key %T", key)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return input + "." + b64(sig)
}
