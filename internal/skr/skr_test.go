package skr

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"testing"
)

func testKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestWrapUnwrapRoundTrip(t *testing.T) {
	k := testKey(t)
	for _, enc := range Encs() {
		for _, n := range []int{1, 7, 8, 32, 1217} {
			plain := bytes.Repeat([]byte{byte(n)}, n)
			ct, err := Wrap(&k.PublicKey, enc, plain)
			if err != nil {
				t.Fatalf("%s: Wrap %d bytes: %v", enc, n, err)
			}
			if len(ct) <= k.Size() {
				t.Fatalf("%s: ciphertext of %d bytes has no key wrap part", enc, len(ct))
			}
			got, err := Unwrap(k, enc, ct)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("%s: Unwrap of %d bytes = %x, %v", enc, n, got, err)
			}
		}
	}
}

func TestUnwrapWrongKeyRefused(t *testing.T) {
	k, other := testKey(t), testKey(t)
	for _, enc := range Encs() {
		ct, err := Wrap(&k.PublicKey, enc, []byte("material"))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := Unwrap(other, enc, ct); err == nil || got != nil {
			t.Errorf("%s: Unwrap with another key = %x, %v; want a refusal", enc, got, err)
		}
	}
}

func TestUnwrapOtherEncRefused(t *testing.T) {
	k := testKey(t)
	ct, err := Wrap(&k.PublicKey, RSAAESKeyWrap256, []byte("material"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Unwrap(k, CKMRSAAESKeyWrap, ct); err == nil {
		t.Error("a RSA_AES_KEY_WRAP_256 ciphertext unwraps as CKM_RSA_AES_KEY_WRAP")
	}
}

func TestUnwrapTruncatedRefused(t *testing.T) {
	k := testKey(t)
	for _, enc := range Encs() {
		ct, err := Wrap(&k.PublicKey, enc, bytes.Repeat([]byte{7}, 32))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{0, 1, k.Size() - 1, k.Size(), k.Size() + 8, len(ct) - 8, len(ct) - 1} {
			if got, err := Unwrap(k, enc, ct[:n]); err == nil || got != nil {
				t.Errorf("%s: Unwrap of the first %d of %d bytes = %x, %v; want a refusal", enc, n, len(ct), got, err)
			}
		}
		flipped := bytes.Clone(ct)
		flipped[len(flipped)-1] ^= 1
		if _, err := Unwrap(k, enc, flipped); err == nil {
			t.Errorf("%s: a tampered key wrap unwraps", enc)
		}
	}
}

func TestUnknownEncRefused(t *testing.T) {
	k := testKey(t)
	for _, enc := range []string{"", "RSA-OAEP", "RSA-OAEP-256", "rsa_aes_key_wrap_256", "CKM_RSA_AES_KEY_WRAP "} {
		if _, ok := OAEPHash(enc); ok {
			t.Errorf("OAEPHash(%q) is known", enc)
		}
		var ue *UnsupportedEncError
		if _, err := Wrap(&k.PublicKey, enc, []byte("x")); !errors.As(err, &ue) || ue.Enc != enc {
			t.Errorf("Wrap with enc %q: %v, want an *UnsupportedEncError", enc, err)
		}
		if _, err := Unwrap(k, enc, make([]byte, 512)); !errors.As(err, &ue) {
			t.Errorf("Unwrap with enc %q: %v, want an *UnsupportedEncError", enc, err)
		}
	}
}

func TestOAEPHash(t *testing.T) {
	want := map[string]int{CKMRSAAESKeyWrap: 20, RSAAESKeyWrap256: 32, RSAAESKeyWrap384: 48}
	if len(Encs()) != len(want) || Encs()[0] != DefaultEnc {
		t.Fatalf("Encs() = %v", Encs())
	}
	for enc, size := range want {
		h, ok := OAEPHash(enc)
		if !ok || h().Size() != size {
			t.Errorf("OAEPHash(%s): want a %d-byte hash", enc, size)
		}
	}
}

// TestWireBytes pins the JSON of the wire types to the map-built JSON kura
// has always sent, byte for byte.
func TestWireBytes(t *testing.T) {
	same := func(name string, typed, legacy any) {
		t.Helper()
		a, err := json.Marshal(typed)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(legacy)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s:\n typed  %s\n legacy %s", name, a, b)
		}
	}
	same("key_hsm", KeyHSM{SchemaVersion: KeyHSMSchemaVersion, Header: KeyHSMHeader{Kid: "tee<1>", Alg: "dir", Enc: RSAAESKeyWrap384}, Ciphertext: "AQID"},
		map[string]any{
			"schema_version": "1.0",
			"header":         map[string]string{"kid": "tee<1>", "alg": "dir", "enc": RSAAESKeyWrap384},
			"ciphertext":     "AQID",
		})
	bundle := map[string]any{"key": map[string]any{"kid": "https://kura/keys/k/v", "kty": "RSA-HSM", "key_hsm": "e30"}, "attributes": map[string]any{"enabled": true}}
	raw, _ := json.Marshal(bundle)
	same("release payload", ReleasePayload{
		Request:  ReleaseRequest{APIVersion: "2025-07-01", Enc: DefaultEnc, Kid: "https://kura/keys/k", Nonce: "n&1"},
		Response: ReleaseResponse{Key: raw},
		Release:  ReleaseBinding{TokenSHA256: "aa", PolicySHA256: "bb", Issuer: "https://kura", TEEKey: "tee"},
	}, map[string]any{
		"request":  map[string]string{"api-version": "2025-07-01", "enc": DefaultEnc, "kid": "https://kura/keys/k", "nonce": "n&1"},
		"response": map[string]any{"key": bundle},
		"x-kura-release": map[string]string{"token_sha256": "aa", "policy_sha256": "bb",
			"issuer": "https://kura", "tee_key": "tee"},
	})
	var kb KeyBundle
	if err := json.Unmarshal(raw, &kb); err != nil || kb.Key.Kid != "https://kura/keys/k/v" || kb.Key.Kty != "RSA-HSM" || kb.Key.KeyHSM != "e30" {
		t.Errorf("KeyBundle = %+v, %v", kb, err)
	}
}

// FuzzUnwrap feeds arbitrary wrapped keys to Unwrap. It must never panic
// and never return material for a ciphertext it did not get from Wrap with
// the matching key. Seeds: a real wrap of a 32-byte key per enc, truncated.
func FuzzUnwrap(f *testing.F) {
	k := testKey(f)
	plain := bytes.Repeat([]byte{7}, 32)
	for _, enc := range Encs() {
		ct, err := Wrap(&k.PublicKey, enc, plain)
		if err != nil {
			f.Fatal(err)
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
