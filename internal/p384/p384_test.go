package p384

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"math/big"
	"testing"

	"filippo.io/nistec"
)

func newKey(t testing.TB) (*ecdsa.PrivateKey, *Key) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := NewKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return priv, k
}

func sign(t testing.TB, priv *ecdsa.PrivateKey, hash []byte) (r, s *big.Int) {
	t.Helper()
	r, s, err := ecdsa.Sign(rand.Reader, priv, hash)
	if err != nil {
		t.Fatal(err)
	}
	return r, s
}

// agree checks Verify against crypto/ecdsa, the oracle, and returns the
// common answer.
func agree(t *testing.T, name string, pub *ecdsa.PublicKey, k *Key, hash []byte, r, s *big.Int) bool {
	t.Helper()
	want := ecdsa.Verify(pub, hash, r, s)
	if got := k.Verify(hash, r, s); got != want {
		t.Errorf("%s: Verify = %v, crypto/ecdsa says %v (r=%x s=%x hash=%x)", name, got, want, r, s, hash)
	}
	return want
}

func TestVerifyAgreesWithCryptoECDSA(t *testing.T) {
	n := order
	one := big.NewInt(1)
	for range 2 {
		priv, k := newKey(t)
		pub := &priv.PublicKey
		_, other := newKey(t)
		for i := range 6 {
			msg := []byte{byte(i), 'm', 's', 'g'}
			h384 := sha512.Sum384(msg)
			r, s := sign(t, priv, h384[:])
			if !agree(t, "valid", pub, k, h384[:], r, s) {
				t.Fatal("a fresh signature does not verify")
			}
			if other.Verify(h384[:], r, s) {
				t.Error("another key verifies the signature")
			}
			// Single-bit changes of the digest, r or s (a different bit of
			// each byte per message) are refused.
			for bit := i % 8; bit < 384; bit += 8 {
				h := h384
				h[bit/8] ^= 1 << (bit % 8)
				if agree(t, "flipped hash bit", pub, k, h[:], r, s) {
					t.Fatal("flipped digest verifies")
				}
				if bit%24 == i%8 {
					agree(t, "flipped r bit", pub, k, h384[:], new(big.Int).Xor(r, new(big.Int).Lsh(one, uint(bit))), s)
					agree(t, "flipped s bit", pub, k, h384[:], r, new(big.Int).Xor(s, new(big.Int).Lsh(one, uint(bit))))
				}
			}
			// s and n-s are both valid (ECDSA malleability), as in crypto/ecdsa.
			agree(t, "n-s", pub, k, h384[:], r, new(big.Int).Sub(n, s))
			// Other digest sizes: truncation and short digests.
			h512 := sha512.Sum512(msg)
			r5, s5 := sign(t, priv, h512[:])
			agree(t, "sha512 digest", pub, k, h512[:], r5, s5)
			h256 := sha256.Sum256(msg)
			r2, s2 := sign(t, priv, h256[:])
			agree(t, "sha256 digest", pub, k, h256[:], r2, s2)
			agree(t, "empty digest", pub, k, nil, r2, s2)
		}
	}
}

func TestVerifyRangeChecks(t *testing.T) {
	priv, k := newKey(t)
	pub := &priv.PublicKey
	h := sha512.Sum384([]byte("range"))
	r, s := sign(t, priv, h[:])
	n := order
	big0, big1 := big.NewInt(0), big.NewInt(1)
	nMinus1 := new(big.Int).Sub(n, big1)
	nPlus := func(x *big.Int) *big.Int { return new(big.Int).Add(n, x) }
	huge := new(big.Int).Lsh(big1, 400)
	neg := new(big.Int).Neg(r)
	for _, tc := range []struct {
		name string
		r, s *big.Int
	}{
		{"r=0", big0, s}, {"s=0", r, big0}, {"r=n", n, s}, {"s=n", r, n},
		{"r+n", nPlus(r), s}, {"s+n", r, nPlus(s)}, {"r=n-1", nMinus1, s}, {"s=n-1", r, nMinus1},
		{"r=1", big1, s}, {"s=1", r, big1}, {"r huge", huge, s}, {"s huge", r, huge},
		{"r negative", neg, s}, {"s negative", r, new(big.Int).Neg(s)},
	} {
		if agree(t, tc.name, pub, k, h[:], tc.r, tc.s) {
			t.Errorf("%s verifies", tc.name)
		}
	}
}

// TestDigestMultipleOfOrder covers u1 = 0 (the digest is n) and a digest
// above n: the scalar reductions must match crypto/ecdsa's.
func TestDigestMultipleOfOrder(t *testing.T) {
	priv, k := newKey(t)
	pub := &priv.PublicKey
	for _, e := range []*big.Int{new(big.Int).Set(order), new(big.Int).Add(order, big.NewInt(5)),
		new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 384), big.NewInt(1))} {
		hash := e.FillBytes(make([]byte, 48))
		r, s := sign(t, priv, hash)
		if !agree(t, "large digest", pub, k, hash, r, s) {
			t.Errorf("signature over digest %x does not verify", hash)
		}
	}
}

// TestForgedSignatureCornerCases builds (r, s) pairs whose R lands on
// chosen points, such as the point at infinity, which must not verify.
func TestForgedSignatureCornerCases(t *testing.T) {
	priv, k := newKey(t)
	pub := &priv.PublicKey
	// With hash e = 0 and any s, R = (r/s)·Q. Choosing r = x(Q) mod n and
	// s = r gives R = Q, whose x is r: a valid "signature" of the zero digest
	// that crypto/ecdsa accepts too (a known property of ECDSA, not a forgery
	// of a chosen message). Both must agree.
	enc, err := pub.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	r := new(big.Int).Mod(new(big.Int).SetBytes(enc[1:49]), order)
	zero := make([]byte, 48)
	agree(t, "r=s=x(Q), zero digest", pub, k, zero, r, r)
	// u1·G + u2·Q = ∞ when e/s·G = -r/s·Q, i.e. Q = -(e/r)·G: with the key
	// d = -e/r mod n. Build that key and check the infinity case is refused.
	e := big.NewInt(12345)
	rr := big.NewInt(67890)
	d := new(big.Int).ModInverse(rr, order)
	d.Mul(d, e)
	d.Neg(d)
	d.Mod(d, order)
	priv2, err := ecdsa.ParseRawPrivateKey(elliptic.P384(), d.FillBytes(make([]byte, 48)))
	if err != nil {
		t.Fatal(err)
	}
	k2, err := NewKey(&priv2.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if agree(t, "R at infinity", &priv2.PublicKey, k2, e.FillBytes(make([]byte, 48)), rr, big.NewInt(1)) {
		t.Error("a signature whose R is the point at infinity verifies")
	}
}

func TestNewKeyRefuses(t *testing.T) {
	if _, err := NewKey(nil); err == nil {
		t.Error("nil key accepted")
	}
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewKey(&p256.PublicKey); err == nil {
		t.Error("P-256 key accepted")
	}
	priv, _ := newKey(t)
	//lint:ignore SA1019 an invalid key can only be built from raw coordinates
	off := &ecdsa.PublicKey{Curve: elliptic.P384(), X: priv.X, Y: new(big.Int).Add(priv.Y, big.NewInt(1))}
	if _, err := NewKey(off); err == nil {
		t.Error("point off the curve accepted")
	}
}

// TestRxAboveOrder: a signature whose R has an x-coordinate in [n, p), so
// that r = x(R) - n. Only the final reduction mod n makes it verify, and
// r = x(R) itself must not. The key is derived from a chosen R.
func TestRxAboveOrder(t *testing.T) {
	n := order
	var R *nistec.P384Point
	var xR *big.Int
	for k := int64(1); ; k++ {
		x := new(big.Int).Add(n, big.NewInt(k))
		p, err := nistec.NewP384Point().SetBytes(append([]byte{2}, x.FillBytes(make([]byte, 48))...))
		if err == nil {
			R, xR = p, x
			break
		}
	}
	r := new(big.Int).Sub(xR, n)
	e, _ := rand.Int(rand.Reader, n)
	s, _ := rand.Int(rand.Reader, n)
	w := new(big.Int).ModInverse(s, n)
	u1 := new(big.Int).Mul(e, w)
	u1.Mod(u1, n)
	u2 := new(big.Int).Mul(r, w)
	u2.Mod(u2, n)
	// Q = u2⁻¹·(R - u1·G), so that u1·G + u2·Q = R.
	u1G, _ := nistec.NewP384Point().ScalarBaseMult(u1.FillBytes(make([]byte, 48)))
	diff := nistec.NewP384Point().Add(R, u1G.Negate(u1G))
	Q, _ := nistec.NewP384Point().ScalarMult(diff, new(big.Int).ModInverse(u2, n).FillBytes(make([]byte, 48)))
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P384(), Q.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	k, err := NewKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	hash := e.FillBytes(make([]byte, 48))
	if !agree(t, "x(R) above n", pub, k, hash, r, s) {
		t.Fatal("a signature with x(R) >= n does not verify")
	}
	if agree(t, "r = x(R) >= n", pub, k, hash, xR, s) {
		t.Fatal("r = x(R) >= n verifies")
	}
}

func TestZeroKeyRefuses(t *testing.T) {
	var k Key
	if k.Verify(make([]byte, 48), big.NewInt(1), big.NewInt(1)) {
		t.Error("a zero Key verifies")
	}
}

// fuzzPriv is the fuzz target's fixed signing key.
func fuzzPriv(f *testing.F) *ecdsa.PrivateKey {
	d := sha512.Sum384([]byte("kura p384 fuzz key"))
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P384(), d[:])
	if err != nil {
		f.Fatal(err)
	}
	return priv
}

// FuzzVerifyAgrees holds Verify equal to crypto/ecdsa.Verify. The fuzzer
// chooses the digest and the signing nonce k, so R = k·G and the valid
// signature (r, s) are functions of its input (a failure reproduces), and
// then optionally perturbs r, s or the digest.
func FuzzVerifyAgrees(f *testing.F) {
	f.Add([]byte("seed"), []byte{1}, []byte{}, []byte{}, uint8(0))
	f.Add([]byte("x"), []byte{7, 7, 7}, []byte{1}, []byte{0xff}, uint8(1))
	f.Add([]byte("y"), []byte{0x88, 0x88, 0x88, 0x88}, []byte{0, 0, 3}, []byte{9}, uint8(2))
	f.Add([]byte("z"), []byte{0xff, 0xff}, []byte{5}, []byte{}, uint8(3))
	priv := fuzzPriv(f)
	raw, err := priv.Bytes()
	if err != nil {
		f.Fatal(err)
	}
	d := new(big.Int).SetBytes(raw)
	k, err := NewKey(&priv.PublicKey)
	if err != nil {
		f.Fatal(err)
	}
	n := order
	f.Fuzz(func(t *testing.T, digest, nonce, rDelta, sDelta []byte, mode uint8) {
		if len(digest) > 64 || len(nonce) > 64 {
			return
		}
		kk := new(big.Int).SetBytes(nonce)
		kk.Mod(kk, n)
		if kk.Sign() == 0 {
			kk.SetInt64(1)
		}
		R, err := nistec.NewP384Point().ScalarBaseMult(kk.FillBytes(make([]byte, 48)))
		if err != nil {
			t.Fatal(err)
		}
		x, err := R.BytesX()
		if err != nil {
			t.Fatal(err)
		}
		r := new(big.Int).SetBytes(x)
		r.Mod(r, n)
		e := new(big.Int).SetBytes(digest[:min(len(digest), 48)])
		s := new(big.Int).Mul(r, d)
		s.Add(s, e)
		s.Mul(s, new(big.Int).ModInverse(kk, n))
		s.Mod(s, n)
		h := digest
		switch mode % 4 {
		case 1: // perturb r and s additively
			r.Add(r, new(big.Int).SetBytes(rDelta))
			s.Sub(s, new(big.Int).SetBytes(sDelta))
		case 2: // replace them with fuzzer bytes
			r.SetBytes(rDelta)
			s.SetBytes(sDelta)
		case 3: // flip a digest bit chosen by the fuzzer
			if len(h) > 0 && len(rDelta) > 0 {
				h = append([]byte(nil), digest...)
				i := int(rDelta[0]) % (8 * len(h))
				h[i/8] ^= 1 << (i % 8)
			}
		}
		want := ecdsa.Verify(&priv.PublicKey, h, r, s)
		if got := k.Verify(h, r, s); got != want {
			t.Fatalf("Verify = %v, crypto/ecdsa %v (mode %d, r=%x s=%x)", got, want, mode%4, r, s)
		}
		if mode%4 == 0 && r.Sign() != 0 && s.Sign() != 0 && !want {
			t.Fatalf("a signature made with nonce %x does not verify", kk)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	priv, k := newKey(b)
	h := sha512.Sum384([]byte("bench"))
	r, s := sign(b, priv, h[:])
	b.Run("crypto-ecdsa", func(b *testing.B) {
		for b.Loop() {
			if !ecdsa.Verify(&priv.PublicKey, h[:], r, s) {
				b.Fatal("no")
			}
		}
	})
	b.Run("table", func(b *testing.B) {
		for b.Loop() {
			if !k.Verify(h[:], r, s) {
				b.Fatal("no")
			}
		}
	})
	b.Run("NewKey", func(b *testing.B) {
		for b.Loop() {
			if _, err := NewKey(&priv.PublicKey); err != nil {
				b.Fatal(err)
			}
		}
	})
}
