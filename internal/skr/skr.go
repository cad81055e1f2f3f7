// Package skr is the wire contract of secure key release shared by kura's
// release service (internal/keyrelease, internal/api/keyvault) and the
// in-TEE agent (internal/agent): the names of the wrapping algorithms, the
// wrapping itself (CKM_RSA_AES_KEY_WRAP: RSA-OAEP of a fresh AES-256 key,
// then RFC 5649 AES key wrap with padding of the material), the key_hsm
// object and the payload of the signed release answer.
//
// It depends on no key store, seal or attestation verifier, so the agent
// can link it without linking kura's key domain.
package skr

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"hash"

	"github.com/kura-project/kura/internal/keys/keyops"
)

// Encryption algorithms of the release response (the request's and the
// key_hsm header's "enc").
const (
	CKMRSAAESKeyWrap = "CKM_RSA_AES_KEY_WRAP" // RSA-OAEP with SHA-1; Key Vault's default
	RSAAESKeyWrap256 = "RSA_AES_KEY_WRAP_256" // RSA-OAEP with SHA-256
	RSAAESKeyWrap384 = "RSA_AES_KEY_WRAP_384" // RSA-OAEP with SHA-384

	// DefaultEnc is the enc of a request that names none.
	DefaultEnc = CKMRSAAESKeyWrap
)

// Encs lists the supported encs, default first.
func Encs() []string { return []string{CKMRSAAESKeyWrap, RSAAESKeyWrap256, RSAAESKeyWrap384} }

// OAEPHash returns the RSA-OAEP hash of enc, or false when enc is not one
// of Encs.
func OAEPHash(enc string) (func() hash.Hash, bool) {
	switch enc {
	case CKMRSAAESKeyWrap:
		return sha1.New, true
	case RSAAESKeyWrap256:
		return sha256.New, true
	case RSAAESKeyWrap384:
		return sha512.New384, true
	}
	return nil, false
}

// UnsupportedEncError is an enc that is not one of Encs.
type UnsupportedEncError struct{ Enc string }

func (e *UnsupportedEncError) Error() string {
	return fmt.Sprintf("enc %q is not supported (%s, %s, %s)", e.Enc, CKMRSAAESKeyWrap, RSAAESKeyWrap256, RSAAESKeyWrap384)
}

// Wrap wraps plain for pub with enc: RSA-OAEP(pub, aesKey) || AES-KWP(aesKey,
// plain), with a fresh AES-256 key.
func Wrap(pub *rsa.PublicKey, enc string, plain []byte) ([]byte, error) {
	newHash, ok := OAEPHash(enc)
	if !ok {
		return nil, &UnsupportedEncError{enc}
	}
	aesKey := make([]byte, 32)
	if _, err := rand.Read(aesKey); err != nil {
		return nil, err
	}
	defer clear(aesKey)
	head, err := rsa.EncryptOAEP(newHash(), rand.Reader, pub, aesKey, nil)
	if err != nil {
		return nil, fmt.Errorf("wrap for the environment's key: %w", err)
	}
	tail, err := keyops.AESKeyWrapPad(aesKey, plain)
	if err != nil {
		return nil, err
	}
	return append(head, tail...), nil
}

// Unwrap reverses Wrap with the environment's private key.
func Unwrap(priv *rsa.PrivateKey, enc string, ct []byte) ([]byte, error) {
	newHash, ok := OAEPHash(enc)
	if !ok {
		return nil, &UnsupportedEncError{enc}
	}
	n := priv.Size()
	if len(ct) <= n {
		return nil, errors.New("wrapped key is too short")
	}
	aesKey, err := rsa.DecryptOAEP(newHash(), nil, priv, ct[:n], nil)
	if err != nil {
		return nil, errors.New("wrapped key does not decrypt with the environment's key")
	}
	defer clear(aesKey)
	return keyops.AESKeyUnwrapPad(aesKey, ct[n:])
}

// KeyHSMSchemaVersion is the schema_version of a KeyHSM.
const KeyHSMSchemaVersion = "1.0"

// KeyHSM is the key_hsm object of a released key (the JSON that is
// base64url-encoded into the key bundle's key.key_hsm). Fields are in the
// order they are marshalled (alphabetical, as kura has always sent them).
type KeyHSM struct {
	Ciphertext    string       `json:"ciphertext"` // base64url (no padding) of the Wrap output
	Header        KeyHSMHeader `json:"header"`
	SchemaVersion string       `json:"schema_version"`
}

// KeyHSMHeader is the header of a KeyHSM.
type KeyHSMHeader struct {
	Alg string `json:"alg"` // "dir"
	Enc string `json:"enc"` // one of Encs
	Kid string `json:"kid"` // the TEE key the material is wrapped to
}

// ReleasePayload is the payload of the signed release answer (the JWS in
// {"value": ...}).
type ReleasePayload struct {
	Request  ReleaseRequest  `json:"request"`
	Response ReleaseResponse `json:"response"`
	// Release is beyond Key Vault: what the release was granted on, so the
	// answer is bound to the request and can be audited.
	Release ReleaseBinding `json:"x-kura-release"`
}

// ReleaseRequest echoes the release request.
type ReleaseRequest struct {
	APIVersion string `json:"api-version"`
	Enc        string `json:"enc"`
	Kid        string `json:"kid"`
	Nonce      string `json:"nonce"`
}

// ReleaseResponse carries the released key bundle. Key is kept raw (the
// server marshals its full Key Vault key bundle into it); KeyBundle is the
// part the agent reads.
type ReleaseResponse struct {
	Key json.RawMessage `json:"key"`
}

// ReleaseBinding is the x-kura-release member.
type ReleaseBinding struct {
	Issuer       string `json:"issuer"`
	PolicySHA256 string `json:"policy_sha256"`
	TEEKey       string `json:"tee_key"`
	TokenSHA256  string `json:"token_sha256"`
}

// KeyBundle is the part of the released Key Vault key bundle the agent
// needs: {"key": {"kid", "kty", "key_hsm"}}.
type KeyBundle struct {
	Key ReleasedKey `json:"key"`
}

// ReleasedKey is the JSON web key of a KeyBundle.
type ReleasedKey struct {
	Kid    string `json:"kid"`
	Kty    string `json:"kty"`
	KeyHSM string `json:"key_hsm"` // base64url of the KeyHSM JSON
}
