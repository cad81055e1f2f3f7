package keyvault

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/kura-project/kura/internal/audit"
	"github.com/kura-project/kura/internal/auth"
	"github.com/kura-project/kura/internal/keyrelease"
	"github.com/kura-project/kura/internal/keys/keyops"
	"github.com/kura-project/kura/internal/oidc"
)

// X5CSigner signs release responses with its certificate in the header.
type X5CSigner interface {
	SignX5C(payload []byte) (string, error)
}

// Releaser serves POST /keys/{name}[/{version}]/release.
type Releaser struct {
	Service *keyrelease.Service
	Signer  X5CSigner
}

// ReleaseHandler returns the release route's handler, for Handler.Release.
func (h *Handler) ReleaseHandler(rel *Releaser) func(http.ResponseWriter, *http.Request, *auth.Principal) {
	return func(w http.ResponseWriter, r *http.Request, who *auth.Principal) {
		var in struct {
			Target string `json:"target"`
			Nonce  string `json:"nonce"`
			Enc    string `json:"enc"`
		}
		if !decode(w, r, &in) {
			return
		}
		name, version := r.PathValue("name"), r.PathValue("version")
		res, err := rel.Service.Release(r.Context(), keyrelease.Request{Name: name, Version: version, Target: in.Target, Nonce: in.Nonce, Enc: in.Enc})
		if err != nil {
			var d *keyrelease.Denied
			var b *keyrelease.BadRequest
			var ue *oidc.UnavailableError
			switch {
			case errors.As(err, &d):
				h.log().InfoContext(r.Context(), "key release denied", "key", name, "reason", d.Reason)
				w.Header().Set("Content-Type", "application/json; charset=utf-8")
				w.Header().Set("x-ms-error-code", "Forbidden")
				w.WriteHeader(http.StatusForbidden)
				json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": "Forbidden", "message": d.Error(),
					"x-kura-explanation": d.Explanation}})
			case errors.As(err, &b):
				Error(w, http.StatusBadRequest, "BadParameter", b.Reason)
			case audit.IsError(err):
				h.log().ErrorContext(r.Context(), "key release: audit record not written; nothing released", "err", err, "key", name)
				Error(w, http.StatusServiceUnavailable, "ServiceUnavailable", "the release could not be recorded in the audit log, so nothing was released; retry later")
			case errors.As(err, &ue):
				h.log().ErrorContext(r.Context(), "key release: attestation authority unavailable", "err", err)
				Error(w, http.StatusServiceUnavailable, "ServiceUnavailable", "AKV.SKR.1012: the attestation authority's keys cannot be fetched; retry later")
			default:
				h.fail(w, r, err)
			}
			return
		}
		b := bundle(r, res.Key)
		b.Key.T = keyops.B64(res.KeyHSM)
		kid := kidOf(r, name, version)
		payload := map[string]any{
			"request":  map[string]string{"api-version": r.URL.Query().Get("api-version"), "enc": res.Enc, "kid": kid, "nonce": in.Nonce},
			"response": map[string]any{"key": b},
			// Beyond Key Vault: what this release was granted on, so the
			// answer is bound to the request and can be audited.
			"x-kura-release": map[string]string{"token_sha256": res.TokenSHA256, "policy_sha256": res.PolicySHA256,
				"issuer": res.Issuer, "tee_key": res.TEEKeyID},
		}
		p, err := json.Marshal(payload)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		jws, err := rel.Signer.SignX5C(p)
		if err != nil {
			h.log().ErrorContext(r.Context(), "signing a release answer", "err", err, "key", name)
			Error(w, http.StatusServiceUnavailable, "ServiceUnavailable", "the release answer could not be signed; retry later")
			return
		}
		h.log().InfoContext(r.Context(), "key released", "principal", who.ID, "principal_name", who.Name, "key", name, "version", res.Key.Version, "tee_key", res.TEEKeyID, "issuer", res.Issuer,
			"token_sha256", res.TokenSHA256, "policy_sha256", res.PolicySHA256)
		writeJSON(w, map[string]string{"value": jws})
	}
}
