package keyvault

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/kura-project/kura/internal/api/wire"
	"github.com/kura-project/kura/internal/audit"
	"github.com/kura-project/kura/internal/auth"
	"github.com/kura-project/kura/internal/keyrelease"
	"github.com/kura-project/kura/internal/keys"
	"github.com/kura-project/kura/internal/ledger"
	"github.com/kura-project/kura/internal/oidc"
)

// Releaser serves POST /keys/{name}[/{version}]/release.
type Releaser struct {
	Service *keyrelease.Service
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
		res, err := rel.Service.Release(r.Context(), keyrelease.Request{
			Name: name, Version: version, Target: in.Target, Nonce: in.Nonce, Enc: in.Enc,
			APIVersion: r.URL.Query().Get("api-version"), Kid: kidOf(r, name, version),
			Bundle: func(k *keys.Key, keyHSM []byte) (json.RawMessage, error) {
				b := bundle(r, k)
				b.Key.T = B64(keyHSM)
				return json.Marshal(b)
			},
		})
		if err != nil {
			var d *keyrelease.Denied
			var b *keyrelease.BadRequest
			var ue *oidc.UnavailableError
			switch {
			case errors.As(err, &d):
				h.log().InfoContext(r.Context(), "key release denied", "principal", who.Name, "key", name, "version", version,
					"reason_class", d.Class(), "reason", d.Reason)
				w.Header().Set("x-ms-error-code", "Forbidden")
				wire.JSON(w, http.StatusForbidden, map[string]any{"error": map[string]any{"code": "Forbidden", "message": d.Error(),
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
		rb := res.Payload.Release
		h.log().InfoContext(r.Context(), "key released", "principal", who.Name, "principal_id", who.ID, "key", name, "version", res.Key.Version, "tee_key", rb.TEEKey, "issuer", rb.Issuer,
			"token_sha256", rb.TokenSHA256, "policy_sha256", rb.PolicySHA256, "ledger_seq", res.LedgerSeq)
		if res.LedgerSeq >= 0 {
			// Where the release is on record: its receipt is at
			// /app/transactions/{id}/receipt (an extra header; Key
			// Vault's clients ignore it).
			w.Header().Set("x-kura-ledger-transaction-id", ledger.TxID(res.LedgerSeq))
		}
		writeJSON(w, map[string]string{"value": res.JWS})
	}
}
