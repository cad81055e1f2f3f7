package maa

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/kura-project/kura/internal/certtest"
)

// FuzzParseUpload feeds arbitrary policy uploads to an instance that
// requires signed policies. It must never panic, every refusal must be an
// *UploadError (a 400), and anything it accepts must be signed by the
// configured signer. Seeds: a signed upload, the same unsigned, one signed
// by an unconfigured certificate, a reset.
func FuzzParseUpload(f *testing.F) {
	signer, key := policySigner(f)
	stranger, strangerKey := policySigner(f)
	ps := &PolicyStore{Signers: []*x509.Certificate{signer}}
	text := "version=1.0; authorizationrules { => permit(); };"
	good := signPolicy(f, key, signer, text)
	if got, cert, err := ps.ParseUpload(good); err != nil || got != text || cert == nil {
		f.Fatalf("the signed seed is refused: %v", err)
	}
	f.Add(good)
	f.Add(unsignedJWS(text))
	f.Add(signPolicy(f, strangerKey, stranger, text))
	f.Add(signPolicy(f, key, signer, ""))
	f.Add(good[:strings.LastIndexByte(good, '.')+1])
	f.Fuzz(func(t *testing.T, jws string) {
		_, cert, err := ps.ParseUpload(jws)
		if err != nil {
			var ue *UploadError
			if !errors.As(err, &ue) {
				t.Fatalf("refusal is not an UploadError: %v (%T)", err, err)
			}
			return
		}
		if cert == nil || !cert.Equal(signer) {
			t.Fatalf("accepted an upload not signed by the configured signer: %q", jws)
		}
		parts := strings.Split(strings.TrimSpace(jws), ".")
		sig, _ := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[2], "="))
		d := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		if len(sig) != 64 || !ecdsa.Verify(&key.PublicKey, d[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
			t.Fatalf("accepted a signature the signer's key did not make: %q", jws)
		}
	})
}

func policySigner(f *testing.F) (*x509.Certificate, *ecdsa.PrivateKey) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	return certtest.SelfSigned(f, k, "policy signer"), k
}

func signPolicy(f *testing.F, k *ecdsa.PrivateKey, c *x509.Certificate, text string) string {
	p, _ := json.Marshal(map[string]string{"AttestationPolicy": base64.RawURLEncoding.EncodeToString([]byte(text))})
	return certtest.CompactX5C(f, "ES256", k, c, p)
}
