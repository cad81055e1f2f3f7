package keyvault

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/kura-project/kura/internal/keys/keyops"
)

// JWK is the Key Vault JsonWebKey on the wire, compatible with
// azkeys.JSONWebKey.
type JWK struct {
	Kid    string   `json:"kid,omitempty"`
	Kty    string   `json:"kty,omitempty"`
	KeyOps []string `json:"key_ops"` // always shown: [] is "no operations", enforced as such
	N      B64      `json:"n,omitempty"`
	E      B64      `json:"e,omitempty"`
	D      B64      `json:"d,omitempty"`
	DP     B64      `json:"dp,omitempty"`
	DQ     B64      `json:"dq,omitempty"`
	QI     B64      `json:"qi,omitempty"`
	P      B64      `json:"p,omitempty"`
	Q      B64      `json:"q,omitempty"`
	K      B64      `json:"k,omitempty"`
	Crv    string   `json:"crv,omitempty"`
	X      B64      `json:"x,omitempty"`
	Y      B64      `json:"y,omitempty"`
	T      B64      `json:"key_hsm,omitempty"`
}

// UnmarshalJSON decodes a JWK so that an encoding error names its member
// ("key.n: ..."); encoding/json would otherwise return the bare B64 error
// and the caller could not tell which of a dozen fields was bad.
func (j *JWK) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		return nil // the encoding/json convention: null leaves the value as is
	}
	var w struct {
		Kid    string          `json:"kid"`
		Kty    string          `json:"kty"`
		KeyOps []string        `json:"key_ops"`
		Crv    string          `json:"crv"`
		N      json.RawMessage `json:"n"`
		E      json.RawMessage `json:"e"`
		D      json.RawMessage `json:"d"`
		DP     json.RawMessage `json:"dp"`
		DQ     json.RawMessage `json:"dq"`
		QI     json.RawMessage `json:"qi"`
		P      json.RawMessage `json:"p"`
		Q      json.RawMessage `json:"q"`
		K      json.RawMessage `json:"k"`
		X      json.RawMessage `json:"x"`
		Y      json.RawMessage `json:"y"`
		T      json.RawMessage `json:"key_hsm"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	out := JWK{Kid: w.Kid, Kty: w.Kty, KeyOps: w.KeyOps, Crv: w.Crv}
	for _, f := range []struct {
		member string
		raw    json.RawMessage
		dst    *B64
	}{
		{"n", w.N, &out.N}, {"e", w.E, &out.E}, {"d", w.D, &out.D},
		{"dp", w.DP, &out.DP}, {"dq", w.DQ, &out.DQ}, {"qi", w.QI, &out.QI},
		{"p", w.P, &out.P}, {"q", w.Q, &out.Q}, {"k", w.K, &out.K},
		{"x", w.X, &out.X}, {"y", w.Y, &out.Y}, {"key_hsm", w.T, &out.T},
	} {
		if f.raw == nil {
			continue
		}
		if err := f.dst.UnmarshalJSON(f.raw); err != nil {
			return &keyops.InputError{Field: "key." + f.member, Reason: err.Error()}
		}
	}
	*j = out
	return nil
}

// B64 is a byte string carried in JSON as base64url without padding, the
// form Key Vault emits. Decoding is lenient the way clients in the wild
// need: padded or unpadded, base64url or standard alphabet (but not a mix).
type B64 []byte

// MarshalJSON encodes b as an unpadded base64url JSON string.
func (b B64) MarshalJSON() ([]byte, error) {
	out := make([]byte, 0, base64.RawURLEncoding.EncodedLen(len(b))+2)
	out = append(out, '"')
	out = base64.RawURLEncoding.AppendEncode(out, b)
	return append(out, '"'), nil
}

// UnmarshalJSON accepts a JSON string in any of the four base64 spellings,
// or null (leaving b unchanged). Errors say what is wrong with the encoding
// and where, never what the bytes were.
func (b *B64) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return errors.New("not a base64url string")
	}
	v, err := decodeB64(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// decodeB64 decodes base64url or standard base64, padded or not.
func decodeB64(s string) ([]byte, error) {
	body := strings.TrimRight(s, "=")
	pad := len(s) - len(body)
	var url, std bool
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '-' || c == '_':
			url = true
		case c == '+' || c == '/':
			std = true
		case c == '=':
			return nil, fmt.Errorf("bad base64: padding '=' inside the data at offset %d", i)
		default:
			return nil, fmt.Errorf("bad base64: illegal character %q at offset %d", rune(c), i)
		}
	}
	if url && std {
		return nil, errors.New("bad base64: mixes the base64url ('-', '_') and standard ('+', '/') alphabets")
	}
	if len(body)%4 == 1 {
		return nil, fmt.Errorf("bad base64: %d characters cannot be a base64 encoding (truncated?)", len(body))
	}
	if pad > 0 && (len(body)+pad)%4 != 0 {
		return nil, fmt.Errorf("bad base64: %d padding characters do not fit %d data characters", pad, len(body))
	}
	if std {
		body = strings.NewReplacer("+", "-", "/", "_").Replace(body)
	}
	v, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		// Unreachable after the checks above; kept so a future change
		// cannot turn a decoding failure into silent truncation.
		return nil, fmt.Errorf("bad base64: %v", err)
	}
	return v, nil
}

// domain is j as the key domain takes it.
func (j *JWK) domain() keyops.JWK {
	return keyops.JWK{Kid: j.Kid, Kty: j.Kty, KeyOps: j.KeyOps, N: j.N, E: j.E, D: j.D, DP: j.DP, DQ: j.DQ,
		QI: j.QI, P: j.P, Q: j.Q, K: j.K, Crv: j.Crv, X: j.X, Y: j.Y, T: j.T}
}

// wireJWK is a domain key on the wire.
func wireJWK(j keyops.JWK) *JWK {
	return &JWK{Kid: j.Kid, Kty: j.Kty, KeyOps: j.KeyOps, N: j.N, E: j.E, D: j.D, DP: j.DP, DQ: j.DQ,
		QI: j.QI, P: j.P, Q: j.Q, K: j.K, Crv: j.Crv, X: j.X, Y: j.Y, T: j.T}
}
