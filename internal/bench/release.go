package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"

	"github.com/kura-project/kura/internal/attest/sim"
	"github.com/kura-project/kura/internal/keys/keyops"
)

// ReleaseRig drives attestation plus secure key release end to end.
type ReleaseRig struct {
	*KeysRig
	body []byte // a SevSnpVm request binding the TEE key
}

// StartRelease starts kura with RS256 tokens (MAA's default, and the floor's),
// an exportable AES-256 key whose policy trusts kura's own attestation, and a
// simulated TEE.
func StartRelease(ctx context.Context, dir string) (*ReleaseRig, error) {
	kr, err := startKeys(ctx, dir, "RS256")
	if err != nil {
		return nil, err
	}
	r := &ReleaseRig{KeysRig: kr}
	policy, _ := json.Marshal(map[string]any{"version": "1.0.0", "anyOf": []any{map[string]any{
		"authority": "https://127.0.0.1", "allOf": []any{map[string]any{"claim": "x-ms-attestation-type", "equals": "sevsnpvm"}}}}})
	b64 := base64.RawURLEncoding.EncodeToString
	if _, err := r.call(ctx, "/keys/released/create", `{"kty":"oct-HSM","key_size":256,"attributes":{"exportable":true},"release_policy":{"data":"`+b64(policy)+`"}}`); err != nil {
		kr.Close()
		return nil, err
	}
	tee, _ := rsa.GenerateKey(rand.Reader, 2048)
	runtime, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{"kty": "RSA", "kid": "bench-tee", "use": "enc",
		"n": b64(tee.N.Bytes()), "e": b64(big.NewInt(int64(tee.E)).Bytes())}}})
	if r.body, err = r.authority.Body(runtime, "JSON", "", sim.Options{}); err != nil {
		kr.Close()
		return nil, err
	}
	return r, nil
}

// Release runs one attestation and one release.
func (r *ReleaseRig) Release(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, "POST", r.URL+"/attest/SevSnpVm?api-version=2025-06-01", bytes.NewReader(r.body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.Client.Do(req)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	var tok struct {
		Token string `json:"token"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &tok) != nil || tok.Token == "" {
		return fmt.Errorf("attest: %s %s", resp.Status, b)
	}
	out, err := r.call(ctx, "/keys/released/release", `{"target":"`+tok.Token+`"}`)
	if err != nil {
		return err
	}
	if !strings.Contains(string(out), `"value"`) {
		return errors.New("release: no JWS")
	}
	return nil
}

// ReleaseFloor is the crypto of one attestation plus one release: a P-384
// report-signature verification and an RS256 token signature, then an
// RSA-OAEP wrap with RFC 5649 key wrap and an RS256 JWS signature.
func (r *ReleaseRig) ReleaseFloor() (func() error, error) { return r.releaseFloor(false) }

// ReleaseTableFloor is ReleaseFloor with the report verified the way kura
// verifies reports from a hot VCEK (package p384): kura's own crypto.
func (r *ReleaseRig) ReleaseTableFloor() (func() error, error) { return r.releaseFloor(true) }

func (r *ReleaseRig) releaseFloor(table bool) (func() error, error) {
	verify, err := reportVerifier(r.authority, r.report, table)
	if err != nil {
		return nil, err
	}
	sign, err := Signer("RS256")
	if err != nil {
		return nil, err
	}
	tee, _ := rsa.GenerateKey(rand.Reader, 2048)
	aesKey := make([]byte, 32)
	material := make([]byte, 32)
	payload := make([]byte, 2400)
	return func() error {
		if err := verify(); err != nil {
			return err
		}
		if err := sign(payload); err != nil {
			return err
		}
		if _, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, &tee.PublicKey, aesKey, nil); err != nil {
			return err
		}
		if _, err := keyops.AESKeyWrapPad(aesKey, material); err != nil {
			return err
		}
		return sign(payload)
	}, nil
}
