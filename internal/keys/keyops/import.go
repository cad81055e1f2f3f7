package keyops

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"math/big"
	"slices"
)

// FromJWK validates an imported private JWK and returns its material.
// Errors are *InputError whose Field is the JSON path of the member at
// fault in an import request ("key.d", "key.crv", ...).
//
// Validation is complete rather than minimal because an inconsistent key
// accepted now would produce wrong ciphertexts or, worse, faulty RSA-CRT
// signatures that leak the factors later.
func FromJWK(j JWK) (*Material, error) {
	if len(j.T) != 0 {
		return nil, inputErr("key.key_hsm", "importing a BYOK-protected key is not supported; send the plaintext key members")
	}
	if j.Kty == "" {
		return nil, inputErr("key.kty", "missing")
	}
	kind, ok := kindOf(j.Kty)
	if !ok {
		return nil, unknownKty("key.kty", j.Kty)
	}
	if err := noForeignMembers(kind, j); err != nil {
		return nil, err
	}
	switch kind {
	case KindRSA:
		return rsaFromJWK(j)
	case KindEC:
		return ecFromJWK(j)
	default:
		if len(j.K) == 0 {
			return nil, inputErr("key.k", "missing")
		}
		if !octSizeOK(len(j.K) * 8) {
			return nil, inputErr("key.k", "%d bytes is not a supported AES key length (16, 24 or 32 bytes)", len(j.K))
		}
		return &Material{Kind: KindOct, Oct: append([]byte(nil), j.K...)}, nil
	}
}

// noForeignMembers refuses members that belong to another key family: a
// JWK carrying both "k" and "n" is a caller mistake, and guessing which one
// was meant could import the wrong secret.
func noForeignMembers(kind string, j JWK) error {
	rsaOnly, ecOnly, both := []string{KindRSA}, []string{KindEC}, []string{KindRSA, KindEC}
	for _, m := range []struct {
		name    string
		present bool
		kinds   []string // families the member belongs to
	}{
		{"n", len(j.N) > 0, rsaOnly}, {"e", len(j.E) > 0, rsaOnly},
		{"p", len(j.P) > 0, rsaOnly}, {"q", len(j.Q) > 0, rsaOnly},
		{"dp", len(j.DP) > 0, rsaOnly}, {"dq", len(j.DQ) > 0, rsaOnly}, {"qi", len(j.QI) > 0, rsaOnly},
		{"d", len(j.D) > 0, both},
		{"crv", j.Crv != "", ecOnly}, {"x", len(j.X) > 0, ecOnly}, {"y", len(j.Y) > 0, ecOnly},
		{"k", len(j.K) > 0, []string{KindOct}},
	} {
		if m.present && !slices.Contains(m.kinds, kind) {
			return inputErr("key."+m.name, "not a member of an %s key", kind)
		}
	}
	return nil
}

func rsaFromJWK(j JWK) (*Material, error) {
	for _, f := range []struct {
		name string
		v    []byte
	}{{"n", j.N}, {"e", j.E}, {"d", j.D}, {"p", j.P}, {"q", j.Q}} {
		if len(f.v) == 0 {
			return nil, inputErr("key."+f.name, "missing")
		}
	}
	// Sizes first, so hostile input cannot make the checks below expensive.
	n := new(big.Int).SetBytes(j.N)
	if !rsaSizeOK(n.BitLen()) {
		return nil, inputErr("key.n", "a %d-bit modulus is not a supported RSA key size (%s bits)", n.BitLen(), rsaSizes)
	}
	e, err := publicExponent(j.E)
	if err != nil {
		return nil, err
	}
	one := big.NewInt(1)
	d := new(big.Int).SetBytes(j.D)
	if d.Cmp(one) <= 0 || d.Cmp(n) >= 0 {
		return nil, inputErr("key.d", "out of range: must be greater than 1 and less than n")
	}
	p, q := new(big.Int).SetBytes(j.P), new(big.Int).SetBytes(j.Q)
	for _, f := range []struct {
		name string
		v    *big.Int
	}{{"p", p}, {"q", q}} {
		if f.v.Cmp(one) <= 0 || f.v.Cmp(n) >= 0 {
			return nil, inputErr("key."+f.name, "out of range: must be greater than 1 and less than n")
		}
	}
	if new(big.Int).Mul(p, q).Cmp(n) != 0 {
		return nil, inputErr("key.n", "does not equal p*q")
	}
	if p.Cmp(q) == 0 {
		return nil, inputErr("key.q", "equals p")
	}
	// Baillie-PSW: cheap next to the modulus checks and enough to refuse
	// factors that were never prime (crypto/rsa does not test primality).
	if !p.ProbablyPrime(0) {
		return nil, inputErr("key.p", "not prime")
	}
	if !q.ProbablyPrime(0) {
		return nil, inputErr("key.q", "not prime")
	}
	k := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: e}, D: d, Primes: []*big.Int{p, q}}
	// Precompute derives dp, dq and qi from d; Validate then checks that
	// d*e = 1 modulo p-1 and q-1. With n = p*q established, the remaining
	// way to fail is a d that does not belong to e.
	k.Precompute()
	if err := k.Validate(); err != nil {
		return nil, inputErr("key.d", "not the private exponent matching e, p and q")
	}
	for _, f := range []struct {
		name, rule string
		given      []byte
		want       *big.Int
	}{
		{"dp", "d mod (p-1)", j.DP, k.Precomputed.Dp},
		{"dq", "d mod (q-1)", j.DQ, k.Precomputed.Dq},
		{"qi", "q^-1 mod p", j.QI, k.Precomputed.Qinv},
	} {
		if len(f.given) > 0 && new(big.Int).SetBytes(f.given).Cmp(f.want) != 0 {
			return nil, inputErr("key."+f.name, "does not equal %s", f.rule)
		}
	}
	return &Material{Kind: KindRSA, RSA: k}, nil
}

// publicExponent decodes e, which crypto/rsa holds as an int and requires
// to be odd, at least 3 and below 2^31.
func publicExponent(b []byte) (int, error) {
	for len(b) > 0 && b[0] == 0 {
		b = b[1:]
	}
	if len(b) > 4 {
		return 0, inputErr("key.e", "too large: the public exponent must be below 2^31")
	}
	var e uint64
	for _, c := range b {
		e = e<<8 | uint64(c)
	}
	switch {
	case e >= 1<<31:
		return 0, inputErr("key.e", "too large: the public exponent must be below 2^31")
	case e < 3 || e%2 == 0:
		return 0, inputErr("key.e", "%d is not a valid public exponent (odd, at least 3)", e)
	}
	return int(e), nil
}

func ecFromJWK(j JWK) (*Material, error) {
	if j.Crv == "" {
		return nil, inputErr("key.crv", "missing")
	}
	c, err := curveOf("key.crv", j.Crv)
	if err != nil {
		return nil, err
	}
	if len(j.D) == 0 {
		return nil, inputErr("key.d", "missing")
	}
	size := (c.Params().BitSize + 7) / 8
	d, err := fixedSize("key.d", j.D, size, j.Crv)
	if err != nil {
		return nil, err
	}
	var pub *ecdsa.PublicKey
	switch {
	case len(j.X) == 0 && len(j.Y) == 0:
		// x and y are optional: d determines them.
	case len(j.X) == 0:
		return nil, inputErr("key.x", "missing (y is present)")
	case len(j.Y) == 0:
		return nil, inputErr("key.y", "missing (x is present)")
	default:
		x, err := fixedSize("key.x", j.X, size, j.Crv)
		if err != nil {
			return nil, err
		}
		y, err := fixedSize("key.y", j.Y, size, j.Crv)
		if err != nil {
			return nil, err
		}
		pt := append(append([]byte{4}, x...), y...)
		if pub, err = ecdsa.ParseUncompressedPublicKey(c, pt); err != nil {
			return nil, inputErr("key.x", "(x, y) is not a point on %s", j.Crv)
		}
	}
	k, err := ecdsa.ParseRawPrivateKey(c, d)
	if err != nil {
		return nil, inputErr("key.d", "not a valid %s private scalar (must be in [1, order-1])", j.Crv)
	}
	if pub != nil && !pub.Equal(&k.PublicKey) {
		return nil, inputErr("key.d", "does not match the public point (x, y)")
	}
	return &Material{Kind: KindEC, EC: k}, nil
}

// fixedSize left-pads b to size bytes. JWK requires full-length EC values,
// but some encoders drop leading zero bytes; accepting those costs nothing.
func fixedSize(field string, b []byte, size int, crv string) ([]byte, error) {
	if len(b) > size {
		return nil, inputErr(field, "%d bytes is too long: %s values are %d bytes", len(b), crv, size)
	}
	out := make([]byte, size)
	copy(out[size-len(b):], b)
	return out, nil
}
