package maa

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"

	"github.com/kura-project/kura/internal/attest/appraisal"
	"github.com/kura-project/kura/internal/audit"
	"github.com/kura-project/kura/internal/fault"
	"github.com/kura-project/kura/internal/policy/maa"
	"github.com/kura-project/kura/internal/store"
)

// PolicyStore wraps the domain policy store with the configured policy
// signers (policy_signers). With any, the instance is in MAA's isolated
// mode: they are the initial policy management certificates, every policy
// upload must be signed by a current one, and /certificates:add and
// :remove change the set. Without, it is in MAA's default (AAD) mode: the
// administrator uploads unsigned policies or policies signed by any key,
// and there are no policy management certificates.
type PolicyStore struct {
	*appraisal.PolicyStore
	Signers []*x509.Certificate
}

// certificates is the policy management certificate set.
func (ps *PolicyStore) certificates() *appraisal.PolicyCertificates {
	return ps.PolicyStore.Certificates(ps.Signers)
}

// UploadError is a refused policy or certificate request; the API answers
// 400 with it.
type UploadError struct{ Msg string }

func (e *UploadError) Error() string { return e.Msg }

func uploadErr(format string, args ...any) error {
	return &UploadError{Msg: fmt.Sprintf(format, args...)}
}

// signedJWS is a compact JWS as MAA's policy and certificate requests
// carry it, its signature verified.
type signedJWS struct {
	signer  *x509.Certificate // x5c[0], whose key made the signature; nil for alg none
	payload []byte
}

// parseJWS parses a compact JWS: alg none with an empty signature, or
// RS256/ES256/ES384 with the signing certificate in x5c, whose key must
// verify the signature. It decides nothing about trust in the signer.
func parseJWS(jws, what string) (signedJWS, error) {
	var out signedJWS
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		return out, uploadErr("%s must be a JWS in compact form (header.payload.signature), found %d parts", what, len(parts))
	}
	hb, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[0], "="))
	if err != nil {
		return out, uploadErr("JWS header is not base64url: %v", err)
	}
	var hdr struct {
		Alg string   `json:"alg"`
		X5c []string `json:"x5c"`
	}
	if err := json.Unmarshal(hb, &hdr); err != nil {
		return out, uploadErr("JWS header is not JSON: %v", err)
	}
	if out.payload, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "=")); err != nil {
		return out, uploadErr("JWS payload is not base64url: %v", err)
	}
	switch hdr.Alg {
	case "none":
		if parts[2] != "" {
			return out, uploadErr("an unsigned (alg none) JWS must have an empty signature")
		}
	case "RS256", "ES256", "ES384":
		if out.signer, err = verifySigned(hdr.Alg, hdr.X5c, parts); err != nil {
			return out, err
		}
	case "":
		return out, uploadErr("JWS header has no alg")
	default:
		return out, uploadErr("JWS alg %q is not accepted (none, RS256, ES256, ES384)", hdr.Alg)
	}
	return out, nil
}

// ParseUpload parses a policy JWS as MAA clients send it: payload
// {"AttestationPolicy": base64url(policy text)}, alg none or RS256/ES256/ES384
// with the signing certificate in x5c, whose key must verify the
// signature. It returns the policy text (empty for a reset) and the signing
// certificate (nil when unsigned). Whether the signer is trusted is the
// instance's mode to say (Handler.checkSigner), not the parser's.
func ParseUpload(jws string) (string, *x509.Certificate, error) {
	p, err := parseJWS(strings.TrimSpace(jws), "policy")
	if err != nil {
		return "", nil, err
	}
	cert := p.signer
	if len(bytes.TrimSpace(p.payload)) == 0 {
		return "", cert, nil // reset with an empty document
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(p.payload, &doc); err != nil {
		return "", nil, uploadErr("JWS payload is not a JSON object: %v", err)
	}
	raw, ok := doc["AttestationPolicy"]
	if !ok {
		if len(doc) == 0 {
			return "", cert, nil
		}
		return "", nil, uploadErr("JWS payload has no AttestationPolicy member")
	}
	var enc string
	if err := json.Unmarshal(raw, &enc); err != nil {
		return "", nil, uploadErr("AttestationPolicy must be a base64url string")
	}
	text, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(enc, "="))
	if err != nil {
		return "", nil, uploadErr("AttestationPolicy is not base64url: %v", err)
	}
	return string(text), cert, nil
}

// signerStill re-checks, in the write's transaction, that an isolated
// instance's upload signer is still a policy management certificate: a
// :remove that committed after checkSigner must win.
func (ps *PolicyStore) signerStill(ctx context.Context, cert *x509.Certificate) func(tx store.Store) error {
	certs := ps.certificates()
	if !certs.Isolated() {
		return nil
	}
	return func(tx store.Store) error {
		ok, err := certs.TrustedIn(ctx, tx, cert)
		if err != nil {
			return err
		}
		if !ok {
			return uploadErr("the policy's signer stopped being a policy management certificate while the upload was made")
		}
		return nil
	}
}

// checkSigner applies the instance's mode to a parsed upload's signer: in
// isolated mode it must be a current policy management certificate; in
// default mode any signer, or none, will do. A refusal is an *UploadError;
// any other error is the certificate set failing to load.
func (ps *PolicyStore) checkSigner(ctx context.Context, cert *x509.Certificate) error {
	certs := ps.certificates()
	if !certs.Isolated() {
		return nil
	}
	if cert == nil {
		return uploadErr("this instance is in isolated mode: policies must be signed by a policy management certificate (RS256, ES256 or ES384 with the certificate in x5c); the upload is unsigned")
	}
	ok, err := certs.Trusted(ctx, cert)
	if err != nil {
		return err
	}
	if !ok {
		return uploadErr("policy signer certificate %q (SHA-1 thumbprint %s) is not a policy management certificate of this instance", cert.Subject.CommonName, appraisal.Thumbprint(cert))
	}
	return nil
}

func verifySigned(alg string, x5c []string, parts []string) (*x509.Certificate, error) {
	if len(x5c) == 0 {
		return nil, uploadErr("a signed JWS must carry its signing certificate in x5c")
	}
	der, err := base64.StdEncoding.DecodeString(x5c[0])
	if err != nil {
		return nil, uploadErr("x5c[0] is not base64: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, uploadErr("x5c[0] is not a certificate: %v", err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[2], "="))
	if err != nil {
		return nil, uploadErr("JWS signature is not base64url: %v", err)
	}
	input := []byte(parts[0] + "." + parts[1])
	if err := verifyJWS(alg, cert.PublicKey, input, sig); err != nil {
		return nil, uploadErr("the JWS signature does not verify with the x5c certificate %q: %v", cert.Subject.CommonName, err)
	}
	return cert, nil
}

// verifyJWS checks a JWS signature (RS256, or ES256/ES384 in raw r||s form).
func verifyJWS(alg string, pub any, input, sig []byte) error {
	switch alg {
	case "RS256":
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return errors.New("RS256 needs an RSA key")
		}
		d := sha256.Sum256(input)
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, d[:], sig)
	case "ES256", "ES384":
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return errors.New(alg + " needs an EC key")
		}
		// The hash is the alg's; r||s is as long as the key's curve wants.
		// RFC 7518 pairs ES256 with P-256 only, but @azure/attestation
		// labels every EC signature ES256 (a P-384 key signs SHA-256 and
		// says ES256), and MAA accepts what its client sends.
		h, curveOK := crypto.SHA256, k.Curve == elliptic.P256() || k.Curve == elliptic.P384()
		if alg == "ES384" {
			h, curveOK = crypto.SHA384, k.Curve == elliptic.P384()
		}
		if !curveOK {
			return fmt.Errorf("%s does not take a %s key", alg, k.Curve.Params().Name)
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return fmt.Errorf("%s signature is %d bytes; a %s key's is %d", alg, len(sig), k.Curve.Params().Name, 2*size)
		}
		hh := h.New()
		hh.Write(input)
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		if !ecdsa.Verify(k, hh.Sum(nil), r, s) {
			return errors.New("verification failed")
		}
		return nil
	}
	return errors.New("unsupported alg " + alg)
}

// unsignedJWS wraps policy text as MAA's StoredAttestationPolicy JWS.
func unsignedJWS(text string) string {
	p, _ := json.Marshal(map[string]string{"AttestationPolicy": base64.RawURLEncoding.EncodeToString([]byte(text))})
	return base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + base64.RawURLEncoding.EncodeToString(p) + "."
}

// policyRoute checks the api-version, the caller's rights and the type of
// a policy route; r's context names the caller for the audit log.
func (h *Handler) policyRoute(w http.ResponseWriter, r *http.Request, raw string) (*http.Request, string, bool) {
	r, ok := h.adminRoute(w, r, "/policies")
	if !ok {
		return r, "", false
	}
	m, ok := h.Service.Lookup(raw)
	if !ok || !h.Policies.Known(m.Type) {
		Error(w, http.StatusBadRequest, "InvalidAttestationType", fmt.Sprintf("attestation type %q is not supported by this instance", raw))
		return r, "", false
	}
	return r, m.Type, true
}

// adminRoute checks the api-version and the caller's administrator rights
// for a route under prefix; r's context names the caller for the audit log.
func (h *Handler) adminRoute(w http.ResponseWriter, r *http.Request, prefix string) (*http.Request, bool) {
	if !checkAPIVersion(w, r) {
		return r, false
	}
	actor, err := "", errors.New("no administrator check is configured")
	if h.Authorize != nil {
		actor, err = h.Authorize(r)
	}
	if err != nil && fault.Of(err) == fault.Denied {
		Error(w, http.StatusForbidden, "Forbidden", "access to "+prefix+" requires the administrator role: "+err.Error())
		return r, false
	}
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="kura"`)
		Error(w, http.StatusUnauthorized, "Unauthorized", "access to "+prefix+" requires a valid administrator bearer token")
		return r, false
	}
	return r.WithContext(audit.WithActor(r.Context(), actor)), true
}

// upload parses a policy upload and applies the instance's mode to its
// signer; it answers the refusal itself.
func (h *Handler) upload(w http.ResponseWriter, r *http.Request, jws string) (string, *x509.Certificate, bool) {
	text, cert, err := ParseUpload(jws)
	if err == nil {
		err = h.Policies.checkSigner(r.Context(), cert)
	}
	var ue *UploadError
	if errors.As(err, &ue) {
		Error(w, http.StatusBadRequest, "InvalidPolicy", ue.Msg)
		return "", nil, false
	}
	if err != nil {
		h.fail(w, r, err)
		return "", nil, false
	}
	return text, cert, true
}

func (h *Handler) policyToken(w http.ResponseWriter, result string, sp store.Policy, sentJWS string, signer *x509.Certificate) {
	jws := sp.JWS
	if jws == "" {
		jws = unsignedJWS(sp.Text)
	}
	claims := map[string]any{"x-ms-policy": jws}
	if result != "" {
		claims["x-ms-policy-result"] = result
	}
	if sentJWS != "" {
		sum := sha256.Sum256([]byte(sentJWS))
		claims["x-ms-policy-token-hash"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	if signer != nil {
		claims["x-ms-policy-signer"] = map[string]any{"kty": keyType(signer), "x5c": []string{base64.StdEncoding.EncodeToString(signer.Raw)}}
	}
	tok, err := h.Keys.Issue(claims)
	if err != nil {
		Error(w, http.StatusInternalServerError, "InternalError", "signing the policy result failed")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"token": tok})
}

func keyType(c *x509.Certificate) string {
	if _, ok := c.PublicKey.(*ecdsa.PublicKey); ok {
		return "EC"
	}
	return "RSA"
}

func (h *Handler) getPolicy(w http.ResponseWriter, r *http.Request) {
	r, typ, ok := h.policyRoute(w, r, r.PathValue("type"))
	if !ok {
		return
	}
	sp, err := h.Policies.Get(r.Context(), typ)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var signer *x509.Certificate
	if sp.Signer != nil {
		signer, _ = x509.ParseCertificate(sp.Signer)
	}
	h.policyToken(w, "", sp, "", signer)
}

func (h *Handler) setPolicy(w http.ResponseWriter, r *http.Request) {
	r, typ, ok := h.policyRoute(w, r, r.PathValue("type"))
	if !ok {
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	jws := string(body)
	text, cert, ok := h.upload(w, r, jws)
	if !ok {
		return
	}
	if strings.TrimSpace(text) == "" {
		Error(w, http.StatusBadRequest, "InvalidPolicy", "the policy document is empty; use POST /policies/"+typ+":reset to return to the default")
		return
	}
	sp := store.Policy{Type: typ, Text: text, JWS: strings.TrimSpace(jws)}
	if cert != nil {
		sp.Signer = cert.Raw
	}
	if err := h.Policies.SetChecked(r.Context(), sp, h.Policies.signerStill(r.Context(), cert)); err != nil {
		var ue *UploadError
		if errors.As(err, &ue) {
			Error(w, http.StatusBadRequest, "InvalidPolicy", ue.Msg)
			return
		}
		var pe *maa.ParseError
		if errors.As(err, &pe) {
			Error(w, http.StatusBadRequest, "InvalidPolicy", "policy does not parse: "+pe.Error())
			return
		}
		h.fail(w, r, err)
		return
	}
	h.policyToken(w, "Updated", sp, sp.JWS, cert)
}

func (h *Handler) resetPolicy(w http.ResponseWriter, r *http.Request) {
	raw, op, found := strings.Cut(r.PathValue("typeop"), ":")
	if !found || op != "reset" {
		Error(w, http.StatusNotFound, "NotFound", "no such operation: POST "+r.URL.Path)
		return
	}
	r, typ, ok := h.policyRoute(w, r, raw)
	if !ok {
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	jws := strings.TrimSpace(string(body))
	var cert *x509.Certificate
	if jws == "" && h.Policies.certificates().Isolated() {
		Error(w, http.StatusBadRequest, "InvalidPolicy", "this instance is in isolated mode: a reset must be a JWS with an empty policy document, signed by a policy management certificate")
		return
	}
	if jws != "" {
		text, c, ok := h.upload(w, r, jws)
		if !ok {
			return
		}
		if strings.TrimSpace(text) != "" {
			Error(w, http.StatusBadRequest, "InvalidPolicy", "a reset takes a JWS with an empty policy document")
			return
		}
		cert = c
	}
	if err := h.Policies.ResetChecked(r.Context(), typ, h.Policies.signerStill(r.Context(), cert)); err != nil {
		var ue *UploadError
		if errors.As(err, &ue) {
			Error(w, http.StatusBadRequest, "InvalidPolicy", ue.Msg)
			return
		}
		h.fail(w, r, err)
		return
	}
	sp, err := h.Policies.Get(r.Context(), typ)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.policyToken(w, "Removed", sp, jws, cert)
}
