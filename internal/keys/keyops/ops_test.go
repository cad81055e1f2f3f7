package keyops

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/asn1"
	"errors"
	"hash"
	"math/big"
	"strings"
	"testing"
)

const (
	encryptAlgs = "RSA1_5 RSA-OAEP RSA-OAEP-256 A128GCM A192GCM A256GCM A128CBC A192CBC A256CBC A128CBCPAD A192CBCPAD A256CBCPAD"
	wrapAlgs    = "RSA1_5 RSA-OAEP RSA-OAEP-256 A128KW A192KW A256KW CKM_AES_KEY_WRAP CKM_AES_KEY_WRAP_PAD"
	signAlgs    = "RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512"
)

// fits is the test's own statement of which key each algorithm needs,
// written independently of lookupAlg.
func fits(alg, key string) bool {
	switch {
	case strings.HasPrefix(alg, "RSA") || alg[:2] == "RS" || alg[:2] == "PS":
		return strings.HasPrefix(key, "RSA-")
	case alg == "ES256":
		return key == "EC-P-256"
	case alg == "ES384":
		return key == "EC-P-384"
	case alg == "ES512":
		return key == "EC-P-521"
	case strings.HasPrefix(alg, "CKM_"):
		return strings.HasPrefix(key, "oct-")
	default: // A128..., A192..., A256...
		return key == "oct-"+alg[1:4]
	}
}

func kindOfTestKey(name string) string {
	switch {
	case strings.HasPrefix(name, "RSA"):
		return KindRSA
	case strings.HasPrefix(name, "EC"):
		return KindEC
	}
	return KindOct
}

func TestEncryptDecryptMatrix(t *testing.T) {
	for _, k := range testKeys(t) {
		for _, alg := range strings.Fields(encryptAlgs) {
			t.Run(k.name+"/"+alg, func(t *testing.T) {
				pt := []byte("the quick brown fox jumps over the lazy dog!!!!!")[:37]
				if strings.Contains(alg, "CBC") && !strings.HasSuffix(alg, "PAD") {
					pt = pt[:32]
				}
				var aad []byte
				if strings.HasSuffix(alg, "GCM") {
					aad = []byte("header")
				}
				res, err := Encrypt(k.m, alg, pt, nil, aad)
				if !fits(alg, k.name) {
					var ae *AlgorithmError
					if !errors.As(err, &ae) || ae.Kind != kindOfTestKey(k.name) {
						t.Fatalf("Encrypt error = %v, want AlgorithmError for %s key", err, kindOfTestKey(k.name))
					}
					if _, err := Decrypt(k.m, alg, make([]byte, 32), nil, nil, nil); !errors.As(err, &ae) {
						t.Fatalf("Decrypt error = %v, want AlgorithmError", err)
					}
					return
				}
				if err != nil {
					t.Fatalf("Encrypt: %v", err)
				}
				switch {
				case strings.HasPrefix(alg, "RSA"):
					if len(res.Value) != k.m.Size()/8 || res.IV != nil || res.Tag != nil {
						t.Fatalf("RSA result: %d-byte value, iv %x, tag %x", len(res.Value), res.IV, res.Tag)
					}
				case strings.HasSuffix(alg, "GCM"):
					if len(res.Value) != len(pt) || len(res.IV) != 12 || len(res.Tag) != 16 {
						t.Fatalf("GCM result: value %d, iv %d, tag %d bytes", len(res.Value), len(res.IV), len(res.Tag))
					}
				default:
					if len(res.IV) != 16 || res.Tag != nil || len(res.Value)%16 != 0 || len(res.Value) < len(pt) {
						t.Fatalf("CBC result: value %d, iv %d, tag %d bytes", len(res.Value), len(res.IV), len(res.Tag))
					}
				}
				if bytes.Contains(res.Value, pt[:16]) {
					t.Fatal("ciphertext contains plaintext")
				}
				got, err := Decrypt(k.m, alg, res.Value, res.IV, aad, res.Tag)
				if err != nil {
					t.Fatalf("Decrypt: %v", err)
				}
				if !bytes.Equal(got, pt) {
					t.Fatalf("Decrypt = %q, want %q", got, pt)
				}
				// The same plaintext twice gives different ciphertexts:
				// RSA padding and generated IVs are random.
				res2, err := Encrypt(k.m, alg, pt, nil, aad)
				if err != nil || bytes.Equal(res2.Value, res.Value) {
					t.Fatalf("second Encrypt: err %v, identical ciphertext %v", err, bytes.Equal(res2.Value, res.Value))
				}
			})
		}
	}
}

func TestWrapUnwrapMatrix(t *testing.T) {
	for _, k := range testKeys(t) {
		for _, alg := range strings.Fields(wrapAlgs) {
			t.Run(k.name+"/"+alg, func(t *testing.T) {
				cek := bytes.Repeat([]byte{0x5a, 0xc3, 0x11}, 11)[:32]
				w, err := WrapKey(k.m, alg, cek)
				if !fits(alg, k.name) {
					var ae *AlgorithmError
					if !errors.As(err, &ae) || ae.Kind != kindOfTestKey(k.name) {
						t.Fatalf("WrapKey error = %v, want AlgorithmError for %s key", err, kindOfTestKey(k.name))
					}
					if _, err := UnwrapKey(k.m, alg, make([]byte, 40)); !errors.As(err, &ae) {
						t.Fatalf("UnwrapKey error = %v, want AlgorithmError", err)
					}
					return
				}
				if err != nil {
					t.Fatalf("WrapKey: %v", err)
				}
				if !strings.HasPrefix(alg, "RSA") && len(w) != len(cek)+8 {
					t.Fatalf("AES wrap of 32 bytes is %d bytes, want 40", len(w))
				}
				got, err := UnwrapKey(k.m, alg, w)
				if err != nil || !bytes.Equal(got, cek) {
					t.Fatalf("UnwrapKey = %x, %v; want %x", got, err, cek)
				}
				// Tampering is detected. RSA1_5 has no integrity: a tampered
				// ciphertext decrypts to well-formed garbage with probability
				// about 2^-16, so there only a wrong result is required.
				w[0] ^= 0x80
				got, err = UnwrapKey(k.m, alg, w)
				if alg == "RSA1_5" && err == nil && !bytes.Equal(got, cek) {
					return
				}
				if !errors.As(err, new(*DecryptError)) {
					t.Fatalf("UnwrapKey(tampered) error = %v, want DecryptError", err)
				}
			})
		}
	}
}

func TestSignVerifyMatrix(t *testing.T) {
	for _, k := range testKeys(t) {
		for _, alg := range strings.Fields(signAlgs) {
			t.Run(k.name+"/"+alg, func(t *testing.T) {
				h := hashOf(alg)
				digest := h.New().Sum([]byte("message"))[len("message"):]
				sig, err := Sign(k.m, alg, digest)
				if !fits(alg, k.name) {
					var ae *AlgorithmError
					if !errors.As(err, &ae) || ae.Kind != kindOfTestKey(k.name) {
						t.Fatalf("Sign error = %v, want AlgorithmError for %s key", err, kindOfTestKey(k.name))
					}
					if _, err := Verify(k.m, alg, digest, make([]byte, 64)); !errors.As(err, &ae) {
						t.Fatalf("Verify error = %v, want AlgorithmError", err)
					}
					return
				}
				if err != nil {
					t.Fatalf("Sign: %v", err)
				}
				wantLen := k.m.Size() / 8
				if strings.HasPrefix(alg, "ES") {
					wantLen = 2 * ((k.m.Size() + 7) / 8)
				}
				if len(sig) != wantLen {
					t.Fatalf("signature is %d bytes, want %d", len(sig), wantLen)
				}
				if ok, err := Verify(k.m, alg, digest, sig); !ok || err != nil {
					t.Fatalf("Verify(own signature) = %v, %v", ok, err)
				}
				bad := append([]byte(nil), sig...)
				bad[len(bad)/2] ^= 1
				if ok, err := Verify(k.m, alg, digest, bad); ok || err != nil {
					t.Fatalf("Verify(altered signature) = %v, %v; want false, nil", ok, err)
				}
				other := append([]byte(nil), digest...)
				other[0] ^= 1
				if ok, err := Verify(k.m, alg, other, sig); ok || err != nil {
					t.Fatalf("Verify(other digest) = %v, %v; want false, nil", ok, err)
				}
			})
		}
	}
}

func hashOf(alg string) crypto.Hash {
	switch alg[2:] {
	case "256":
		return crypto.SHA256
	case "384":
		return crypto.SHA384
	}
	return crypto.SHA512
}

// TestRSACrossCheck holds the RSA paths to crypto/rsa called directly, in
// both directions, so that a symmetric bug (the same mistake on both sides
// of a round trip) cannot hide.
func TestRSACrossCheck(t *testing.T) {
	for _, name := range []string{"RSA-2048", "RSA-2048-e3", "RSA-3072", "RSA-4096"} {
		m := keyNamed(t, name)
		pub := &m.RSA.PublicKey
		msg := []byte("32-byte content-encryption key!!")
		t.Run(name+"/encrypt", func(t *testing.T) {
			for _, c := range []struct {
				alg string
				h   func() hash.Hash
			}{{"RSA-OAEP", sha1.New}, {"RSA-OAEP-256", sha256.New}, {"RSA1_5", nil}} {
				var theirs []byte
				var err error
				if c.h != nil {
					theirs, err = rsa.EncryptOAEP(c.h(), rand.Reader, pub, msg, nil)
				} else {
					//lint:ignore SA1019 RSA1_5 is part of the Key Vault API kura is compatible with (documented as a padding oracle).
					theirs, err = rsa.EncryptPKCS1v15(rand.Reader, pub, msg)
				}
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range []func() ([]byte, error){
					func() ([]byte, error) { return Decrypt(m, c.alg, theirs, nil, nil, nil) },
					func() ([]byte, error) { return UnwrapKey(m, c.alg, theirs) },
				} {
					if got, err := f(); err != nil || !bytes.Equal(got, msg) {
						t.Fatalf("%s: decrypting crypto/rsa ciphertext = %q, %v", c.alg, got, err)
					}
				}
				ours, err := Encrypt(m, c.alg, msg, nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				wrapped, err := WrapKey(m, c.alg, msg)
				if err != nil {
					t.Fatal(err)
				}
				for _, ct := range [][]byte{ours.Value, wrapped} {
					var got []byte
					if c.h != nil {
						got, err = rsa.DecryptOAEP(c.h(), nil, m.RSA, ct, nil)
					} else {
						//lint:ignore SA1019 RSA1_5 is part of the Key Vault API kura is compatible with (documented as a padding oracle).
						got, err = rsa.DecryptPKCS1v15(nil, m.RSA, ct)
					}
					if err != nil || !bytes.Equal(got, msg) {
						t.Fatalf("%s: crypto/rsa decrypting ours = %q, %v", c.alg, got, err)
					}
				}
				// The OAEP hash matters: a SHA-1 ciphertext must not
				// decrypt as RSA-OAEP-256 and vice versa.
				if c.alg == "RSA-OAEP" {
					if _, err := Decrypt(m, "RSA-OAEP-256", theirs, nil, nil, nil); !errors.As(err, new(*DecryptError)) {
						t.Fatalf("RSA-OAEP ciphertext under RSA-OAEP-256: %v, want DecryptError", err)
					}
				}
			}
		})
		t.Run(name+"/sign", func(t *testing.T) {
			for _, alg := range []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"} {
				h := hashOf(alg)
				digest := h.New().Sum(nil)
				ours, err := Sign(m, alg, digest)
				if err != nil {
					t.Fatal(err)
				}
				var theirs, theirsMaxSalt []byte
				if alg[0] == 'R' {
					if err := rsa.VerifyPKCS1v15(pub, h, digest, ours); err != nil {
						t.Fatalf("%s: crypto/rsa rejects our signature: %v", alg, err)
					}
					theirs, err = rsa.SignPKCS1v15(nil, m.RSA, h, digest)
					if !bytes.Equal(theirs, ours) {
						t.Fatalf("%s: PKCS#1 v1.5 is deterministic, signatures differ", alg)
					}
				} else {
					// Key Vault's salt length is the hash length: verifying
					// with exactly that length proves we used it.
					opts := &rsa.PSSOptions{SaltLength: h.Size()}
					if err := rsa.VerifyPSS(pub, h, digest, ours, opts); err != nil {
						t.Fatalf("%s: crypto/rsa rejects our signature with salt %d: %v", alg, h.Size(), err)
					}
					theirs, err = rsa.SignPSS(rand.Reader, m.RSA, h, digest, opts)
					if err != nil {
						t.Fatal(err)
					}
					theirsMaxSalt, err = rsa.SignPSS(rand.Reader, m.RSA, h, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
				}
				if err != nil {
					t.Fatal(err)
				}
				for _, sig := range [][]byte{theirs, theirsMaxSalt} {
					if sig == nil {
						continue
					}
					if ok, err := Verify(m, alg, digest, sig); !ok || err != nil {
						t.Fatalf("%s: Verify(crypto/rsa signature) = %v, %v", alg, ok, err)
					}
				}
			}
		})
	}
}

func TestECDSACrossCheck(t *testing.T) {
	for _, c := range []struct{ key, alg string }{
		{"EC-P-256", "ES256"}, {"EC-P-384", "ES384"}, {"EC-P-521", "ES512"},
	} {
		t.Run(c.alg, func(t *testing.T) {
			m := keyNamed(t, c.key)
			digest := hashOf(c.alg).New().Sum([]byte("x"))[1:]
			n := (m.EC.Curve.Params().N.BitLen() + 7) / 8

			ours, err := Sign(m, c.alg, digest)
			if err != nil {
				t.Fatal(err)
			}
			r, s := new(big.Int).SetBytes(ours[:n]), new(big.Int).SetBytes(ours[n:])
			if !ecdsa.Verify(&m.EC.PublicKey, digest, r, s) {
				t.Fatal("crypto/ecdsa rejects our r||s signature")
			}

			der, err := ecdsa.SignASN1(rand.Reader, m.EC, digest)
			if err != nil {
				t.Fatal(err)
			}
			var rs struct{ R, S *big.Int }
			if _, err := asn1.Unmarshal(der, &rs); err != nil {
				t.Fatal(err)
			}
			theirs := make([]byte, 2*n)
			rs.R.FillBytes(theirs[:n])
			rs.S.FillBytes(theirs[n:])
			if ok, err := Verify(m, c.alg, digest, theirs); !ok || err != nil {
				t.Fatalf("Verify(crypto/ecdsa signature as r||s) = %v, %v", ok, err)
			}
			// The DER form is refused as malformed, not reported false:
			// it is a caller bug, and the message says so.
			if _, err := Verify(m, c.alg, digest, der); !errors.As(err, new(*InputError)) {
				t.Fatalf("Verify(DER) error = %v, want InputError", err)
			}
		})
	}
}

// TestAESCrossCheck compares the AES modes with crypto/cipher used directly.
func TestAESCrossCheck(t *testing.T) {
	for _, k := range testKeys(t) {
		if k.m.Kind != KindOct {
			continue
		}
		bits := strings.TrimPrefix(k.name, "oct-")
		block, err := aes.NewCipher(k.m.Oct)
		if err != nil {
			t.Fatal(err)
		}
		pt := []byte("twenty-one byte text!")
		t.Run(k.name+"/GCM", func(t *testing.T) {
			// The service picks the iv; the output must be exactly what
			// crypto/cipher makes with that iv.
			res, err := Encrypt(k.m, "A"+bits+"GCM", pt, nil, []byte("aad"))
			if err != nil {
				t.Fatal(err)
			}
			iv := res.IV
			if len(iv) != 12 {
				t.Fatalf("iv is %d bytes", len(iv))
			}
			g, _ := cipher.NewGCM(block)
			want := g.Seal(nil, iv, pt, []byte("aad"))
			if got := append(append([]byte(nil), res.Value...), res.Tag...); !bytes.Equal(got, want) {
				t.Fatalf("value||tag = %x, want %x", got, want)
			}
			got, err := Decrypt(k.m, "A"+bits+"GCM", want[:len(pt)], iv, []byte("aad"), want[len(pt):])
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("Decrypt(crypto/cipher output) = %q, %v", got, err)
			}
			for name, f := range map[string]func() ([]byte, error){
				"wrong aad": func() ([]byte, error) { return Decrypt(k.m, "A"+bits+"GCM", res.Value, iv, []byte("AAD"), res.Tag) },
				"no aad":    func() ([]byte, error) { return Decrypt(k.m, "A"+bits+"GCM", res.Value, iv, nil, res.Tag) },
				"wrong iv": func() ([]byte, error) {
					return Decrypt(k.m, "A"+bits+"GCM", res.Value, pt[:12], []byte("aad"), res.Tag)
				},
				"wrong tag":  func() ([]byte, error) { return Decrypt(k.m, "A"+bits+"GCM", res.Value, iv, []byte("aad"), pt[:16]) },
				"short text": func() ([]byte, error) { return Decrypt(k.m, "A"+bits+"GCM", res.Value[1:], iv, []byte("aad"), res.Tag) },
			} {
				if _, err := f(); !errors.As(err, new(*DecryptError)) {
					t.Errorf("%s: error = %v, want DecryptError", name, err)
				}
			}
		})
		t.Run(k.name+"/CBC", func(t *testing.T) {
			iv := unhex(t, "0f0e0d0c0b0a09080706050403020100")
			padded := append(append([]byte(nil), pt...), bytes.Repeat([]byte{11}, 11)...)
			want := make([]byte, len(padded))
			cipher.NewCBCEncrypter(block, iv).CryptBlocks(want, padded)
			res, err := Encrypt(k.m, "A"+bits+"CBCPAD", pt, iv, nil)
			if err != nil || !bytes.Equal(res.Value, want) {
				t.Fatalf("CBCPAD = %x, %v; want %x", res.Value, err, want)
			}
			res, err = Encrypt(k.m, "A"+bits+"CBC", padded, iv, nil)
			if err != nil || !bytes.Equal(res.Value, want) {
				t.Fatalf("CBC = %x, %v; want %x", res.Value, err, want)
			}
			if got, err := Decrypt(k.m, "A"+bits+"CBC", want, iv, nil, nil); err != nil || !bytes.Equal(got, padded) {
				t.Fatalf("CBC decrypt = %x, %v", got, err)
			}
			// A full block of padding when the input is block-aligned.
			res, err = Encrypt(k.m, "A"+bits+"CBCPAD", padded, iv, nil)
			if err != nil || len(res.Value) != 48 {
				t.Fatalf("CBCPAD of 32 bytes = %d bytes, %v; want 48", len(res.Value), err)
			}
			// Wrong padding (decrypting a ciphertext whose last block does
			// not end in valid PKCS#7) is the one fixed DecryptError.
			bad := make([]byte, 32)
			cipher.NewCBCEncrypter(block, iv).CryptBlocks(bad, bytes.Repeat([]byte{0x11}, 32))
			if _, err := Decrypt(k.m, "A"+bits+"CBCPAD", bad, iv, nil, nil); !errors.As(err, new(*DecryptError)) {
				t.Fatalf("bad padding: error = %v, want DecryptError", err)
			}
		})
	}
}

func TestUnpadPKCS7(t *testing.T) {
	block := func(tail ...byte) []byte {
		b := bytes.Repeat([]byte{0xee}, 32)
		copy(b[32-len(tail):], tail)
		return b
	}
	for _, c := range []struct {
		name string
		in   []byte
		n    int
		ok   bool
	}{
		{"one byte", block(1), 31, true},
		{"three bytes", block(3, 3, 3), 29, true},
		{"full block", block(bytes.Repeat([]byte{16}, 16)...), 16, true},
		{"zero", block(0), 0, false},
		{"seventeen", block(17), 0, false},
		{"inconsistent", block(2, 3, 3), 0, false},
		{"one wrong far byte", block(append([]byte{15}, bytes.Repeat([]byte{16}, 15)...)...), 0, false},
		{"0xff", block(0xff), 0, false},
	} {
		n, ok := unpadPKCS7(c.in)
		if ok != c.ok || (ok && n != c.n) {
			t.Errorf("%s: unpad = %d, %v; want %d, %v", c.name, n, ok, c.n, c.ok)
		}
	}
}

func TestIVHandling(t *testing.T) {
	oct := keyNamed(t, "oct-256")
	// A caller-supplied IV is used and echoed back.
	iv := bytes.Repeat([]byte{7}, 16)
	res, err := Encrypt(oct, "A256CBCPAD", []byte("x"), iv, nil)
	if err != nil || !bytes.Equal(res.IV, iv) {
		t.Fatalf("CBC with iv: %x, %v", res.IV, err)
	}
	// Generated IVs differ between calls.
	a, _ := Encrypt(oct, "A256GCM", []byte("x"), nil, nil)
	b, _ := Encrypt(oct, "A256GCM", []byte("x"), nil, nil)
	if bytes.Equal(a.IV, b.IV) {
		t.Fatal("two generated GCM IVs are equal")
	}
	// Empty plaintext is legal for GCM and CBCPAD.
	for _, alg := range []string{"A256GCM", "A256CBCPAD"} {
		r, err := Encrypt(oct, alg, nil, nil, nil)
		if err != nil {
			t.Fatalf("%s empty: %v", alg, err)
		}
		if got, err := Decrypt(oct, alg, r.Value, r.IV, nil, r.Tag); err != nil || len(got) != 0 {
			t.Fatalf("%s empty round trip: %q, %v", alg, got, err)
		}
	}
}
