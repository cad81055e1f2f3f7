package keyops

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"math/big"
)

// Sign signs a digest the caller computed: RS256/384/512 (PKCS#1 v1.5) and
// PS256/384/512 (PSS, salt length = hash length, as Key Vault produces) on
// RSA keys; ES256/384/512 on P-256/P-384/P-521 keys, returning the JOSE
// r||s form. The digest length must be the algorithm's hash size; the
// error names "value", the sign request member carrying the digest.
func Sign(m *Material, alg string, digest []byte) ([]byte, error) {
	a, err := resolve(m, alg, opSign)
	if err != nil {
		return nil, err
	}
	if err := digestLen(a, "value", digest); err != nil {
		return nil, err
	}
	var sig []byte
	switch a.scheme {
	case sigPKCS1:
		sig, err = rsa.SignPKCS1v15(nil, m.RSA, a.hash, digest)
	case sigPSS:
		sig, err = rsa.SignPSS(rand.Reader, m.RSA, a.hash, digest,
			&rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	default: // sigECDSA
		var r, s *big.Int
		if r, s, err = ecdsa.Sign(rand.Reader, m.EC, digest); err == nil {
			n := ecScalarSize(m.EC)
			sig = make([]byte, 2*n)
			r.FillBytes(sig[:n])
			s.FillBytes(sig[n:])
		}
	}
	if err != nil {
		return nil, fmt.Errorf("keyops: %s signature: %w", a.name, err)
	}
	return sig, nil
}

// Verify checks signature over digest. A well-formed signature that does
// not verify is (false, nil); errors are for misuse: an algorithm that does
// not fit the key, a digest of the wrong length (field "digest") or a
// signature of the wrong length for the algorithm and key (field "value").
// PSS signatures are accepted with any salt length, so signatures made by
// other implementations verify too.
func Verify(m *Material, alg string, digest, signature []byte) (bool, error) {
	a, err := resolve(m, alg, opSign)
	if err != nil {
		return false, err
	}
	if err := digestLen(a, "digest", digest); err != nil {
		return false, err
	}
	switch a.scheme {
	case sigPKCS1, sigPSS:
		if len(signature) != m.RSA.Size() {
			return false, inputErr("value", "%s signature for a %d-bit key is %d bytes; got %d",
				a.name, m.RSA.N.BitLen(), m.RSA.Size(), len(signature))
		}
		if a.scheme == sigPKCS1 {
			return rsa.VerifyPKCS1v15(&m.RSA.PublicKey, a.hash, digest, signature) == nil, nil
		}
		return rsa.VerifyPSS(&m.RSA.PublicKey, a.hash, digest, signature,
			&rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}) == nil, nil
	default:
		n := ecScalarSize(m.EC)
		if len(signature) != 2*n {
			return false, inputErr("value", "%s signature is r||s, %d bytes; got %d (an ASN.1 DER signature is not accepted)",
				a.name, 2*n, len(signature))
		}
		r := new(big.Int).SetBytes(signature[:n])
		s := new(big.Int).SetBytes(signature[n:])
		return ecdsa.Verify(&m.EC.PublicKey, digest, r, s), nil
	}
}

func digestLen(a algorithm, field string, digest []byte) error {
	if len(digest) != a.hash.Size() {
		return inputErr(field, "%s needs a %d-byte %s digest; got %d bytes", a.name, a.hash.Size(), a.hash, len(digest))
	}
	return nil
}

// ecScalarSize is the byte length of r and s in a JOSE ECDSA signature:
// the size of the curve order (66 bytes for P-521).
func ecScalarSize(k *ecdsa.PrivateKey) int {
	return (k.Curve.Params().N.BitLen() + 7) / 8
}
