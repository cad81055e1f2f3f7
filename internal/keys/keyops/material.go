package keyops

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
)

// Material is the private key of one key version. Exactly one of RSA, EC
// and Oct is set, the one Kind names.
type Material struct {
	Kind string // KindRSA, KindEC or KindOct; the -HSM key types map to these
	RSA  *rsa.PrivateKey
	EC   *ecdsa.PrivateKey
	Oct  []byte
}

// Key sizes and curves Key Vault accepts. RSA imports are held to the same
// sizes as creation: Key Vault refuses others, and anything below 2048 bits
// is also refused by crypto/rsa itself.
const (
	defaultRSABits = 2048
	defaultOctBits = 256
	defaultCurve   = "P-256"
	rsaSizes       = "2048, 3072 or 4096"
	octSizes       = "128, 192 or 256"
	curveNames     = "P-256, P-384 or P-521"
)

func rsaSizeOK(bits int) bool { return bits == 2048 || bits == 3072 || bits == 4096 }
func octSizeOK(bits int) bool { return bits == 128 || bits == 192 || bits == 256 }

// kindOf maps a kty to its key family.
func kindOf(kty string) (string, bool) {
	switch kty {
	case "RSA", "RSA-HSM":
		return KindRSA, true
	case "EC", "EC-HSM":
		return KindEC, true
	case "oct", "oct-HSM":
		return KindOct, true
	}
	return "", false
}

func unknownKty(field, kty string) error {
	return inputErr(field, "%q is not a supported key type (RSA, RSA-HSM, EC, EC-HSM, oct or oct-HSM)", clip(kty))
}

// curveOf maps a crv name to its curve. P-256K gets its own answer because
// it is a valid Key Vault curve that kura chooses not to implement.
func curveOf(field, crv string) (elliptic.Curve, error) {
	switch crv {
	case "P-256":
		return elliptic.P256(), nil
	case "P-384":
		return elliptic.P384(), nil
	case "P-521":
		return elliptic.P521(), nil
	case "P-256K":
		return nil, inputErr(field, "P-256K (secp256k1) is not supported by kura; use "+curveNames)
	}
	return nil, inputErr(field, "%q is not a supported curve (%s)", clip(crv), curveNames)
}

func curveName(c elliptic.Curve) string {
	switch c {
	case elliptic.P256():
		return "P-256"
	case elliptic.P384():
		return "P-384"
	case elliptic.P521():
		return "P-521"
	}
	return ""
}

// Generate creates a new key. Its arguments are the CreateKeyParameters
// members kty, key_size, crv and public_exponent; zero values mean "not
// given" and select Key Vault's defaults (RSA 2048 with e = 65537, P-256,
// AES-256). Errors are *InputError naming the member at fault.
func Generate(kty string, size int, curve string, publicExponent int) (*Material, error) {
	kind, ok := kindOf(kty)
	if !ok {
		return nil, unknownKty("kty", kty)
	}
	if kind != KindRSA && publicExponent != 0 {
		return nil, inputErr("public_exponent", "only RSA keys have a public exponent")
	}
	if kind != KindEC && curve != "" {
		return nil, inputErr("crv", "only EC keys have a curve")
	}
	switch kind {
	case KindRSA:
		return generateRSA(size, publicExponent)
	case KindEC:
		return generateEC(size, curve)
	default:
		if size == 0 {
			size = defaultOctBits
		}
		if !octSizeOK(size) {
			return nil, inputErr("key_size", "%d is not a supported AES key size (%s)", size, octSizes)
		}
		k := make([]byte, size/8)
		if _, err := rand.Read(k); err != nil {
			return nil, fmt.Errorf("keyops: generating AES key: %w", err)
		}
		return &Material{Kind: KindOct, Oct: k}, nil
	}
}

func generateRSA(bits, e int) (*Material, error) {
	if bits == 0 {
		bits = defaultRSABits
	}
	if !rsaSizeOK(bits) {
		return nil, inputErr("key_size", "%d is not a supported RSA key size (%s)", bits, rsaSizes)
	}
	var k *rsa.PrivateKey
	var err error
	switch e {
	case 0, 65537:
		k, err = rsa.GenerateKey(rand.Reader, bits)
	case 3:
		k, err = generateRSAExp3(bits)
	default:
		return nil, inputErr("public_exponent", "%d is not supported (3 or 65537)", e)
	}
	if err != nil {
		return nil, fmt.Errorf("keyops: generating RSA-%d key: %w", bits, err)
	}
	return &Material{Kind: KindRSA, RSA: k}, nil
}

// generateRSAExp3 exists because crypto/rsa only generates e = 65537 and Key
// Vault lets callers ask for e = 3. Each prime must satisfy p ≡ 2 (mod 3) so
// that 3 is invertible modulo p-1.
func generateRSAExp3(bits int) (*rsa.PrivateKey, error) {
	three := big.NewInt(3)
	one := big.NewInt(1)
	prime := func() (*big.Int, error) {
		m := new(big.Int)
		for {
			p, err := rand.Prime(rand.Reader, bits/2)
			if err != nil {
				return nil, err
			}
			if m.Mod(p, three).Int64() == 2 {
				return p, nil
			}
		}
	}
	for {
		p, err := prime()
		if err != nil {
			return nil, err
		}
		q, err := prime()
		if err != nil {
			return nil, err
		}
		if p.Cmp(q) == 0 {
			continue
		}
		n := new(big.Int).Mul(p, q)
		if n.BitLen() != bits { // rand.Prime sets the top two bits, so this holds; checked anyway
			continue
		}
		pm1 := new(big.Int).Sub(p, one)
		qm1 := new(big.Int).Sub(q, one)
		g := new(big.Int).GCD(nil, nil, pm1, qm1)
		lambda := new(big.Int).Div(new(big.Int).Mul(pm1, qm1), g)
		d := new(big.Int).ModInverse(three, lambda)
		if d == nil {
			continue
		}
		k := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: 3}, D: d, Primes: []*big.Int{p, q}}
		k.Precompute()
		if err := k.Validate(); err != nil {
			return nil, err
		}
		return k, nil
	}
}

func generateEC(size int, crv string) (*Material, error) {
	if crv == "" {
		// key_size alone selects a curve, as the one-to-one mapping allows.
		switch size {
		case 0, 256:
			crv = defaultCurve
		case 384:
			crv = "P-384"
		case 521:
			crv = "P-521"
		default:
			return nil, inputErr("key_size", "%d does not select an EC curve (256, 384 or 521)", size)
		}
	}
	c, err := curveOf("crv", crv)
	if err != nil {
		return nil, err
	}
	if size != 0 && size != c.Params().BitSize {
		return nil, inputErr("key_size", "%d does not match crv %s (%d bits)", size, crv, c.Params().BitSize)
	}
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("keyops: generating %s key: %w", crv, err)
	}
	return &Material{Kind: KindEC, EC: k}, nil
}

// check guards every operation against a Material assembled by hand with
// Kind and key disagreeing; such a value is a programming error upstream.
func (m *Material) check() error {
	switch {
	case m == nil:
		return errors.New("keyops: nil key material")
	case m.Kind == KindRSA && m.RSA != nil, m.Kind == KindEC && m.EC != nil,
		m.Kind == KindOct && octSizeOK(len(m.Oct)*8):
		return nil
	}
	return fmt.Errorf("keyops: key material of kind %q does not hold a usable key", clip(m.Kind))
}

// Size is the key size in bits: the RSA modulus, the curve's field size, or
// the AES key length.
func (m *Material) Size() int {
	switch {
	case m.RSA != nil && m.Kind == KindRSA:
		return m.RSA.N.BitLen()
	case m.EC != nil && m.Kind == KindEC:
		return m.EC.Curve.Params().BitSize
	case m.Kind == KindOct:
		return len(m.Oct) * 8
	}
	return 0
}

// Curve is the JWK crv of an EC key ("P-256", ...), "" for other keys.
func (m *Material) Curve() string {
	if m.Kind != KindEC || m.EC == nil {
		return ""
	}
	return curveName(m.EC.Curve)
}

// PublicJWK is the key as GET returns it: public members only, and for oct
// keys no material at all. Kty is the family; the API layer substitutes the
// -HSM spelling where the key was created as such, and fills kid and key_ops.
func (m *Material) PublicJWK() JWK {
	j := JWK{Kty: m.Kind}
	switch {
	case m.Kind == KindRSA && m.RSA != nil:
		j.N = m.RSA.N.Bytes()
		j.E = big.NewInt(int64(m.RSA.E)).Bytes()
	case m.Kind == KindEC && m.EC != nil:
		j.Crv = m.Curve()
		// PublicKey.Bytes gives 04 || X || Y with fixed-size coordinates,
		// which is exactly what JWK x and y must be.
		if pt, err := m.EC.PublicKey.Bytes(); err == nil {
			n := (len(pt) - 1) / 2
			j.X, j.Y = pt[1:1+n], pt[1+n:]
		}
	}
	return j
}

// MarshalPrivate encodes the private key: PKCS#8 DER for RSA and EC, the raw
// key bytes for oct. This is also the "target key plaintext" that secure
// key release wraps, and the form in which the store keeps keys.
func (m *Material) MarshalPrivate() ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	switch m.Kind {
	case KindRSA:
		return x509.MarshalPKCS8PrivateKey(m.RSA)
	case KindEC:
		return x509.MarshalPKCS8PrivateKey(m.EC)
	default:
		return append([]byte(nil), m.Oct...), nil
	}
}

// UnmarshalPrivate is the inverse of MarshalPrivate. kind is a family or a
// kty. The key is held to the same rules as an import, so that a store
// cannot hand back a key kura would never have accepted.
func UnmarshalPrivate(kind string, b []byte) (*Material, error) {
	family, ok := kindOf(kind)
	if !ok {
		return nil, fmt.Errorf("keyops: unknown key kind %q", clip(kind))
	}
	if family == KindOct {
		if !octSizeOK(len(b) * 8) {
			return nil, fmt.Errorf("keyops: %d-byte oct key: AES keys are 16, 24 or 32 bytes", len(b))
		}
		return &Material{Kind: KindOct, Oct: append([]byte(nil), b...)}, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("keyops: parsing PKCS#8 %s key: %w", family, err)
	}
	switch k := k.(type) {
	case *rsa.PrivateKey:
		if family != KindRSA {
			break
		}
		if !rsaSizeOK(k.N.BitLen()) || len(k.Primes) != 2 {
			return nil, fmt.Errorf("keyops: %d-bit, %d-prime RSA key: only two-prime %s-bit keys are supported",
				k.N.BitLen(), len(k.Primes), rsaSizes)
		}
		return &Material{Kind: KindRSA, RSA: k}, nil
	case *ecdsa.PrivateKey:
		if family != KindEC {
			break
		}
		if curveName(k.Curve) == "" {
			return nil, fmt.Errorf("keyops: EC key on curve %s: only %s are supported", k.Curve.Params().Name, curveNames)
		}
		return &Material{Kind: KindEC, EC: k}, nil
	}
	return nil, fmt.Errorf("keyops: PKCS#8 data holds a %T, not an %s key", k, family)
}
