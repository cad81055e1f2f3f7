package wire

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"math/big"

	"github.com/kura-project/kura/internal/token"
)

// JWK is one JSON Web Key as kura publishes its signing keys (/certs, the
// release keys): x5c is always present, since MAA's Go and JS clients
// verify with x5c[0] and skip keys without it.
type JWK struct {
	Alg string   `json:"alg"`
	Kid string   `json:"kid"`
	Kty string   `json:"kty"`
	Use string   `json:"use"`
	X5c []string `json:"x5c"`
	N   string   `json:"n,omitempty"`
	E   string   `json:"e,omitempty"`
	Crv string   `json:"crv,omitempty"`
	X   string   `json:"x,omitempty"`
	Y   string   `json:"y,omitempty"`
}

// JWKS renders published keys as {"keys": [...]}.
func JWKS(keys []token.Published) map[string]any {
	out := make([]JWK, 0, len(keys))
	b64 := base64.RawURLEncoding.EncodeToString
	for _, k := range keys {
		j := JWK{Alg: string(k.Alg), Kid: k.Kid, Use: "sig"}
		chain := k.Chain
		if len(chain) == 0 {
			chain = []*x509.Certificate{k.Cert}
		}
		for _, c := range chain {
			j.X5c = append(j.X5c, base64.StdEncoding.EncodeToString(c.Raw))
		}
		switch pub := k.Cert.PublicKey.(type) {
		case *rsa.PublicKey:
			j.Kty, j.N, j.E = "RSA", b64(pub.N.Bytes()), b64(big.NewInt(int64(pub.E)).Bytes())
		case *ecdsa.PublicKey:
			size := (pub.Curve.Params().BitSize + 7) / 8
			j.Kty, j.Crv = "EC", pub.Curve.Params().Name
			if pt, err := pub.Bytes(); err == nil { // uncompressed: 0x04 || X || Y
				j.X, j.Y = b64(pt[1:1+size]), b64(pt[1+size:])
			}
		default:
			continue // not a key kura makes
		}
		out = append(out, j)
	}
	return map[string]any{"keys": out}
}
