package keyops

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestRefusals: every misuse gets a typed error with a message a caller can
// act on. The messages are asserted verbatim because they are API output.
func TestRefusals(t *testing.T) {
	rsa2048 := keyNamed(t, "RSA-2048")
	p256 := keyNamed(t, "EC-P-256")
	oct128 := keyNamed(t, "oct-128")
	oct256 := keyNamed(t, "oct-256")
	d32 := make([]byte, 32)
	iv16 := make([]byte, 16)

	type algErr = *AlgorithmError
	type inErr = *InputError
	for _, c := range []struct {
		name    string
		run     func() error
		isAlg   bool // AlgorithmError, else InputError
		message string
	}{
		{"RS256 on EC key", func() error { _, err := Sign(p256, "RS256", d32); return err }, true,
			`alg "RS256" does not fit an EC key: needs an RSA key`},
		{"ES384 on P-256 key", func() error { _, err := Sign(p256, "ES384", make([]byte, 48)); return err }, true,
			`alg "ES384" does not fit an EC key: needs a P-384 key; this key is P-256`},
		{"ES256 verify on RSA key", func() error { _, err := Verify(rsa2048, "ES256", d32, make([]byte, 64)); return err }, true,
			`alg "ES256" does not fit an RSA key: needs an EC key`},
		{"A256GCM on 128-bit key", func() error { _, err := Encrypt(oct128, "A256GCM", []byte("x"), nil, nil); return err }, true,
			`alg "A256GCM" does not fit an oct key: needs a 256-bit key; this key is 128-bit`},
		{"A128KW on 256-bit key", func() error { _, err := WrapKey(oct256, "A128KW", d32); return err }, true,
			`alg "A128KW" does not fit an oct key: needs a 128-bit key; this key is 256-bit`},
		{"RSA-OAEP on oct key", func() error { _, err := Encrypt(oct256, "RSA-OAEP", []byte("x"), nil, nil); return err }, true,
			`alg "RSA-OAEP" does not fit an oct key: needs an RSA key`},
		{"A256GCM on RSA key", func() error { _, err := Decrypt(rsa2048, "A256GCM", d32, nil, nil, nil); return err }, true,
			`alg "A256GCM" does not fit an RSA key: needs an oct key`},
		{"unknown XYZ", func() error { _, err := Encrypt(rsa2048, "XYZ", []byte("x"), nil, nil); return err }, true,
			`alg "XYZ": not a known algorithm`},
		{"lower-case rsa-oaep", func() error { _, err := Encrypt(rsa2048, "rsa-oaep", []byte("x"), nil, nil); return err }, true,
			`alg "rsa-oaep": not a known algorithm`},
		{"empty alg", func() error { _, err := Sign(rsa2048, "", d32); return err }, true,
			`alg "": not a known algorithm`},
		{"ES256K", func() error { _, err := Sign(p256, "ES256K", d32); return err }, true,
			`alg "ES256K": not supported: kura does not support the P-256K (secp256k1) curve`},
		{"HS256", func() error { _, err := Sign(oct256, "HS256", d32); return err }, true,
			`alg "HS256": not supported: kura does not implement HMAC keys`},
		{"signature alg for encrypt", func() error { _, err := Encrypt(rsa2048, "RS256", []byte("x"), nil, nil); return err }, true,
			`alg "RS256": not usable for encrypt/decrypt (it is for sign/verify)`},
		{"GCM for wrapkey", func() error { _, err := WrapKey(oct256, "A256GCM", d32); return err }, true,
			`alg "A256GCM": not usable for wrapkey/unwrapkey (it is for encrypt/decrypt)`},
		{"KW for encrypt", func() error { _, err := Encrypt(oct256, "A256KW", d32, nil, nil); return err }, true,
			`alg "A256KW": not usable for encrypt/decrypt (it is for wrapkey/unwrapkey)`},
		{"RSA-OAEP for sign", func() error { _, err := Sign(rsa2048, "RSA-OAEP", d32); return err }, true,
			`alg "RSA-OAEP": not usable for sign/verify (it is for encrypt/decrypt and wrapkey/unwrapkey)`},
		{"release enc for wrapkey", func() error { _, err := WrapKey(rsa2048, "CKM_RSA_AES_KEY_WRAP", d32); return err }, true,
			`alg "CKM_RSA_AES_KEY_WRAP": a key-release "enc" value, not an encrypt or wrapkey algorithm`},
		{"long alg is clipped", func() error { _, err := Sign(rsa2048, strings.Repeat("A", 100), d32); return err }, true,
			`alg "` + strings.Repeat("A", 64) + `…": not a known algorithm`},

		{"RS256 digest of 20 bytes", func() error { _, err := Sign(rsa2048, "RS256", make([]byte, 20)); return err }, false,
			`value: RS256 needs a 32-byte SHA-256 digest; got 20 bytes`},
		{"ES256 digest of 48 bytes", func() error { _, err := Sign(p256, "ES256", make([]byte, 48)); return err }, false,
			`value: ES256 needs a 32-byte SHA-256 digest; got 48 bytes`},
		{"PS512 verify digest of 32 bytes", func() error { _, err := Verify(rsa2048, "PS512", d32, make([]byte, 256)); return err }, false,
			`digest: PS512 needs a 64-byte SHA-512 digest; got 32 bytes`},
		{"RSA signature of wrong length", func() error { _, err := Verify(rsa2048, "RS256", d32, make([]byte, 255)); return err }, false,
			`value: RS256 signature for a 2048-bit key is 256 bytes; got 255`},
		{"ES256 signature of wrong length", func() error { _, err := Verify(p256, "ES256", d32, make([]byte, 70)); return err }, false,
			`value: ES256 signature is r||s, 64 bytes; got 70 (an ASN.1 DER signature is not accepted)`},
		{"GCM decrypt without tag", func() error { _, err := Decrypt(oct256, "A256GCM", d32, make([]byte, 12), nil, nil); return err }, false,
			`tag: missing: A256GCM decryption needs the 16-byte authentication tag returned by encrypt`},
		{"GCM decrypt with short tag", func() error {
			_, err := Decrypt(oct256, "A256GCM", d32, make([]byte, 12), nil, make([]byte, 12))
			return err
		}, false,
			`tag: A256GCM needs a 16-byte authentication tag; got 12 bytes`},
		{"GCM decrypt without iv", func() error { _, err := Decrypt(oct256, "A256GCM", d32, nil, nil, iv16); return err }, false,
			`iv: missing: A256GCM decryption needs the 12-byte iv returned by encrypt`},
		{"GCM encrypt with a caller's iv", func() error { _, err := Encrypt(oct256, "A256GCM", d32, iv16, nil); return err }, false,
			`iv: A256GCM encryption generates its own iv; do not send one`},
		{"CBC with 15-byte iv", func() error { _, err := Encrypt(oct128, "A128CBCPAD", d32, make([]byte, 15), nil); return err }, false,
			`iv: A128CBCPAD needs a 16-byte iv; got 15 bytes`},
		{"CBC decrypt with 15-byte iv", func() error { _, err := Decrypt(oct128, "A128CBC", d32, make([]byte, 15), nil, nil); return err }, false,
			`iv: A128CBC needs a 16-byte iv; got 15 bytes`},
		{"CBC decrypt without iv", func() error { _, err := Decrypt(oct128, "A128CBCPAD", d32, nil, nil, nil); return err }, false,
			`iv: missing: A128CBCPAD decryption needs the 16-byte iv used to encrypt`},
		{"CBC with aad", func() error { _, err := Encrypt(oct128, "A128CBC", d32, nil, []byte("a")); return err }, false,
			`aad: not used by A128CBC`},
		{"CBC decrypt with tag", func() error { _, err := Decrypt(oct128, "A128CBC", d32, iv16, nil, iv16); return err }, false,
			`tag: not used by A128CBC`},
		{"CBC without padding, 15 bytes", func() error { _, err := Encrypt(oct128, "A128CBC", make([]byte, 15), nil, nil); return err }, false,
			`value: A128CBC (no padding) needs a multiple of 16 bytes; got 15 bytes (use A128CBCPAD to pad)`},
		{"CBC ciphertext not whole blocks", func() error { _, err := Decrypt(oct128, "A128CBCPAD", make([]byte, 17), iv16, nil, nil); return err }, false,
			`value: A128CBCPAD ciphertext is a multiple of 16 bytes; got 17 bytes`},
		{"RSA with iv", func() error { _, err := Encrypt(rsa2048, "RSA-OAEP-256", d32, iv16, nil); return err }, false,
			`iv: not used by RSA-OAEP-256`},
		{"RSA decrypt with tag", func() error { _, err := Decrypt(rsa2048, "RSA-OAEP", make([]byte, 256), nil, nil, iv16); return err }, false,
			`tag: not used by RSA-OAEP`},
		{"RSA plaintext too long", func() error { _, err := Encrypt(rsa2048, "RSA-OAEP-256", make([]byte, 191), nil, nil); return err }, false,
			`value: 191 bytes is too long for RSA-OAEP-256 with a 2048-bit key (at most 190)`},
		{"RSA1_5 plaintext too long", func() error { _, err := WrapKey(rsa2048, "RSA1_5", make([]byte, 246)); return err }, false,
			`value: 246 bytes is too long for RSA1_5 with a 2048-bit key (at most 245)`},
		{"RSA ciphertext of wrong length", func() error { _, err := UnwrapKey(rsa2048, "RSA-OAEP", make([]byte, 128)); return err }, false,
			`value: RSA-OAEP ciphertext for a 2048-bit key is 256 bytes; got 128`},
		{"wrap nothing", func() error { _, err := WrapKey(oct256, "A256KW", nil); return err }, false,
			`value: empty: there is no key to wrap`},
		{"KW of 12 bytes", func() error { _, err := WrapKey(oct256, "A256KW", make([]byte, 12)); return err }, false,
			`value: AES key wrap (RFC 3394) needs a multiple of 8 bytes, at least 16; got 12 bytes`},
		{"KW unwrap of 16 bytes", func() error { _, err := UnwrapKey(oct256, "CKM_AES_KEY_WRAP", make([]byte, 16)); return err }, false,
			`value: an RFC 3394 wrapped key is a multiple of 8 bytes, at least 24; got 16 bytes`},
		{"KWP unwrap of 20 bytes", func() error { _, err := UnwrapKey(oct256, "CKM_AES_KEY_WRAP_PAD", make([]byte, 20)); return err }, false,
			`value: an RFC 5649 wrapped key is a multiple of 8 bytes, at least 16; got 20 bytes`},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.run()
			if c.isAlg {
				wantErr[algErr](t, err, c.message)
			} else {
				wantErr[inErr](t, err, c.message)
			}
		})
	}
}

// TestDecryptErrorIsOpaque: every integrity failure, whatever its cause,
// yields the same message.
func TestDecryptErrorIsOpaque(t *testing.T) {
	rsa2048 := keyNamed(t, "RSA-2048")
	oct := keyNamed(t, "oct-256")
	var msgs []string
	for _, f := range []func() error{
		func() error { _, err := Decrypt(rsa2048, "RSA-OAEP-256", make([]byte, 256), nil, nil, nil); return err },
		func() error {
			_, err := Decrypt(rsa2048, "RSA1_5", bytes.Repeat([]byte{1}, 256), nil, nil, nil)
			return err
		},
		func() error {
			_, err := Decrypt(oct, "A256GCM", []byte("x"), make([]byte, 12), nil, make([]byte, 16))
			return err
		},
		func() error {
			_, err := Decrypt(oct, "A256CBCPAD", make([]byte, 32), make([]byte, 16), nil, nil)
			return err
		},
		func() error { _, err := UnwrapKey(oct, "A256KW", make([]byte, 40)); return err },
		func() error { _, err := UnwrapKey(oct, "CKM_AES_KEY_WRAP_PAD", make([]byte, 40)); return err },
	} {
		err := f()
		if !errors.As(err, new(*DecryptError)) {
			t.Fatalf("error = %v (%T), want *DecryptError", err, err)
		}
		msgs = append(msgs, err.Error())
	}
	for _, m := range msgs[1:] {
		if m != msgs[0] {
			t.Fatalf("DecryptError messages differ: %q vs %q", m, msgs[0])
		}
	}
}

func TestBrokenMaterial(t *testing.T) {
	for _, c := range []struct {
		name string
		m    *Material
	}{
		{"nil", nil},
		{"RSA without key", &Material{Kind: KindRSA}},
		{"EC without key", &Material{Kind: KindEC}},
		{"oct of 5 bytes", &Material{Kind: KindOct, Oct: make([]byte, 5)}},
		{"unknown kind", &Material{Kind: "DSA", Oct: make([]byte, 16)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Sign(c.m, "RS256", make([]byte, 32)); err == nil {
				t.Fatal("Sign succeeded")
			}
			if _, err := c.m.MarshalPrivate(); err == nil {
				t.Fatal("MarshalPrivate succeeded")
			}
		})
	}
}
