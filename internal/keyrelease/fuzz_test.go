package keyrelease

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"hash"
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

// FuzzUnwrap feeds arbitrary wrapped keys to the agent-side unwrap. It must
// never panic and never return material for a ciphertext it did not get
// from wrap with the matching key. Seed: a real wrap of a 32-byte key.
func FuzzUnwrap(f *testing.F) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	plain := bytes.Repeat([]byte{7}, 32)
	for _, enc := range []string{CKMRSAAESKeyWrap, RSAAESKeyWrap256, RSAAESKeyWrap384} {
		ct, err := wrapFor(&k.PublicKey, enc, plain)
		if err != nil {
			f.Fatal(err)
		}
		got, err := Unwrap(k, enc, ct)
		if err != nil || !bytes.Equal(got, plain) {
			f.Fatalf("seed %s does not round-trip: %v", enc, err)
		}
		f.Add(enc, ct)
		f.Add(enc, ct[:len(ct)-8])
	}
	f.Add("RSA-OAEP", []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, enc string, ct []byte) {
		got, err := Unwrap(k, enc, ct)
		if err == nil && !bytes.Equal(got, plain) {
			t.Fatalf("unwrapped %d bytes that were never wrapped", len(got))
		}
	})
}

func wrapFor(pub *rsa.PublicKey, enc string, plain []byte) ([]byte, error) {
	h := map[string]func() hash.Hash{CKMRSAAESKeyWrap: sha1.New, RSAAESKeyWrap256: sha256.New, RSAAESKeyWrap384: sha512.New384}[enc]
	return wrap(pub, h, plain)
}
