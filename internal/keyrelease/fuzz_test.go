package keyrelease

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"testing"

	"github.com/kura-project/kura/internal/oidc"
)

// FuzzTeeKey feeds arbitrary token claims to the TEE key choice. It must
// never panic, every refusal must be a *Denied, and any key it picks must
// be an RSA key of at least minTEEKeyBits with an odd modulus and exponent
// and a kid. Seeds: the agent's runtime claim shape, key_ops instead of use,
// a 1024-bit key, an even modulus, an EC key, no keys.
func FuzzTeeKey(f *testing.F) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	n, e := b64(k.N.Bytes()), b64(big.NewInt(int64(k.E)).Bytes())
	add := func(rt any) {
		b, _ := json.Marshal(map[string]any{"x-ms-runtime": rt})
		f.Add(b)
	}
	good := map[string]any{"keys": []any{map[string]any{"kty": "RSA", "kid": "tee", "use": "enc", "n": n, "e": e}}}
	if pub, kid, err := teeKey(oidc.Claims{"x-ms-runtime": good}); err != nil || kid != "tee" || !pub.Equal(&k.PublicKey) {
		f.Fatalf("the valid seed is not picked: %v", err)
	}
	add(good)
	add(map[string]any{"keys": []any{map[string]any{"kty": "RSA", "kid": "tee", "key_ops": []any{"encrypt"}, "n": n, "e": e}}})
	add(map[string]any{"keys": []any{map[string]any{"kty": "RSA", "kid": "tee", "use": "enc", "n": b64(k.N.Bytes()[:128]), "e": e}}})
	even := new(big.Int).Lsh(k.N, 1)
	add(map[string]any{"keys": []any{map[string]any{"kty": "RSA", "kid": "tee", "use": "enc", "n": b64(even.Bytes()), "e": e}}})
	add(map[string]any{"keys": []any{map[string]any{"kty": "EC", "kid": "tee", "use": "enc", "crv": "P-256"}}})
	add(map[string]any{"keys": []any{}})
	add("keys")
	f.Fuzz(func(t *testing.T, data []byte) {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var c oidc.Claims
		if dec.Decode(&c) != nil {
			return
		}
		pub, kid, err := teeKey(c)
		if err != nil {
			if _, ok := err.(*Denied); !ok {
				t.Fatalf("refusal is not a *Denied: %v (%T)", err, err)
			}
			return
		}
		if kid == "" || pub.N.BitLen() < minTEEKeyBits || pub.E < 3 || pub.E%2 == 0 || pub.N.Bit(0) == 0 {
			t.Fatalf("picked an unusable TEE key: kid %q, %d bits, e=%d", kid, pub.N.BitLen(), pub.E)
		}
	})
}
