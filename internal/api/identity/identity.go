// Package identity is kura's identity surface: the OAuth2 token endpoint
// (client-credentials grant) and the administration of principals and their
// roles (/kura/v1/principals). It translates the wire to internal/auth.
package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/kura-project/kura/internal/api/wire"
	"github.com/kura-project/kura/internal/audit"
	"github.com/kura-project/kura/internal/auth"
	"github.com/kura-project/kura/internal/fault"
	"github.com/kura-project/kura/internal/store"
)

// Handler serves the identity routes.
type Handler struct {
	Auth *auth.Service
	Log  *slog.Logger
	Now  func() time.Time
}

// Register adds the routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /oauth2/token", h.token)
	mux.HandleFunc("POST /kura/v1/principals", h.admin(h.create))
	mux.HandleFunc("GET /kura/v1/principals", h.admin(h.list))
	mux.HandleFunc("GET /kura/v1/principals/{id}", h.admin(h.get))
	mux.HandleFunc("DELETE /kura/v1/principals/{id}", h.admin(h.delete))
	mux.HandleFunc("POST /kura/v1/principals/{id}/secret", h.admin(h.resetSecret))
	mux.HandleFunc("POST /kura/v1/principals/{id}/roles", h.admin(h.addRole))
	mux.HandleFunc("DELETE /kura/v1/principals/{id}/roles", h.admin(h.removeRole))
	mux.HandleFunc("POST /kura/v1/principals:adopt", h.admin(h.adopt))
}

// writeJSON answers v; identity answers carry secrets and tokens, so they
// are never cached.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Cache-Control", "no-store")
	wire.JSON(w, status, v)
}

// oauthError writes an RFC 6749 §5.2 error.
func oauthError(w http.ResponseWriter, status int, code, desc string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="kura"`)
	}
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func kuraError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	wire.Error(w, status, code, msg)
}

// token implements the client-credentials grant (RFC 6749 §4.4), with the
// client authenticated by form parameters or HTTP Basic.
func (h *Handler) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "client_credentials" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", fmt.Sprintf("grant_type %q is not supported (client_credentials)", gt))
		return
	}
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		id, secret = u, p
	}
	if id == "" || secret == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "client_id and client_secret are required")
		return
	}
	tok, exp, err := h.Auth.ClientCredentials(r.Context(), id, secret)
	if errors.Is(err, auth.ErrUnauthenticated) {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "unknown client or wrong secret")
		return
	}
	if err != nil {
		h.log().ErrorContext(r.Context(), "token endpoint", "err", err)
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "retry later")
		return
	}
	now := time.Now()
	if h.Now != nil {
		now = h.Now()
	}
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "Bearer",
		"expires_in": int64(exp.Sub(now).Seconds()), "expires_on": exp.Unix()})
}

// admin authenticates the caller and requires the administrator role.
func (h *Handler) admin(f http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := wire.Bearer(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kura"`)
			kuraError(w, http.StatusUnauthorized, "Unauthorized", "a bearer token is required")
			return
		}
		p, err := h.Auth.Authenticate(r.Context(), tok)
		if err == nil {
			wire.NotePrincipal(r.Context(), p.Name)
		}
		if err != nil {
			if !errors.Is(err, auth.ErrUnauthenticated) {
				h.storeErr(w, r, err) // the store or an issuer is down: not the caller's fault
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="kura"`)
			kuraError(w, http.StatusUnauthorized, "Unauthorized", "the bearer token is invalid or expired")
			return
		}
		if !p.Can(auth.Admin, "") {
			kuraError(w, http.StatusForbidden, "Forbidden", fmt.Sprintf("principal %q is not an administrator", p.Name))
			return
		}
		f(w, r.WithContext(audit.WithPrincipal(r.Context(), p.ID, p.Name)))
	}
}

// decode reads a strict JSON object: these bodies are kura's own, so an
// unknown member is a typo and trailing data a mistake; both are refused.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		kuraError(w, http.StatusBadRequest, "BadParameter", "reading the body failed (too large?)")
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		kuraError(w, http.StatusBadRequest, "BadParameter", "invalid JSON body: "+err.Error())
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		kuraError(w, http.StatusBadRequest, "BadParameter", fmt.Sprintf("invalid JSON body: trailing data after the object (at byte %d)", dec.InputOffset()))
		return false
	}
	return true
}

func (h *Handler) log() *slog.Logger {
	if h.Log == nil {
		return slog.Default()
	}
	return h.Log
}

// storeErr answers a domain error; causes of unavailability stay in the
// log.
func (h *Handler) storeErr(w http.ResponseWriter, r *http.Request, err error) {
	e, ok := fault.As(err)
	if !ok || e.Kind == fault.Internal || e.Kind == fault.Unavailable {
		h.log().ErrorContext(r.Context(), "identity", "err", err)
		msg := "retry later"
		if ok && e.Kind == fault.Unavailable && e.Msg != "" {
			msg = e.Public() + "; retry later" // the domain's message, never the cause
		}
		kuraError(w, http.StatusServiceUnavailable, "ServiceUnavailable", msg+" (request id "+wire.RequestID(w)+")")
		return
	}
	code := map[fault.Kind]string{fault.BadInput: "BadParameter", fault.NotFound: "NotFound", fault.Conflict: "Conflict", fault.Denied: "Forbidden"}[e.Kind]
	kuraError(w, wire.Status(e.Kind), code, e.Public())
}

// roleOut is a role assignment on the wire.
type roleOut struct {
	PrincipalID string `json:"principal_id"`
	Role        string `json:"role"`
	Scope       string `json:"scope"`
}

type principalOut struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	OIDCSubject  string    `json:"oidc_subject,omitempty"`
	ClientSecret string    `json:"client_secret,omitempty"` // only when just created or reset
	Roles        []roleOut `json:"roles"`
	Created      int64     `json:"created"`
	// Integrity is set, in a list, on a principal whose row fails its
	// integrity check: it is shown, with no roles, so that an
	// administrator can find it and delete it (or adopt it by name).
	Integrity string `json:"integrity,omitempty"`
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name        string `json:"name"`
		OIDCSubject string `json:"oidc_subject"`
		Role        string `json:"role"`
		Scope       string `json:"scope"`
	}
	if !decode(w, r, &in) {
		return
	}
	id, secret, err := h.Auth.CreatePrincipal(r.Context(), auth.NewPrincipal{Name: in.Name, OIDCSubject: in.OIDCSubject, Role: in.Role, Scope: in.Scope})
	if err != nil {
		h.storeErr(w, r, err)
		return
	}
	out, err := h.describe(r, id)
	if err != nil {
		h.storeErr(w, r, err)
		return
	}
	out.ClientSecret = secret
	writeJSON(w, http.StatusCreated, out)
}

func (h *Handler) describe(r *http.Request, id string) (principalOut, error) {
	p, roles, err := h.Auth.Principal(r.Context(), id)
	if err != nil {
		return principalOut{}, err
	}
	out := principalOut{ID: p.ID, Name: p.Name, OIDCSubject: p.OIDCSubject, Roles: []roleOut{}, Created: p.Created.Unix()}
	for _, a := range roles {
		out.Roles = append(out.Roles, roleOut{PrincipalID: a.PrincipalID, Role: a.Role, Scope: a.Scope})
	}
	return out, nil
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	ps, err := h.Auth.Principals(r.Context())
	if err != nil {
		h.storeErr(w, r, err)
		return
	}
	out := []principalOut{}
	for _, p := range ps {
		d, err := h.describe(r, p.ID)
		if errors.Is(err, auth.ErrTampered) {
			d = principalOut{ID: p.ID, Name: p.Name, OIDCSubject: p.OIDCSubject, Roles: []roleOut{}, Created: p.Created.Unix(),
				Integrity: "failed: " + err.Error()}
		} else if err != nil {
			h.storeErr(w, r, err)
			return
		}
		out = append(out, d)
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	d, err := h.describe(r, r.PathValue("id"))
	if err != nil {
		h.storeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (h *Handler) delete(w http.ResponseWriter, r *http.Request) {
	if err := h.Auth.DeletePrincipal(r.Context(), r.PathValue("id")); err != nil {
		h.storeErr(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// adopt tags the principals of a database from before schema 3, which are
// refused until an administrator vouches for them.
func (h *Handler) adopt(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Names []string `json:"names"`
	}
	if !decode(w, r, &in) {
		return
	}
	adopted, err := h.Auth.Adopt(r.Context(), in.Names)
	if err != nil {
		h.storeErr(w, r, err)
		return
	}
	out := []principalOut{}
	for _, a := range adopted {
		d := principalOut{ID: a.ID, Name: a.Name, Roles: []roleOut{}}
		for _, ra := range a.Roles {
			d.Roles = append(d.Roles, roleOut{PrincipalID: ra.PrincipalID, Role: ra.Role, Scope: ra.Scope})
		}
		out = append(out, d)
	}
	writeJSON(w, http.StatusOK, map[string]any{"adopted": out})
}

func (h *Handler) resetSecret(w http.ResponseWriter, r *http.Request) {
	secret, err := h.Auth.ResetSecret(r.Context(), r.PathValue("id"))
	if err != nil {
		h.storeErr(w, r, err)
		return
	}
	d, err := h.describe(r, r.PathValue("id"))
	if err != nil {
		h.storeErr(w, r, err)
		return
	}
	d.ClientSecret = secret
	writeJSON(w, http.StatusOK, d)
}

func (h *Handler) roleBody(w http.ResponseWriter, r *http.Request) (store.RoleAssignment, bool) {
	var in struct {
		Role  string `json:"role"`
		Scope string `json:"scope"`
	}
	if !decode(w, r, &in) {
		return store.RoleAssignment{}, false
	}
	a, err := auth.Assignment(r.PathValue("id"), in.Role, in.Scope)
	if err != nil {
		h.storeErr(w, r, err)
		return store.RoleAssignment{}, false
	}
	return a, true
}

func (h *Handler) addRole(w http.ResponseWriter, r *http.Request) {
	a, ok := h.roleBody(w, r)
	if !ok {
		return
	}
	if err := h.Auth.AddRole(r.Context(), a); err != nil {
		h.storeErr(w, r, err)
		return
	}
	h.get(w, r)
}

func (h *Handler) removeRole(w http.ResponseWriter, r *http.Request) {
	a, ok := h.roleBody(w, r)
	if !ok {
		return
	}
	if err := h.Auth.RemoveRole(r.Context(), a); err != nil {
		h.storeErr(w, r, err)
		return
	}
	h.get(w, r)
}
