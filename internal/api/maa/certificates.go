package maa

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/kura-project/kura/internal/attest/appraisal"
)

// The policy management certificate routes (MAA's PolicyCertificates_*):
// GET /certificates lists the set; POST /certificates:add and :remove take
// a JWS signed by a current member whose body names the certificate,
// {"policyCertificate": {"kty", "x5c": [base64 DER]}}. The request body is
// that JWS as a JSON string (the 2020-10-01 clients) or the object
// {"policyCertificateToAdd"|"policyCertificateToRemove": JWS} (2025-06-01).

// certificatesJWK is a certificate as a JWK of the x-ms-policy-certificates
// set.
func certificatesJWK(c *x509.Certificate) map[string]any {
	alg := "RS256"
	if k, ok := c.PublicKey.(*ecdsa.PublicKey); ok {
		alg = "ES256"
		if k.Curve.Params().BitSize == 384 {
			alg = "ES384"
		}
	}
	return map[string]any{"kty": keyType(c), "alg": alg, "kid": appraisal.Thumbprint(c), "x5c": []string{base64.StdEncoding.EncodeToString(c.Raw)}}
}

func (h *Handler) getCertificates(w http.ResponseWriter, r *http.Request) {
	r, ok := h.adminRoute(w, r, "/certificates")
	if !ok {
		return
	}
	set, err := h.Policies.certificates().List(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	keys := make([]map[string]any, 0, len(set))
	for _, c := range set {
		keys = append(keys, certificatesJWK(c))
	}
	h.issue(w, map[string]any{"x-ms-policy-certificates": map[string]any{"keys": keys}})
}

func (h *Handler) addCertificate(w http.ResponseWriter, r *http.Request) {
	h.modifyCertificates(w, r, "policyCertificateToAdd")
}

func (h *Handler) removeCertificate(w http.ResponseWriter, r *http.Request) {
	h.modifyCertificates(w, r, "policyCertificateToRemove")
}

func (h *Handler) modifyCertificates(w http.ResponseWriter, r *http.Request, member string) {
	r, ok := h.adminRoute(w, r, "/certificates")
	if !ok {
		return
	}
	certs := h.Policies.certificates()
	if !certs.Isolated() {
		h.fail(w, r, appraisal.ErrNotIsolated)
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	ch, err := parseCertificateRequest(body, member, h.now())
	var ue *UploadError
	if errors.As(err, &ue) {
		Error(w, http.StatusBadRequest, "InvalidParameter", ue.Msg)
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	add := member == "policyCertificateToAdd"
	if add {
		err = certs.Add(r.Context(), ch)
	} else {
		err = certs.Remove(r.Context(), ch)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	result := "IsAbsent"
	if add {
		result = "IsPresent"
	}
	h.issue(w, map[string]any{
		"x-ms-certificate-thumbprint":    appraisal.Thumbprint(ch.Cert),
		"x-ms-policycertificates-result": result,
	})
}

// parseCertificateRequest reads an add or remove body: the JWS as a JSON
// string or {member: JWS}. The JWS must be signed (its signature verifies
// with x5c[0]; whether that signer is a member is the domain's to check);
// its body is {"policyCertificate": JWK with x5c}, and the registered JWT
// claims exp and nbf, when present, must hold at now.
func parseCertificateRequest(body []byte, member string, now time.Time) (appraisal.Change, error) {
	var ch appraisal.Change
	body = bytes.TrimSpace(body)
	var jws string
	switch {
	case len(body) > 0 && body[0] == '"':
		if err := json.Unmarshal(body, &jws); err != nil {
			return ch, uploadErr("the body is not a JSON string: %v", err)
		}
	case len(body) > 0 && body[0] == '{':
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(body, &obj); err != nil {
			return ch, uploadErr("the body is not a JSON object: %v", err)
		}
		for k, v := range obj {
			if !strings.EqualFold(k, member) {
				return ch, uploadErr("unknown member %q (the body is {%q: JWS})", k, member)
			}
			if err := json.Unmarshal(v, &jws); err != nil {
				return ch, uploadErr("%s must be a string (a JWS)", member)
			}
		}
		if jws == "" {
			return ch, uploadErr("%s is missing", member)
		}
	default:
		return ch, uploadErr("the body must be the JWS as a JSON string, or {%q: JWS}", member)
	}
	p, err := parseJWS(strings.TrimSpace(jws), member)
	if err != nil {
		return ch, err
	}
	if p.signer == nil {
		return ch, uploadErr("%s must be signed (RS256, ES256 or ES384, with the signing policy management certificate in x5c); it is unsigned", member)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(p.payload, &doc); err != nil {
		return ch, uploadErr("the JWS body is not a JSON object: %v", err)
	}
	for k := range doc {
		switch k {
		case "policyCertificate", "exp", "nbf", "iat", "jti", "iss":
		default:
			return ch, uploadErr("the JWS body has an unknown member %q (it is {\"policyCertificate\": JWK})", k)
		}
	}
	if err := checkTimes(doc["exp"], doc["nbf"], now); err != nil {
		return ch, err
	}
	raw, ok := doc["policyCertificate"]
	if !ok {
		return ch, uploadErr("the JWS body has no policyCertificate")
	}
	var jwk struct {
		X5c []string `json:"x5c"`
	}
	if err := json.Unmarshal(raw, &jwk); err != nil {
		return ch, uploadErr("policyCertificate is not a JWK: %v", err)
	}
	if len(jwk.X5c) == 0 {
		return ch, uploadErr("policyCertificate has no x5c: the certificate goes in x5c[0] (base64 DER)")
	}
	der, err := base64.StdEncoding.DecodeString(jwk.X5c[0])
	if err != nil {
		return ch, uploadErr("policyCertificate.x5c[0] is not base64: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return ch, uploadErr("policyCertificate.x5c[0] is not a certificate: %v", err)
	}
	return appraisal.Change{Cert: cert, Signer: p.signer, JWS: jws}, nil
}

// checkTimes enforces a request's exp and nbf (NumericDate seconds), with
// a minute's leeway for clocks.
func checkTimes(exp, nbf json.RawMessage, now time.Time) error {
	const leeway = time.Minute
	for _, c := range []struct {
		name string
		v    json.RawMessage
	}{{"exp", exp}, {"nbf", nbf}} {
		if c.v == nil {
			continue
		}
		var f float64
		if err := json.Unmarshal(c.v, &f); err != nil {
			return uploadErr("%s is not a number (NumericDate)", c.name)
		}
		at := time.Unix(int64(f), 0)
		if c.name == "exp" && now.After(at.Add(leeway)) {
			return uploadErr("the request expired at %s (exp)", at.UTC().Format(time.RFC3339))
		}
		if c.name == "nbf" && now.Add(leeway).Before(at) {
			return uploadErr("the request is not valid before %s (nbf)", at.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// issue answers {"token": JWT} with claims signed by the token keyring.
func (h *Handler) issue(w http.ResponseWriter, claims map[string]any) {
	tok, err := h.Keys.Issue(claims)
	if err != nil {
		Error(w, http.StatusInternalServerError, "InternalError", fmt.Sprintf("signing the answer failed (request id %s)", w.Header().Get("x-ms-request-id")))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"token": tok})
}

func (h *Handler) now() time.Time {
	if h.Now == nil {
		return time.Now()
	}
	return h.Now()
}
