package keyops

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
)

// privateJWK is the test's encoder for importable JWKs (kura itself never
// emits private JWKs).
func privateJWK(t testing.TB, m *Material) JWK {
	t.Helper()
	j := m.PublicJWK()
	switch m.Kind {
	case KindRSA:
		k := m.RSA
		j.D, j.P, j.Q = k.D.Bytes(), k.Primes[0].Bytes(), k.Primes[1].Bytes()
		j.DP, j.DQ, j.QI = k.Precomputed.Dp.Bytes(), k.Precomputed.Dq.Bytes(), k.Precomputed.Qinv.Bytes()
	case KindEC:
		d, err := m.EC.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		j.D = d
	case KindOct:
		j.K = m.Oct
	}
	return j
}

func TestPublicJWK(t *testing.T) {
	allowed := map[string][]string{
		KindRSA: {"e", "kty", "n"},
		KindEC:  {"crv", "kty", "x", "y"},
		KindOct: {"kty"},
	}
	for _, k := range testKeys(t) {
		t.Run(k.name, func(t *testing.T) {
			j := k.m.PublicJWK()
			var names []string
			var b []byte // every byte member, concatenated
			for _, f := range []struct {
				name string
				v    []byte
			}{{"n", j.N}, {"e", j.E}, {"d", j.D}, {"dp", j.DP}, {"dq", j.DQ}, {"qi", j.QI}, {"p", j.P}, {"q", j.Q},
				{"k", j.K}, {"x", j.X}, {"y", j.Y}, {"key_hsm", j.T}} {
				if len(f.v) > 0 {
					names = append(names, f.name)
					b = append(b, f.v...)
				}
			}
			for n, v := range map[string]string{"kty": j.Kty, "crv": j.Crv, "kid": j.Kid} {
				if v != "" {
					names = append(names, n)
				}
			}
			if len(j.KeyOps) > 0 {
				names = append(names, "key_ops")
			}
			slices.Sort(names)
			if !slices.Equal(names, allowed[k.m.Kind]) {
				t.Fatalf("public JWK members %v, want exactly %v", names, allowed[k.m.Kind])
			}
			// No private bytes in any member: the secret scalar, exponent
			// or primes (their leading 16 bytes) appear nowhere.
			var secrets [][]byte
			switch k.m.Kind {
			case KindOct:
				if len(j.K) > 0 {
					t.Fatal("oct public JWK carries k")
				}
			case KindRSA:
				secrets = [][]byte{k.m.RSA.D.Bytes(), k.m.RSA.Primes[0].Bytes(), k.m.RSA.Primes[1].Bytes()}
			case KindEC:
				d, err := k.m.EC.Bytes()
				if err != nil {
					t.Fatal(err)
				}
				secrets = [][]byte{d}
			}
			for _, sec := range secrets {
				if bytes.Contains(b, sec[:16]) {
					t.Fatal("public JWK contains private key bytes")
				}
			}
			switch k.m.Kind {
			case KindRSA:
				want := big.NewInt(int64(k.m.RSA.E)).Bytes()
				if !bytes.Equal(j.E, want) || new(big.Int).SetBytes(j.N).Cmp(k.m.RSA.N) != 0 {
					t.Fatal("n or e wrong")
				}
				if k.m.RSA.E == 65537 && !bytes.Equal(j.E, []byte{1, 0, 1}) {
					t.Fatalf("e = %x, want 010001 (AQAB)", j.E)
				}
			case KindEC:
				size := (k.m.Size() + 7) / 8
				if len(j.X) != size || len(j.Y) != size || j.Crv != k.m.Curve() {
					t.Fatalf("x %d, y %d bytes, crv %q; want %d-byte coordinates on %s", len(j.X), len(j.Y), j.Crv, size, k.m.Curve())
				}
				pub, err := ecdsa.ParseUncompressedPublicKey(k.m.EC.Curve, append(append([]byte{4}, j.X...), j.Y...))
				if err != nil || !pub.Equal(&k.m.EC.PublicKey) {
					t.Fatalf("x, y are not the public point: %v", err)
				}
			}
			// A public JWK is not importable.
			if _, err := FromJWK(j); err == nil {
				t.Fatal("FromJWK(public JWK) succeeded")
			}
		})
	}
}

// TestECCoordinatesFixedSize finds a P-256 key whose x or y has a leading zero
// byte, the case where a naive big.Int encoding produces short values.
func TestECCoordinatesFixedSize(t *testing.T) {
	for i := 0; i < 2000; i++ {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pt, _ := k.PublicKey.Bytes()
		if pt[1] != 0 && pt[33] != 0 {
			continue
		}
		j := (&Material{Kind: KindEC, EC: k}).PublicJWK()
		if len(j.X) != 32 || len(j.Y) != 32 {
			t.Fatalf("coordinates %d and %d bytes, want 32", len(j.X), len(j.Y))
		}
		return
	}
	t.Skip("no key with a leading zero coordinate byte in 2000 tries")
}

func TestFromJWKRoundTrip(t *testing.T) {
	for _, k := range testKeys(t) {
		t.Run(k.name, func(t *testing.T) {
			j := privateJWK(t, k.m)
			b, err := json.Marshal(j)
			if err != nil {
				t.Fatal(err)
			}
			var back JWK
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			m, err := FromJWK(back)
			if err != nil {
				t.Fatalf("FromJWK: %v", err)
			}
			want, _ := k.m.MarshalPrivate()
			got, _ := m.MarshalPrivate()
			if !bytes.Equal(got, want) || m.Kind != k.m.Kind || m.Size() != k.m.Size() {
				t.Fatal("imported key differs from the original")
			}
			// The -HSM spellings import to the same family.
			j.Kty += "-HSM"
			if m, err := FromJWK(j); err != nil || m.Kind != k.m.Kind {
				t.Fatalf("%s: %v", j.Kty, err)
			}
			// CRT values are optional.
			if k.m.Kind == KindRSA {
				j.DP, j.DQ, j.QI = nil, nil, nil
				if _, err := FromJWK(j); err != nil {
					t.Fatalf("without dp, dq, qi: %v", err)
				}
			}
			// EC x and y are optional, and short (zero-stripped) values
			// are padded.
			if k.m.Kind == KindEC {
				short := j
				short.X, short.Y = nil, nil
				if _, err := FromJWK(short); err != nil {
					t.Fatalf("without x, y: %v", err)
				}
				short = j
				short.D = append([]byte{0}, j.D...)[1:]
				if _, err := FromJWK(short); err != nil {
					t.Fatalf("d as given: %v", err)
				}
			}
		})
	}
}

func TestFromJWKRefusals(t *testing.T) {
	rsaJ := privateJWK(t, keyNamed(t, "RSA-2048"))
	other := keyNamed(t, "RSA-3072").RSA
	ecJ := privateJWK(t, keyNamed(t, "EC-P-256"))
	ec384 := privateJWK(t, keyNamed(t, "EC-P-384"))
	octJ := privateJWK(t, keyNamed(t, "oct-256"))

	with := func(base JWK, f func(*JWK)) JWK { f(&base); return base }
	for _, c := range []struct {
		name string
		j    JWK
		msg  string
	}{
		{"missing kty", with(octJ, func(j *JWK) { j.Kty = "" }), `key.kty: missing`},
		{"unknown kty", with(octJ, func(j *JWK) { j.Kty = "FOO" }),
			`key.kty: "FOO" is not a supported key type (RSA, RSA-HSM, EC, EC-HSM, oct or oct-HSM)`},
		{"BYOK blob", with(rsaJ, func(j *JWK) { j.T = []byte{1} }),
			`key.key_hsm: importing a BYOK-protected key is not supported; send the plaintext key members`},

		{"RSA missing d", with(rsaJ, func(j *JWK) { j.D = nil }), `key.d: missing`},
		{"RSA missing p", with(rsaJ, func(j *JWK) { j.P = nil }), `key.p: missing`},
		{"RSA missing n", with(rsaJ, func(j *JWK) { j.N = nil }), `key.n: missing`},
		{"RSA p*q != n", with(rsaJ, func(j *JWK) { j.P = other.Primes[0].Bytes() }), `key.n: does not equal p*q`},
		{"RSA q = p", with(rsaJ, func(j *JWK) {
			p := new(big.Int).SetBytes(j.P)
			j.N, j.Q = new(big.Int).Mul(p, p).Bytes(), j.P
		}), `key.q: equals p`},
		{"RSA composite p", compositeP(t, rsaJ), `key.p: not prime`},
		{"RSA wrong d", with(rsaJ, func(j *JWK) {
			j.D = new(big.Int).Sub(new(big.Int).SetBytes(j.D), big.NewInt(2)).Bytes()
		}), `key.d: not the private exponent matching e, p and q`},
		{"RSA d >= n", with(rsaJ, func(j *JWK) { j.D = j.N }), `key.d: out of range: must be greater than 1 and less than n`},
		{"RSA wrong dp", with(rsaJ, func(j *JWK) { j.DP = j.DQ }), `key.dp: does not equal d mod (p-1)`},
		{"RSA wrong qi", with(rsaJ, func(j *JWK) { j.QI = []byte{1} }), `key.qi: does not equal q^-1 mod p`},
		{"RSA even e", with(rsaJ, func(j *JWK) { j.E = []byte{1, 0, 0} }), `key.e: 65536 is not a valid public exponent (odd, at least 3)`},
		{"RSA e of 5 bytes", with(rsaJ, func(j *JWK) { j.E = []byte{1, 0, 0, 0, 1} }), `key.e: too large: the public exponent must be below 2^31`},
		{"RSA 1024-bit", with(rsaJ, func(j *JWK) { j.N = j.N[:128] }),
			`key.n: a 1024-bit modulus is not a supported RSA key size (2048, 3072 or 4096 bits)`},
		{"RSA with k", with(rsaJ, func(j *JWK) { j.K = octJ.K }), `key.k: not a member of an RSA key`},
		{"RSA with crv", with(rsaJ, func(j *JWK) { j.Crv = "P-256" }), `key.crv: not a member of an RSA key`},

		{"EC missing d", with(ecJ, func(j *JWK) { j.D = nil }), `key.d: missing`},
		{"EC missing crv", with(ecJ, func(j *JWK) { j.Crv = "" }), `key.crv: missing`},
		{"EC unknown crv", with(ecJ, func(j *JWK) { j.Crv = "P-999" }),
			`key.crv: "P-999" is not a supported curve (P-256, P-384 or P-521)`},
		{"EC P-256K", with(ecJ, func(j *JWK) { j.Crv = "P-256K" }),
			`key.crv: P-256K (secp256k1) is not supported by kura; use P-256, P-384 or P-521`},
		{"EC point off curve", with(ecJ, func(j *JWK) {
			y := new(big.Int).SetBytes(j.Y)
			j.Y = y.Add(y, big.NewInt(1)).FillBytes(make([]byte, 32))
		}), `key.x: (x, y) is not a point on P-256`},
		{"EC d not matching x, y", with(ecJ, func(j *JWK) { j.X, j.Y = ec384.X[:32], ec384.Y[:32] }), ""},
		{"EC d of another key", with(ecJ, func(j *JWK) { j.D = ec384.D[:32] }), `key.d: does not match the public point (x, y)`},
		{"EC d zero", with(ecJ, func(j *JWK) { j.D = make([]byte, 32) }),
			`key.d: not a valid P-256 private scalar (must be in [1, order-1])`},
		{"EC d too long", with(ecJ, func(j *JWK) { j.D = ec384.D }), `key.d: 48 bytes is too long: P-256 values are 32 bytes`},
		{"EC x without y", with(ecJ, func(j *JWK) { j.Y = nil }), `key.y: missing (x is present)`},
		{"EC with n", with(ecJ, func(j *JWK) { j.N = rsaJ.N }), `key.n: not a member of an EC key`},
		{"EC on P-384 data", with(ec384, func(j *JWK) { j.Crv = "P-256" }), `key.d: 48 bytes is too long: P-256 values are 32 bytes`},

		{"oct 20 bytes", with(octJ, func(j *JWK) { j.K = make([]byte, 20) }),
			`key.k: 20 bytes is not a supported AES key length (16, 24 or 32 bytes)`},
		{"oct missing k", with(octJ, func(j *JWK) { j.K = nil }), `key.k: missing`},
		{"oct with d", with(octJ, func(j *JWK) { j.D = []byte{1} }), `key.d: not a member of an oct key`},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := FromJWK(c.j)
			if m != nil {
				t.Fatal("FromJWK returned material with an error case")
			}
			var ie *InputError
			if !errors.As(err, &ie) || !strings.HasPrefix(ie.Field, "key.") {
				t.Fatalf("error = %v (%T), want *InputError on a key.* field", err, err)
			}
			if c.msg != "" && err.Error() != c.msg {
				t.Fatalf("error message\n got: %s\nwant: %s", err, c.msg)
			}
		})
	}
}

func TestGenerate(t *testing.T) {
	for _, c := range []struct {
		name      string
		kty       string
		size      int
		crv       string
		e         int
		wantKind  string
		wantSize  int
		wantCurve string
		wantE     int
		slow      bool
	}{
		{"RSA default", "RSA", 0, "", 0, KindRSA, 2048, "", 65537, false},
		{"RSA-HSM 3072", "RSA-HSM", 3072, "", 65537, KindRSA, 3072, "", 65537, true},
		{"RSA 4096", "RSA", 4096, "", 0, KindRSA, 4096, "", 65537, true},
		{"RSA e=3", "RSA", 2048, "", 3, KindRSA, 2048, "", 3, false},
		{"EC default", "EC", 0, "", 0, KindEC, 256, "P-256", 0, false},
		{"EC-HSM P-384", "EC-HSM", 0, "P-384", 0, KindEC, 384, "P-384", 0, false},
		{"EC P-521", "EC", 521, "P-521", 0, KindEC, 521, "P-521", 0, false},
		{"EC size only", "EC", 384, "", 0, KindEC, 384, "P-384", 0, false},
		{"oct default", "oct", 0, "", 0, KindOct, 256, "", 0, false},
		{"oct-HSM 128", "oct-HSM", 128, "", 0, KindOct, 128, "", 0, false},
		{"oct 192", "oct", 192, "", 0, KindOct, 192, "", 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.slow && testing.Short() {
				t.Skip("slow key generation")
			}
			m, err := Generate(c.kty, c.size, c.crv, c.e)
			if err != nil {
				t.Fatal(err)
			}
			if m.Kind != c.wantKind || m.Size() != c.wantSize || m.Curve() != c.wantCurve {
				t.Fatalf("got %s %d %q, want %s %d %q", m.Kind, m.Size(), m.Curve(), c.wantKind, c.wantSize, c.wantCurve)
			}
			if c.wantKind == KindRSA {
				if m.RSA.E != c.wantE {
					t.Fatalf("e = %d, want %d", m.RSA.E, c.wantE)
				}
				if err := m.RSA.Validate(); err != nil {
					t.Fatal(err)
				}
				// An independent check that the key works: crypto/rsa's
				// own round trip.
				ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &m.RSA.PublicKey, []byte("x"), nil)
				if err != nil {
					t.Fatal(err)
				}
				if pt, err := Decrypt(m, "RSA-OAEP-256", ct, nil, nil, nil); err != nil || string(pt) != "x" {
					t.Fatalf("decrypt: %q, %v", pt, err)
				}
			}
			// Storage round trip.
			b, err := m.MarshalPrivate()
			if err != nil {
				t.Fatal(err)
			}
			back, err := UnmarshalPrivate(c.kty, b)
			if err != nil {
				t.Fatal(err)
			}
			b2, _ := back.MarshalPrivate()
			if !bytes.Equal(b, b2) {
				t.Fatal("MarshalPrivate → UnmarshalPrivate → MarshalPrivate changed the bytes")
			}
		})
	}
	// Two generated keys differ.
	a, _ := Generate("oct", 0, "", 0)
	b, _ := Generate("oct", 0, "", 0)
	if bytes.Equal(a.Oct, b.Oct) {
		t.Fatal("two generated AES keys are equal")
	}
}

func TestGenerateRefusals(t *testing.T) {
	for _, c := range []struct {
		kty  string
		size int
		crv  string
		e    int
		msg  string
	}{
		{"FOO", 0, "", 0, `kty: "FOO" is not a supported key type (RSA, RSA-HSM, EC, EC-HSM, oct or oct-HSM)`},
		{"", 0, "", 0, `kty: "" is not a supported key type (RSA, RSA-HSM, EC, EC-HSM, oct or oct-HSM)`},
		{"RSA", 1024, "", 0, `key_size: 1024 is not a supported RSA key size (2048, 3072 or 4096)`},
		{"RSA", 2048, "", 5, `public_exponent: 5 is not supported (3 or 65537)`},
		{"RSA", 0, "P-256", 0, `crv: only EC keys have a curve`},
		{"EC", 0, "P-256K", 0, `crv: P-256K (secp256k1) is not supported by kura; use P-256, P-384 or P-521`},
		{"EC", 0, "P-999", 0, `crv: "P-999" is not a supported curve (P-256, P-384 or P-521)`},
		{"EC", 384, "P-256", 0, `key_size: 384 does not match crv P-256 (256 bits)`},
		{"EC", 255, "", 0, `key_size: 255 does not select an EC curve (256, 384 or 521)`},
		{"EC-HSM", 0, "", 65537, `public_exponent: only RSA keys have a public exponent`},
		{"oct", 512, "", 0, `key_size: 512 is not a supported AES key size (128, 192 or 256)`},
		{"oct-HSM", 0, "P-256", 0, `crv: only EC keys have a curve`},
	} {
		_, err := Generate(c.kty, c.size, c.crv, c.e)
		wantErr[*InputError](t, err, c.msg)
	}
}

func TestMarshalPrivate(t *testing.T) {
	for _, k := range testKeys(t) {
		b, err := k.m.MarshalPrivate()
		if err != nil {
			t.Fatal(err)
		}
		if k.m.Kind == KindOct {
			if !bytes.Equal(b, k.m.Oct) {
				t.Fatalf("%s: oct plaintext is not the raw key", k.name)
			}
			continue
		}
		// RSA and EC are PKCS#8 that crypto/x509 reads back to the same key,
		// as the SKR unwrapping side (x509.ParsePKCS8PrivateKey) requires.
		parsed, err := x509.ParsePKCS8PrivateKey(b)
		if err != nil {
			t.Fatalf("%s: %v", k.name, err)
		}
		var same bool
		switch p := parsed.(type) {
		case *rsa.PrivateKey:
			same = p.Equal(k.m.RSA)
		case *ecdsa.PrivateKey:
			same = p.Equal(k.m.EC)
		}
		if !same {
			t.Fatalf("%s: PKCS#8 does not hold the key", k.name)
		}
	}
}

func TestUnmarshalPrivateRefusals(t *testing.T) {
	rsaDER, _ := keyNamed(t, "RSA-2048").MarshalPrivate()
	ecDER, _ := keyNamed(t, "EC-P-256").MarshalPrivate()
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p224DER, _ := x509.MarshalPKCS8PrivateKey(p224)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallDER, _ := x509.MarshalPKCS8PrivateKey(small)
	for _, c := range []struct {
		name, kind string
		b          []byte
		msg        string
	}{
		{"RSA bytes as EC", "EC", rsaDER, "keyops: PKCS#8 data holds a *rsa.PrivateKey, not an EC key"},
		{"EC bytes as RSA", "RSA-HSM", ecDER, "keyops: PKCS#8 data holds a *ecdsa.PrivateKey, not an RSA key"},
		{"P-224", "EC", p224DER, "keyops: EC key on curve P-224: only P-256, P-384 or P-521 are supported"},
		{"RSA-1024", "RSA", smallDER, "keyops: 1024-bit, 2-prime RSA key: only two-prime 2048, 3072 or 4096-bit keys are supported"},
		{"oct of 20 bytes", "oct", make([]byte, 20), "keyops: 20-byte oct key: AES keys are 16, 24 or 32 bytes"},
		{"unknown kind", "DSA", rsaDER, `keyops: unknown key kind "DSA"`},
	} {
		if _, err := UnmarshalPrivate(c.kind, c.b); err == nil || err.Error() != c.msg {
			t.Errorf("%s: error = %v, want %q", c.name, err, c.msg)
		}
	}
	if _, err := UnmarshalPrivate("RSA", []byte("garbage")); err == nil || !strings.HasPrefix(err.Error(), "keyops: parsing PKCS#8 RSA key: ") {
		t.Errorf("garbage: error = %v", err)
	}
}

// compositeP builds a 2048-bit n = p*q where p is the product of two primes,
// so that only the primality check can refuse it.
func compositeP(t *testing.T, base JWK) JWK {
	t.Helper()
	for {
		a, _ := rand.Prime(rand.Reader, 512)
		b, _ := rand.Prime(rand.Reader, 512)
		q, _ := rand.Prime(rand.Reader, 1024)
		p := new(big.Int).Mul(a, b)
		n := new(big.Int).Mul(p, q)
		if n.BitLen() != 2048 {
			continue
		}
		base.N, base.P, base.Q = n.Bytes(), p.Bytes(), q.Bytes()
		base.D = big.NewInt(12345).Bytes()
		base.DP, base.DQ, base.QI = nil, nil, nil
		return base
	}
}
