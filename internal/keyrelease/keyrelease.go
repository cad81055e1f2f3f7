// Package keyrelease is secure key release: an exportable key leaves kura
// only for a trusted execution environment that proves itself with an
// attestation token, and only wrapped to a key that environment holds.
//
// A release is granted when every one of these holds, checked in this
// order, each refusal naming what failed: the token's signature verifies
// with its issuer's keys (kura's own attestation service, or a configured
// authority, through OpenID Connect discovery) and it is within its validity
// window; its issuer is an authority of the key's release policy; the key
// version exists, is exportable, enabled and inside its nbf/exp window; the
// policy's conditions for that authority are met by the token's claims; a
// nonce the policy requires (x-kura-require-nonce) is the token's own and
// has not been used (any other nonce is the client's and only echoed); and
// the token carries an RSA encryption key of the environment in
// x-ms-runtime.keys. The key material is then wrapped with
// CKM_RSA_AES_KEY_WRAP (RSA-OAEP of a fresh AES-256 key, then RFC 5649 AES
// key wrap with padding of the material) and never appears in any error.
package keyrelease

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/kura-project/kura/internal/audit"
	"github.com/kura-project/kura/internal/fault"
	"github.com/kura-project/kura/internal/keys"
	"github.com/kura-project/kura/internal/oidc"
	"github.com/kura-project/kura/internal/policy/release"
	"github.com/kura-project/kura/internal/skr"
	"github.com/kura-project/kura/internal/store"
)

// Limits of a release request. The encryption algorithms of the release
// response are skr's (skr.Encs).
const (
	minTEEKeyBits     = 2048
	maxNonceLen       = 1024
	maxTargetTokenLen = 64 << 10
)

// Denied is a refused release (403). Reason names the failed check;
// Explanation is the policy evaluation tree when the policy decided.
type Denied struct {
	class       string
	Reason      string
	Explanation *release.Node
}

func (d *Denied) Error() string { return "release denied: " + d.Reason }

func deny(class, format string, args ...any) error {
	return &Denied{class: class, Reason: fmt.Sprintf(format, args...)}
}

// The reason classes of a denial: a bounded set, for logs and metrics.
const (
	ClassToken  = "token"   // the attestation token: signature, validity, issuer
	ClassKey    = "key"     // the key version: not exportable, disabled, outside nbf/exp, no policy
	ClassPolicy = "policy"  // the release policy's conditions
	ClassNonce  = "nonce"   // x-kura-require-nonce: missing, not the token's, spent
	ClassTEEKey = "tee-key" // the environment's key in x-ms-runtime
)

// Class is the denial's reason class (ClassToken, ...).
func (d *Denied) Class() string {
	if d.class == "" {
		return ClassPolicy
	}
	return d.class
}

// BadRequest is a malformed release request (400).
type BadRequest struct{ Reason string }

func (b *BadRequest) Error() string { return b.Reason }

// Signer signs release answers with its certificate in the JWS header.
type Signer interface {
	SignX5C(payload []byte) (string, error)
}

// Service releases keys.
type Service struct {
	Keys     *keys.Manager
	Verifier *oidc.Verifier
	// Signer signs the answer; its certificate is x5c[0].
	Signer Signer
	// Audit records every granted release with its nonce spend (fail
	// closed: without a record, no release).
	Audit audit.Recorder
	Now   func() time.Time // default time.Now
	// StrictTypes evaluates release policies without Key Vault's leniency
	// (a string operand matching a boolean or number claim as text):
	// release_policy_strict_types.
	StrictTypes bool
	// Observe, when set, is told each outcome: granted, or denied with its
	// reason class (ClassToken, ...), or "error" when the release failed
	// for a cause other than a denial. For metrics: bounded values only.
	Observe func(granted bool, class string)
}

// Request is one release request.
type Request struct {
	Name, Version string
	Target        string // the attestation token
	Nonce         string
	Enc           string
	// APIVersion and Kid are echoed in the signed answer: the api-version
	// asked for and the key's id as the client addressed it.
	APIVersion, Kid string
	// Bundle renders the released key version, with key_hsm, in the
	// surface's wire form (the answer's response.key).
	Bundle func(k *keys.Key, keyHSM []byte) (json.RawMessage, error)
}

// Result is a granted release: the key version released, the signed answer
// and the payload it signs. The audit record is made from the same payload,
// so the record and the answer cannot disagree.
type Result struct {
	Key     *keys.Key
	Payload skr.ReleasePayload
	JWS     string // the signed answer, {"value": JWS} on the wire
	// LedgerSeq is the ledger entry of the release's audit record (-1
	// without a ledger): its receipt proves the release is on record.
	LedgerSeq int64
}

// Release checks a request and, when everything holds, wraps the key.
func (s *Service) Release(ctx context.Context, r Request) (*Result, error) {
	res, err := s.release(ctx, r)
	if s.Observe != nil {
		var d *Denied
		switch {
		case err == nil:
			s.Observe(true, "")
		case errors.As(err, &d):
			s.Observe(false, d.Class())
		default:
			s.Observe(false, "error")
		}
	}
	return res, err
}

func (s *Service) release(ctx context.Context, r Request) (*Result, error) {
	enc := r.Enc
	if enc == "" {
		enc = skr.DefaultEnc
	}
	if _, ok := skr.OAEPHash(enc); !ok {
		return nil, &BadRequest{(&skr.UnsupportedEncError{Enc: enc}).Error()}
	}
	if r.Target == "" {
		return nil, &BadRequest{"target: missing (the attestation token)"}
	}
	if len(r.Target) > maxTargetTokenLen {
		return nil, &BadRequest{fmt.Sprintf("target: longer than %d bytes", maxTargetTokenLen)}
	}
	if len(r.Nonce) > maxNonceLen {
		return nil, &BadRequest{fmt.Sprintf("nonce: longer than %d bytes", maxNonceLen)}
	}

	claims, err := s.Verifier.Verify(ctx, r.Target)
	if err != nil {
		var oe *oidc.Error
		if errors.As(err, &oe) {
			return nil, deny(ClassToken, "the attestation token is not acceptable: %s", oe.Reason)
		}
		return nil, err // issuer keys unavailable: not the client's fault
	}
	iss, _ := claims["iss"].(string)

	k, mat, err := s.Keys.ReleaseMaterial(ctx, r.Name, r.Version)
	if err != nil {
		if e, ok := fault.As(err); ok && e.Kind == fault.Denied {
			return nil, deny(ClassKey, "%s", e.Msg)
		}
		return nil, err
	}
	if k.ReleasePolicy == nil {
		return nil, deny(ClassKey, "key %s/%s has no release policy", k.Name, k.Version)
	}
	pol, err := release.Parse(k.ReleasePolicy.Data)
	if err != nil {
		return nil, deny(ClassKey, "the key's stored release policy does not parse: %v", err)
	}
	if !slices.Contains(pol.Authorities(), oidc.NormalizeIssuer(iss)) {
		return nil, deny(ClassToken, "the token's issuer %s is not an authority of the key's release policy (%s)", iss, strings.Join(pol.Authorities(), ", "))
	}
	d := pol.EvaluateOptions(iss, claims, release.Options{StrictTypes: s.StrictTypes})
	if !d.Allowed {
		reason := "the release policy is not met"
		if d.Explanation != nil {
			reason += ": " + d.Explanation.String()
		}
		return nil, &Denied{class: ClassPolicy, Reason: reason, Explanation: d.Explanation}
	}
	if pol.RequireNonce() && r.Nonce == "" {
		return nil, deny(ClassNonce, "the release policy requires a nonce and the request has none")
	}
	// Key Vault documents the request's nonce as the client's own, for
	// freshness: it is echoed in the signed answer and otherwise free. Only
	// a policy that asks for it (x-kura-require-nonce) binds it to the
	// token's nonce and spends it.
	if pol.RequireNonce() {
		if tn, _ := claims["nonce"].(string); tn != r.Nonce {
			return nil, deny(ClassNonce, "the release policy requires the request's nonce to be the attestation token's nonce, and it is not")
		}
	}
	tee, kid, err := teeKey(claims)
	if err != nil {
		return nil, err
	}
	plain, err := mat.MarshalPrivate()
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	ct, err := skr.Wrap(tee, enc, plain)
	if err != nil {
		return nil, deny(ClassTEEKey, "the key cannot be wrapped to the environment's key: %v", err)
	}
	hsm, err := json.Marshal(skr.KeyHSM{
		SchemaVersion: skr.KeyHSMSchemaVersion,
		Header:        skr.KeyHSMHeader{Kid: kid, Alg: "dir", Enc: enc},
		Ciphertext:    base64.RawURLEncoding.EncodeToString(ct),
	})
	if err != nil {
		return nil, err
	}
	if r.Bundle == nil || s.Signer == nil {
		return nil, errors.New("key release: no answer renderer or signer is configured")
	}
	bundle, err := r.Bundle(k, hsm)
	if err != nil {
		return nil, err
	}
	tsum := sha256.Sum256([]byte(r.Target))
	psum := sha256.Sum256(k.ReleasePolicy.Data)
	payload := skr.ReleasePayload{
		Request:  skr.ReleaseRequest{APIVersion: r.APIVersion, Enc: enc, Kid: r.Kid, Nonce: r.Nonce},
		Response: skr.ReleaseResponse{Key: bundle},
		Release: skr.ReleaseBinding{Issuer: iss, PolicySHA256: hex.EncodeToString(psum[:]), TEEKey: kid,
			TokenSHA256: hex.EncodeToString(tsum[:])},
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return nil, err
	}
	// Signed before it is recorded: every record is of an answer that
	// exists, and the record names the answer's digest.
	jws, err := s.Signer.SignX5C(body)
	if err != nil {
		return nil, fault.Down("the release answer could not be signed; nothing was released", err)
	}
	asum := sha256.Sum256([]byte(jws))
	// The nonce is spent last, so a release refused for any other reason
	// (no usable TEE key, a wrap failure) can be retried with the same token.
	// It is remembered past the token's exp by more than the verifier's
	// clock skew, so the token cannot be replayed in the skew window. The
	// release is recorded with the spend: both, or no release.
	if s.Audit == nil {
		return nil, errors.New("key release: no audit recorder is configured")
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	b := payload.Release
	csum := sha256.Sum256(d.Matched()) // the claims that granted it
	ev := audit.Event{Action: "key.release", Object: "keys/" + k.Name + "/" + k.Version, Details: map[string]string{
		"token_sha256": b.TokenSHA256, "policy_sha256": b.PolicySHA256, "claims_sha256": hex.EncodeToString(csum[:]),
		"issuer": b.Issuer, "tee_key": b.TEEKey,
		"enc": payload.Request.Enc, "nonce": payload.Request.Nonce, "answer_sha256": hex.EncodeToString(asum[:])}}
	if len(d.Coerced) > 0 {
		// Granted by Key Vault's type leniency: on record, so an operator
		// can see what release_policy_strict_types would refuse.
		ev.Details["policy_coerced"] = strings.Join(d.Coerced, "; ")
	}
	rc, err := s.Audit.Record(ctx, ev, func(tx store.Store) error {
		if !pol.RequireNonce() {
			return nil
		}
		return tx.UseNonce(ctx, "release/"+r.Name+"/"+r.Nonce, now(), expiry(claims, now).Add(10*time.Minute))
	})
	if err != nil {
		// A conflict inside the audit record (the ledger) is the record
		// failing, not the nonce.
		if errors.Is(err, store.ErrConflict) && !audit.IsError(err) {
			return nil, deny(ClassNonce, "the nonce was already used for a release")
		}
		return nil, err
	}
	return &Result{Key: k, Payload: payload, JWS: jws, LedgerSeq: rc.LedgerSeq}, nil
}

func expiry(c oidc.Claims, now func() time.Time) time.Time {
	if n, ok := c["exp"].(json.Number); ok {
		if f, err := n.Float64(); err == nil {
			return time.Unix(int64(f), 0)
		}
	}
	return now().Add(24 * time.Hour)
}

// teeKey picks the environment's key as Key Vault does: the first RSA key in
// the top-level x-ms-runtime.keys with use "enc" (or key_ops containing
// "encrypt") and a kid.
func teeKey(c oidc.Claims) (*rsa.PublicKey, string, error) {
	rt, ok := c["x-ms-runtime"].(map[string]any)
	if !ok {
		return nil, "", deny(ClassTEEKey, "the attestation token has no x-ms-runtime claim with the environment's keys")
	}
	list, ok := rt["keys"].([]any)
	if !ok || len(list) == 0 {
		return nil, "", deny(ClassTEEKey, "the attestation token has no x-ms-runtime.keys")
	}
	for i, raw := range list {
		m, ok := raw.(map[string]any)
		if !ok || m["kty"] != "RSA" {
			continue
		}
		kid, _ := m["kid"].(string)
		if kid == "" || !usableForEncryption(m) {
			continue
		}
		b, _ := json.Marshal(m)
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(b); err != nil {
			return nil, "", deny(ClassTEEKey, "x-ms-runtime.keys[%d] (%s) is not a valid RSA JWK: %v", i, kid, err)
		}
		pub, ok := jwk.Key.(*rsa.PublicKey)
		if !ok {
			continue
		}
		if pub.N.BitLen() < minTEEKeyBits {
			return nil, "", deny(ClassTEEKey, "x-ms-runtime.keys[%d] (%s) is a %d-bit RSA key; at least %d bits are required", i, kid, pub.N.BitLen(), minTEEKeyBits)
		}
		if pub.E < 3 || pub.E%2 == 0 || pub.N.Bit(0) == 0 {
			return nil, "", deny(ClassTEEKey, "x-ms-runtime.keys[%d] (%s) is not a valid RSA public key (even modulus or exponent)", i, kid)
		}
		return pub, kid, nil
	}
	return nil, "", deny(ClassTEEKey, "x-ms-runtime.keys holds no RSA key with a kid usable for encryption (use \"enc\" or key_ops \"encrypt\")")
}

func usableForEncryption(m map[string]any) bool {
	if u, _ := m["use"].(string); u == "enc" {
		return true
	}
	if u, _ := m["key_use"].(string); u == "enc" {
		return true
	}
	if ops, ok := m["key_ops"].([]any); ok {
		for _, o := range ops {
			if o == "encrypt" || o == "wrapKey" {
				return true
			}
		}
	}
	return false
}

// FaultKind places Denied in the domain's error vocabulary.
func (*Denied) FaultKind() fault.Kind { return fault.Denied }

// FaultKind places BadRequest in the domain's error vocabulary.
func (*BadRequest) FaultKind() fault.Kind { return fault.BadInput }
