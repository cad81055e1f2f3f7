package keyops

import (
	"crypto"
	"fmt"
	"strings"
)

// Key families, the values of Material.Kind.
const (
	KindRSA = "RSA"
	KindEC  = "EC"
	KindOct = "oct"
)

// op is the operation pair an algorithm serves.
type op uint8

const (
	opEncrypt op = 1 << iota // encrypt / decrypt
	opWrap                   // wrapkey / unwrapkey
	opSign                   // sign / verify
)

// String names the operations o serves, for error messages.
func (o op) String() string {
	var names []string
	for _, x := range []struct {
		bit  op
		name string
	}{{opEncrypt, "encrypt/decrypt"}, {opWrap, "wrapkey/unwrapkey"}, {opSign, "sign/verify"}} {
		if o&x.bit != 0 {
			names = append(names, x.name)
		}
	}
	return strings.Join(names, " and ")
}

// scheme is the cryptographic construction behind an algorithm name.
type scheme uint8

const (
	rsaPKCS1 scheme = iota + 1 // RSAES-PKCS1-v1_5
	rsaOAEP                    // RSAES-OAEP, MGF1 with the same hash
	aesGCM
	aesCBC    // no padding: input must be whole blocks
	aesCBCPad // PKCS#7 padding
	aesKW     // RFC 3394
	aesKWP    // RFC 5649
	sigPKCS1  // RSASSA-PKCS1-v1_5
	sigPSS    // RSASSA-PSS, salt length = hash length
	sigECDSA  // ECDSA, JOSE r||s encoding
)

// algorithm describes one algorithm name of the API.
type algorithm struct {
	name     string
	kind     string // key family it needs
	ops      op     // operations it serves
	scheme   scheme
	hash     crypto.Hash // OAEP hash, or the digest a signature covers
	aesBytes int         // AES key length it needs; 0 = any
	curve    string      // curve it needs (ES*)
}

// lookupAlg is the constant table of algorithms. It returns a non-empty
// refusal for names the API defines but kura deliberately does not
// implement, so that those get a clearer answer than "unknown".
func lookupAlg(name string) (a algorithm, refusal string) {
	a.name = name
	switch name {
	case "RSA1_5":
		a.kind, a.ops, a.scheme = KindRSA, opEncrypt|opWrap, rsaPKCS1
	case "RSA-OAEP":
		a.kind, a.ops, a.scheme, a.hash = KindRSA, opEncrypt|opWrap, rsaOAEP, crypto.SHA1
	case "RSA-OAEP-256":
		a.kind, a.ops, a.scheme, a.hash = KindRSA, opEncrypt|opWrap, rsaOAEP, crypto.SHA256

	case "A128GCM", "A192GCM", "A256GCM":
		a.kind, a.ops, a.scheme, a.aesBytes = KindOct, opEncrypt, aesGCM, aesBytesOf(name)
	case "A128CBC", "A192CBC", "A256CBC":
		a.kind, a.ops, a.scheme, a.aesBytes = KindOct, opEncrypt, aesCBC, aesBytesOf(name)
	case "A128CBCPAD", "A192CBCPAD", "A256CBCPAD":
		a.kind, a.ops, a.scheme, a.aesBytes = KindOct, opEncrypt, aesCBCPad, aesBytesOf(name)
	case "A128KW", "A192KW", "A256KW":
		a.kind, a.ops, a.scheme, a.aesBytes = KindOct, opWrap, aesKW, aesBytesOf(name)
	case "CKM_AES_KEY_WRAP":
		a.kind, a.ops, a.scheme = KindOct, opWrap, aesKW
	case "CKM_AES_KEY_WRAP_PAD":
		a.kind, a.ops, a.scheme = KindOct, opWrap, aesKWP

	case "RS256":
		a.kind, a.ops, a.scheme, a.hash = KindRSA, opSign, sigPKCS1, crypto.SHA256
	case "RS384":
		a.kind, a.ops, a.scheme, a.hash = KindRSA, opSign, sigPKCS1, crypto.SHA384
	case "RS512":
		a.kind, a.ops, a.scheme, a.hash = KindRSA, opSign, sigPKCS1, crypto.SHA512
	case "PS256":
		a.kind, a.ops, a.scheme, a.hash = KindRSA, opSign, sigPSS, crypto.SHA256
	case "PS384":
		a.kind, a.ops, a.scheme, a.hash = KindRSA, opSign, sigPSS, crypto.SHA384
	case "PS512":
		a.kind, a.ops, a.scheme, a.hash = KindRSA, opSign, sigPSS, crypto.SHA512
	case "ES256":
		a.kind, a.ops, a.scheme, a.hash, a.curve = KindEC, opSign, sigECDSA, crypto.SHA256, "P-256"
	case "ES384":
		a.kind, a.ops, a.scheme, a.hash, a.curve = KindEC, opSign, sigECDSA, crypto.SHA384, "P-384"
	case "ES512":
		a.kind, a.ops, a.scheme, a.hash, a.curve = KindEC, opSign, sigECDSA, crypto.SHA512, "P-521"

	case "ES256K":
		return a, "not supported: kura does not support the P-256K (secp256k1) curve"
	case "HS256", "HS384", "HS512":
		return a, "not supported: kura does not implement HMAC keys"
	case "RSNULL":
		return a, "not supported: kura does not sign unpadded (raw RSA) values"
	case "CKM_RSA_AES_KEY_WRAP", "RSA_AES_KEY_WRAP_256", "RSA_AES_KEY_WRAP_384":
		return a, "a key-release \"enc\" value, not an encrypt or wrapkey algorithm"
	default:
		return a, "not a known algorithm"
	}
	return a, ""
}

func aesBytesOf(name string) int {
	switch name[1:4] {
	case "128":
		return 16
	case "192":
		return 24
	default:
		return 32
	}
}

// resolve finds alg and checks that it serves operation o and fits m.
func resolve(m *Material, alg string, o op) (algorithm, error) {
	if err := m.check(); err != nil {
		return algorithm{}, err
	}
	a, refusal := lookupAlg(alg)
	if refusal != "" {
		return a, &AlgorithmError{Alg: alg, Reason: refusal}
	}
	if a.ops&o == 0 {
		return a, &AlgorithmError{Alg: alg, Reason: fmt.Sprintf("not usable for %s (it is for %s)", o, a.ops)}
	}
	if a.kind != m.Kind {
		return a, &AlgorithmError{Alg: alg, Kind: m.Kind, Reason: "needs an " + a.kind + " key"}
	}
	if a.curve != "" && a.curve != m.Curve() {
		return a, &AlgorithmError{Alg: alg, Kind: m.Kind,
			Reason: fmt.Sprintf("needs a %s key; this key is %s", a.curve, m.Curve())}
	}
	if a.aesBytes != 0 && a.aesBytes != len(m.Oct) {
		return a, &AlgorithmError{Alg: alg, Kind: m.Kind,
			Reason: fmt.Sprintf("needs a %d-bit key; this key is %d-bit", a.aesBytes*8, len(m.Oct)*8)}
	}
	return a, nil
}
