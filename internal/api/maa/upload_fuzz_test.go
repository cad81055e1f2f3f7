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

// FuzzParseUpload feeds arbitrary policy uploads to the parser. It must
// never panic, every refusal must be an *UploadError (a 400), and anything
// it accepts is either unsigned (alg none, no signer) or signed by the key
// of the certificate it returns. Seeds: a signed upload, the same unsigned,
// one signed by another certificate, a reset, a signed upload stripped of
// its signature.
func FuzzParseUpload(f *testing.F) {
	signer, key := policySigner(f)
	stranger, strangerKey := policySigner(f)
	text := "version=1.0; authorizationrules { => permit(); };"
	good := signPolicy(f, key, signer, text)
	if got, cert, err := ParseUpload(good); err != nil || got != text || cert == nil || !cert.Equal(signer) {
		f.Fatalf("the signed seed is refused: %v", err)
	}
	keys := map[string]*ecdsa.PublicKey{string(signer.Raw): &key.PublicKey, string(stranger.Raw): &strangerKey.PublicKey}
	f.Add(good)
	f.Add(unsignedJWS(text))
	f.Add(signPolicy(f, strangerKey, stranger, text))
	f.Add(signPolicy(f, key, signer, ""))
	f.Add(good[:strings.LastIndexByte(good, '.')+1])
	f.Fuzz(func(t *testing.T, jws string) {
		_, cert, err := ParseUpload(jws)
		if err != nil {
			var ue *UploadError
			if !errors.As(err, &ue) {
				t.Fatalf("refusal is not an UploadError: %v (%T)", err, err)
			}
			return
		}
		parts := strings.Split(strings.TrimSpace(jws), ".")
		if cert == nil {
			if parts[2] != "" {
				t.Fatalf("accepted as unsigned a JWS with a signature: %q", jws)
			}
			return
		}
		pub, ok := keys[string(cert.Raw)]
		if !ok {
			// A certificate the fuzzer made up: its key must still
			// have made the signature.
			p, isEC := cert.PublicKey.(*ecdsa.PublicKey)
			if !isEC {
				return // RSA: verified by crypto/rsa, not re-checked here
			}
			pub = p
		}
		sig, _ := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[2], "="))
		d := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		if pub.Curve.Params().BitSize == 256 && (len(sig) != 64 || !ecdsa.Verify(pub, d[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))) {
			t.Fatalf("accepted a signature the certificate's key did not make: %q", jws)
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
