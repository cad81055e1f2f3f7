package agent_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/kura-project/kura/internal/agent"
	"github.com/kura-project/kura/internal/certtest"
	"github.com/kura-project/kura/internal/keys/keyops"
)

// FuzzVerifyReleaseJWS feeds arbitrary strings to the release answer check.
// It must never panic, and anything it accepts must be signed by the pinned
// certificate's key. Seeds: a valid answer, one signed by an unpinned
// certificate, a truncated one.
func FuzzVerifyReleaseJWS(f *testing.F) {
	pinned, pinnedKey := selfSigned(f)
	other, otherKey := selfSigned(f)
	good := signX5C(f, pinnedKey, pinned, []byte(`{"request":{"nonce":"n"}}`))
	if _, err := agent.VerifyReleaseJWS(good, []*x509.Certificate{pinned}); err != nil {
		f.Fatalf("the valid seed does not verify: %v", err)
	}
	f.Add(good)
	f.Add(signX5C(f, otherKey, other, []byte(`{}`)))
	f.Add(good[:len(good)/2])
	f.Fuzz(func(t *testing.T, compact string) {
		payload, err := agent.VerifyReleaseJWS(compact, []*x509.Certificate{pinned})
		if err != nil {
			return
		}
		sig, err := jose.ParseSignedCompact(compact, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatalf("accepted an answer go-jose cannot parse as ES256: %v", err)
		}
		got, err := sig.Verify(&pinnedKey.PublicKey)
		if err != nil || string(got) != string(payload) {
			t.Fatalf("accepted an answer the pinned key did not sign: %v", err)
		}
	})
}

// FuzzOpen feeds arbitrary payloads to the release answer's unwrap. It must
// never panic, and whatever it accepts must be about the key, nonce and TEE
// key asked for. Seed: a real CKM_RSA_AES_KEY_WRAP answer.
func FuzzOpen(f *testing.F) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	want := agent.Expect{Name: "secret", Nonce: "n-1", TEEKeyID: "tee"}
	aesKey := make([]byte, 32)
	rand.Read(aesKey)
	head, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, &priv.PublicKey, aesKey, nil)
	if err != nil {
		f.Fatal(err)
	}
	tail, err := keyops.AESKeyWrapPad(aesKey, []byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		f.Fatal(err)
	}
	hsm, _ := json.Marshal(map[string]any{"header": map[string]string{"enc": "CKM_RSA_AES_KEY_WRAP"},
		"ciphertext": base64.RawURLEncoding.EncodeToString(append(head, tail...))})
	good, _ := json.Marshal(map[string]any{
		"request":        map[string]string{"enc": "CKM_RSA_AES_KEY_WRAP", "nonce": "n-1"},
		"x-kura-release": map[string]string{"tee_key": "tee"},
		"response": map[string]any{"key": map[string]any{"key": map[string]string{
			"kid": "https://kura.localhost/keys/secret/0123456789abcdef0123456789abcdef", "kty": "oct-HSM",
			"key_hsm": base64.RawURLEncoding.EncodeToString(hsm)}}},
	})
	if _, err := agent.Open(good, priv, want); err != nil {
		f.Fatalf("the valid seed does not open: %v", err)
	}
	f.Add(good)
	f.Add([]byte(`{"response":{"key":{"key":{"kid":"/keys/secret/v","key_hsm":"e30"}}},"request":{"nonce":"n-1"},"x-kura-release":{"tee_key":"tee"}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		got, err := agent.Open(payload, priv, want)
		if err != nil {
			return
		}
		var p struct {
			Request struct {
				Nonce string `json:"nonce"`
			} `json:"request"`
			Binding struct {
				TEEKey string `json:"tee_key"`
			} `json:"x-kura-release"`
		}
		if json.Unmarshal(payload, &p) != nil || p.Request.Nonce != want.Nonce || p.Binding.TEEKey != want.TEEKeyID || got.Name != want.Name {
			t.Fatalf("opened an answer not bound to %+v: %+v", want, p)
		}
	})
}

func selfSigned(f *testing.F) (*x509.Certificate, *ecdsa.PrivateKey) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	return certtest.SelfSigned(f, k, "release"), k
}

func signX5C(f *testing.F, k *ecdsa.PrivateKey, c *x509.Certificate, payload []byte) string {
	return certtest.CompactX5C(f, "ES256", k, c, payload)
}
