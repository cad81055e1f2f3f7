// Package p384 verifies ECDSA P-384 signatures for public keys that sign
// many messages, such as an AMD VCEK that signs every attestation report of
// every guest on its chip.
//
// crypto/ecdsa computes u2·Q with a constant-time four-bit window: about
// 384 point doublings per verification, spent anew for each signature. A
// Key instead holds the multiples j·16^i·Q (j = 1..8, i = 0..96) once, so
// u2·Q costs about 96 additions and no doubling; u1·G uses the same kind of
// table for the generator. Verification handles only public values (the
// key, the digest, the signature), so the table lookups may depend on them:
// this is the reason a verify-only routine may be variable-time where
// signing may not. The point arithmetic is filippo.io/nistec's (the
// fiat-crypto code crypto/ecdsa uses), only the scalar multiplication
// strategy is ours, and it is tested against crypto/ecdsa as an oracle.
package p384

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"math/big"
	"sync"

	"filippo.io/nistec"
)

const (
	scalarSize = 48
	// windows of four bits in a 384-bit scalar, plus one for the carry out
	// of the signed-digit recoding.
	windows = scalarSize*2 + 1
)

// table holds j·16^i·P for i < windows and j = 1..8 at [i][j-1].
type table [windows][8]*nistec.P384Point

// TableBytes is the approximate memory a Key holds, for callers that bound
// how many they keep.
const TableBytes = windows * 8 * (3*scalarSize + 3*8)

func newTable(p *nistec.P384Point) *table {
	t := new(table)
	base := nistec.NewP384Point().Set(p)
	for i := range t {
		t[i][0] = nistec.NewP384Point().Set(base)
		for j := 1; j < 8; j++ {
			t[i][j] = nistec.NewP384Point().Add(t[i][j-1], base)
		}
		base = nistec.NewP384Point().Double(t[i][7]) // 16·base
	}
	return t
}

// generator is the table of G, a constant of the curve computed once per
// process on first use (as crypto/ecdsa does for its own table).
var generator = sync.OnceValue(func() *table {
	return newTable(nistec.NewP384Point().SetGenerator())
})

var order = elliptic.P384().Params().N

// Key is a P-384 public key with its multiples precomputed. It is safe for
// concurrent use.
type Key struct {
	q *table
}

// NewKey precomputes pub's table: about the cost of one or two signature
// verifications, and TableBytes of memory.
func NewKey(pub *ecdsa.PublicKey) (*Key, error) {
	if pub == nil || pub.Curve != elliptic.P384() {
		return nil, errors.New("p384: not a P-384 public key")
	}
	enc, err := pub.Bytes()
	if err != nil {
		return nil, err
	}
	q, err := nistec.NewP384Point().SetBytes(enc) // checks the point is on the curve
	if err != nil {
		return nil, err
	}
	if q.IsInfinity() == 1 {
		return nil, errors.New("p384: public key is the point at infinity")
	}
	return &Key{q: newTable(q)}, nil
}

// Verify reports whether (r, s) is a valid signature of hash by the key,
// with the same result as ecdsa.Verify (FIPS 186-5 §6.4.2): a hash longer
// than 48 bytes is truncated to its leftmost 48 bytes.
func (k *Key) Verify(hash []byte, r, s *big.Int) bool {
	if k == nil || k.q == nil {
		return false // not made by NewKey
	}
	if r.Sign() <= 0 || s.Sign() <= 0 || r.Cmp(order) >= 0 || s.Cmp(order) >= 0 {
		return false
	}
	if len(hash) > scalarSize {
		hash = hash[:scalarSize]
	}
	e := new(big.Int).SetBytes(hash)
	w := new(big.Int).ModInverse(s, order)
	if w == nil {
		return false // unreachable for 0 < s < n, n prime
	}
	u1 := e.Mul(e, w)
	u1.Mod(u1, order)
	u2 := w.Mul(w, r)
	u2.Mod(u2, order)

	var b1, b2 [scalarSize]byte
	acc := nistec.NewP384Point()
	neg := nistec.NewP384Point()
	accumulate(acc, neg, generator(), u1.FillBytes(b1[:]))
	accumulate(acc, neg, k.q, u2.FillBytes(b2[:]))

	x, err := acc.BytesX()
	if err != nil {
		return false // the point at infinity
	}
	v := new(big.Int).SetBytes(x)
	v.Mod(v, order)
	return v.Cmp(r) == 0
}

// accumulate adds scalar·P to acc, where t is P's table and scalar is
// big-endian, below the group order. The scalar is recoded into signed
// four-bit digits in [-7, 8] so that eight multiples per window suffice.
func accumulate(acc, neg *nistec.P384Point, t *table, scalar []byte) {
	carry := 0
	for i := range windows {
		d := carry
		if i < 2*scalarSize {
			b := int(scalar[scalarSize-1-i/2])
			if i%2 == 1 {
				b >>= 4
			}
			d += b & 15
		}
		carry = 0
		if d > 8 {
			d -= 16
			carry = 1
		}
		switch {
		case d > 0:
			acc.Add(acc, t[i][d-1])
		case d < 0:
			acc.Add(acc, neg.Negate(t[i][-d-1]))
		}
	}
}
