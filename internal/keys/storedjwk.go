package keys

import (
	"encoding/base64"
	"encoding/json"
	"errors"

	"github.com/kura-project/kura/internal/keys/keyops"
)

// storedJWK is the stored form of a version's public key (the public_jwk
// column, MAC'd with its row, and inside backups): the JWK members with
// unpadded base64url bytes. It must not change, or stored rows and backups
// no longer read.
type storedJWK struct {
	Kid    string   `json:"kid,omitempty"`
	Kty    string   `json:"kty,omitempty"`
	KeyOps []string `json:"key_ops,omitempty"`
	N      b64      `json:"n,omitempty"`
	E      b64      `json:"e,omitempty"`
	D      b64      `json:"d,omitempty"`
	DP     b64      `json:"dp,omitempty"`
	DQ     b64      `json:"dq,omitempty"`
	QI     b64      `json:"qi,omitempty"`
	P      b64      `json:"p,omitempty"`
	Q      b64      `json:"q,omitempty"`
	K      b64      `json:"k,omitempty"`
	Crv    string   `json:"crv,omitempty"`
	X      b64      `json:"x,omitempty"`
	Y      b64      `json:"y,omitempty"`
	T      b64      `json:"key_hsm,omitempty"`
}

func encodeJWK(j keyops.JWK) ([]byte, error) {
	return json.Marshal(storedJWK{Kid: j.Kid, Kty: j.Kty, KeyOps: j.KeyOps, N: j.N, E: j.E, D: j.D, DP: j.DP, DQ: j.DQ,
		QI: j.QI, P: j.P, Q: j.Q, K: j.K, Crv: j.Crv, X: j.X, Y: j.Y, T: j.T})
}

func decodeJWK(b []byte) (keyops.JWK, error) {
	var s storedJWK
	if err := json.Unmarshal(b, &s); err != nil {
		return keyops.JWK{}, err
	}
	return keyops.JWK{Kid: s.Kid, Kty: s.Kty, KeyOps: s.KeyOps, N: s.N, E: s.E, D: s.D, DP: s.DP, DQ: s.DQ,
		QI: s.QI, P: s.P, Q: s.Q, K: s.K, Crv: s.Crv, X: s.X, Y: s.Y, T: s.T}, nil
}

// b64 is stored bytes: unpadded base64url, as kura has always written them.
type b64 []byte

func (b b64) MarshalJSON() ([]byte, error) {
	return json.Marshal(base64.RawURLEncoding.EncodeToString(b))
}

func (b *b64) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return errors.New("not a base64url string")
	}
	v, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}
