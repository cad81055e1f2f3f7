// Package keyvault is the Azure Key Vault / Managed HSM keys surface, on the
// wire exactly as the official azkeys v1.5.0 client uses it: routes with
// optional versions, unpadded base64url bytes, Unix-second times, absolute
// nextLinks carrying api-version, 204 on purge, and the 401 challenge the
// client's authentication policy expects. It translates the wire to
// internal/keys and internal/auth and nothing else.
package keyvault

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/kura-project/kura/internal/api/wire"
	"github.com/kura-project/kura/internal/audit"
	"github.com/kura-project/kura/internal/auth"
	"github.com/kura-project/kura/internal/fault"
	"github.com/kura-project/kura/internal/keys"
)

// APIVersions accepted: what azkeys v1.5.0 sends, and the versions other
// SDKs and the CLI send.
var APIVersions = []string{"2025-07-01", "2025-06-01-preview", "2026-01-01-preview", "7.0", "7.1", "7.2", "7.3", "7.3-preview",
	"7.4", "7.4-preview.1", "7.5", "7.5-preview.1", "7.6", "7.6-preview.1", "7.6-preview.2"}

// Handler serves the keys surface.
type Handler struct {
	Keys *keys.Manager
	Auth *auth.Service
	Log  *slog.Logger
	// Resource is the resource URL the 401 challenge names; the vault host
	// must be a subdomain of its host (same port) for azkeys' check. Empty:
	// the parent domain of the request's host.
	Resource string
	// Release, when set, serves POST .../release (secure key release).
	Release func(http.ResponseWriter, *http.Request, *auth.Principal)
}

// Register adds the routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	route := func(pattern string, perm auth.Permission, f func(w http.ResponseWriter, r *http.Request, p *auth.Principal)) {
		mux.Handle(pattern, h.authenticated(perm, f))
	}
	route("POST /keys/{name}/create", auth.KeysManage, h.create)
	route("PUT /keys/{name}", auth.KeysManage, h.importKey)
	route("GET /keys", auth.KeysRead, h.list)
	route("GET /keys/{name}/versions", auth.KeysRead, h.listVersions)
	route("GET /keys/{name}/{$}", auth.KeysRead, h.get)
	route("GET /keys/{name}", auth.KeysRead, h.get)
	route("GET /keys/{name}/{version}", auth.KeysRead, h.get)
	route("PATCH /keys/{name}/{$}", auth.KeysManage, h.update)
	route("PATCH /keys/{name}", auth.KeysManage, h.update)
	route("PATCH /keys/{name}/{version}", auth.KeysManage, h.update)
	route("DELETE /keys/{name}", auth.KeysManage, h.delete)
	route("POST /keys/{name}/backup", auth.KeysManage, h.backup)
	route("POST /keys/restore", auth.KeysManage, h.restore)
	route("POST /keys/{name}/rotate", auth.KeysManage, h.rotate)
	route("GET /keys/{name}/rotationpolicy", auth.KeysRead, h.getRotation)
	route("PUT /keys/{name}/rotationpolicy", auth.KeysManage, h.setRotation)
	route("GET /deletedkeys", auth.KeysRead, h.listDeleted)
	route("GET /deletedkeys/{name}", auth.KeysRead, h.getDeleted)
	route("DELETE /deletedkeys/{name}", auth.KeysManage, h.purge)
	route("POST /deletedkeys/{name}/recover", auth.KeysManage, h.recover)
	route("POST /rng", auth.KeysCrypto, h.rng)
	// Operations on the latest version (/keys/k/encrypt) or a version.
	route("POST /keys/{name}/{op}", 0, h.operation)
	route("POST /keys/{name}/{version}/{op}", 0, h.operation)
}

// Error writes Key Vault's error body with x-ms-error-code.
func Error(w http.ResponseWriter, status int, code, msg string) { wire.Error(w, status, code, msg) }

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	json.NewEncoder(w).Encode(v)
}

// challenge is the 401 azkeys' authentication policy expects: an
// authorization URL whose first path segment is the tenant, and a resource
// whose host (with port) the vault host ends with.
func (h *Handler) challenge(w http.ResponseWriter, r *http.Request, msg string) {
	res := h.Resource
	if res == "" {
		res = "https://" + parentHost(r.Host)
	}
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="https://%s/kura", resource="%s"`, r.Host, res))
	Error(w, http.StatusUnauthorized, "Unauthorized", msg)
}

// parentHost drops the first DNS label: kura.localhost:8443 →
// localhost:8443. IP addresses and single labels stay as they are (clients
// then need DisableChallengeResourceVerification).
func parentHost(hostport string) string {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = hostport, ""
	}
	if net.ParseIP(host) == nil {
		if _, rest, ok := strings.Cut(host, "."); ok && rest != "" {
			host = rest
		}
	}
	if port != "" {
		return net.JoinHostPort(host, port)
	}
	return host
}

// authenticated checks the bearer token before anything else — azkeys'
// first request arrives without credentials and with its body stripped, and
// must get the challenge, not a 400 or 404 — then the api-version, then the
// caller's permission over the key named in the path.
func (h *Handler) authenticated(perm auth.Permission, f func(http.ResponseWriter, *http.Request, *auth.Principal)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := wire.Bearer(r)
		if !ok {
			h.challenge(w, r, "AKV10000: Request is missing a Bearer or PoP token.")
			return
		}
		p, err := h.Auth.Authenticate(r.Context(), tok)
		if err == nil {
			wire.NotePrincipal(r.Context(), p.Name)
		}
		if err != nil {
			if errors.Is(err, auth.ErrUnauthenticated) {
				h.challenge(w, r, "the bearer token is invalid or expired")
				return
			}
			h.log().ErrorContext(r.Context(), "authentication failed", "err", err)
			Error(w, http.StatusServiceUnavailable, "ServiceUnavailable", "authentication is unavailable; retry later")
			return
		}
		if !checkAPIVersion(w, r) {
			return
		}
		if perm != 0 && !p.Can(perm, r.PathValue("name")) {
			Error(w, http.StatusForbidden, "Forbidden", fmt.Sprintf("principal %q has no role that allows this operation on %s", p.Name, scopeOf(r)))
			return
		}
		f(w, r.WithContext(audit.WithPrincipal(r.Context(), p.ID, p.Name)), p)
	})
}

func scopeOf(r *http.Request) string {
	if n := r.PathValue("name"); n != "" {
		return "/keys/" + n
	}
	return "/"
}

// checkAPIVersion answers Key Vault's 400 BadParameter unless api-version
// is one kura speaks; the message lists them.
func checkAPIVersion(w http.ResponseWriter, r *http.Request) bool {
	if err := wire.APIVersion(r, APIVersions); err != nil {
		e, _ := fault.As(err)
		Error(w, http.StatusBadRequest, "BadParameter", e.Public())
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

// codes are Key Vault's error codes for the domain's error kinds.
var codes = map[fault.Kind]string{
	fault.BadInput: "BadParameter", fault.NotFound: "KeyNotFound", fault.Conflict: "Conflict",
	fault.Denied: "Forbidden", fault.Unavailable: "ServiceUnavailable",
}

// fail maps domain errors to Key Vault's statuses and codes. The causes of
// unavailability and internal errors stay in the log.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	e, ok := fault.As(err)
	switch {
	case !ok || e.Kind == fault.Internal:
		h.log().ErrorContext(r.Context(), "key operation failed", "err", err, "request_id", wire.RequestID(w))
		Error(w, http.StatusInternalServerError, "InternalError", "internal error (request id "+wire.RequestID(w)+")")
	case e.Kind == fault.Unavailable:
		h.log().ErrorContext(r.Context(), "key operation unavailable", "err", err, "request_id", wire.RequestID(w))
		Error(w, http.StatusServiceUnavailable, "ServiceUnavailable", "the key service is unavailable; retry later (request id "+wire.RequestID(w)+")")
	default:
		code := e.Code
		if code == "" {
			code = codes[e.Kind]
		}
		Error(w, wire.Status(e.Kind), code, e.Public())
	}
}

// decode reads a JSON body. Unknown members are ignored, as Key Vault
// does; a malformed body is a 400 naming the problem.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			Error(w, http.StatusRequestEntityTooLarge, "RequestTooLarge", fmt.Sprintf("request body exceeds the limit of %d bytes", mbe.Limit))
			return false
		}
		Error(w, http.StatusBadRequest, "BadParameter", "reading the request body failed")
		return false
	}
	// The body may hold key material (imports, plaintexts, keys to wrap);
	// every decoded field is a copy, so the buffer is wiped once decoded.
	defer clear(b)
	if len(bytes.TrimSpace(b)) == 0 {
		Error(w, http.StatusBadRequest, "BadParameter", "the request body is empty")
		return false
	}
	if t := bytes.TrimSpace(b); t[0] != '{' {
		Error(w, http.StatusBadRequest, "BadParameter", "the request body must be a JSON object")
		return false
	}
	if member, off, bad := invalidUTF8(b); bad {
		where := "the request body"
		if member != "" {
			where = member
		}
		Error(w, http.StatusBadRequest, "BadParameter", fmt.Sprintf("%s: not valid UTF-8 (byte %d of the body); JSON text is UTF-8", where, off))
		return false
	}
	if err := json.Unmarshal(b, v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			Error(w, http.StatusBadRequest, "BadParameter", fmt.Sprintf("the request body is not valid JSON: %v (at byte %d)", se, se.Offset))
		case errors.As(err, &te):
			Error(w, http.StatusBadRequest, "BadParameter", fmt.Sprintf("%s: %s is not a %s", te.Field, te.Value, te.Type))
		default:
			msg := "the request body is invalid: " + err.Error()
			if f := failingMember(b, v); f != "" {
				msg = fmt.Sprintf("%s: %v", f, err)
				if strings.HasPrefix(err.Error(), f+".") || strings.HasPrefix(err.Error(), f+":") {
					msg = err.Error() // it names the member already (key.d: ...)
				}
			}
			Error(w, http.StatusBadRequest, "BadParameter", msg)
		}
		return false
	}
	return true
}

// failingMember names the first top-level member of the JSON object b, in
// document order, that v's type refuses, for errors (such as bad base64url)
// that encoding/json reports without the field. It runs only on the error
// path and gives up on bodies of more than maxNamedMembers members (Key
// Vault's have a handful). The raw copies it makes of members are wiped;
// values a trial decode produces are left to the collector, as those of
// the failed decode itself are.
func failingMember(b []byte, v any) string {
	const maxNamedMembers = 64
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Pointer {
		return ""
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return ""
	}
	var one []byte
	defer func() { clear(one) }()
	for i := 0; dec.More() && i < maxNamedMembers; i++ {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		name, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return ""
		}
		key, _ := json.Marshal(name) // the name is not secret
		clear(one)
		one = append(append(append(append(one[:0], '{'), key...), ':'), raw...)
		one = append(one, '}')
		if json.Unmarshal(one, reflect.New(t.Elem()).Interface()) != nil {
			// An object member of a struct type: name the member inside.
			if ft, ok := memberType(t.Elem(), name); ok {
				if sub := failingMember(raw, reflect.New(ft).Interface()); sub != "" {
					name += "." + sub
				}
			}
			clear(raw)
			return name
		}
		clear(raw)
	}
	return ""
}

// memberType is the struct type that decodes JSON member name of struct
// type t, if there is one.
func memberType(t reflect.Type, name string) (reflect.Type, bool) {
	if t.Kind() != reflect.Struct {
		return nil, false
	}
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == "" {
			tag = f.Name
		}
		if !strings.EqualFold(tag, name) {
			continue
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		return ft, ft.Kind() == reflect.Struct
	}
	return nil, false
}

// base returns the vault URL of the request, for kids and nextLinks.
func base(r *http.Request) string { return "https://" + r.Host }

// --- wire models ---

type wireAttributes struct {
	Enabled         *bool  `json:"enabled,omitempty"`
	NotBefore       *int64 `json:"nbf,omitempty"`
	Expires         *int64 `json:"exp,omitempty"`
	Exportable      *bool  `json:"exportable,omitempty"`
	Created         int64  `json:"created,omitempty"`
	Updated         int64  `json:"updated,omitempty"`
	RecoverableDays int    `json:"recoverableDays,omitempty"`
	RecoveryLevel   string `json:"recoveryLevel,omitempty"`
}

type wireRelease struct {
	ContentType string `json:"contentType,omitempty"`
	Data        *B64   `json:"data,omitempty"`
	Immutable   *bool  `json:"immutable,omitempty"`
}

type wireBundle struct {
	Key           *JWK              `json:"key,omitempty"`
	Kid           string            `json:"kid,omitempty"` // list items
	Attributes    wireAttributes    `json:"attributes"`
	Tags          map[string]string `json:"tags,omitempty"`
	Managed       bool              `json:"managed,omitempty"`
	ReleasePolicy *wireRelease      `json:"release_policy,omitempty"`
	// Deleted keys.
	RecoveryID         string `json:"recoveryId,omitempty"`
	DeletedDate        int64  `json:"deletedDate,omitempty"`
	ScheduledPurgeDate int64  `json:"scheduledPurgeDate,omitempty"`
}

func unixOrNil(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	u := t.Unix()
	return &u
}

func recoveryLevel(days int) string {
	if days < 90 {
		return "CustomizedRecoverable+Purgeable"
	}
	return "Recoverable+Purgeable"
}

func kidOf(r *http.Request, name, version string) string {
	if version == "" {
		return base(r) + "/keys/" + name
	}
	return base(r) + "/keys/" + name + "/" + version
}

func attrs(k *keys.Key) wireAttributes {
	en, ex := k.Enabled, k.Exportable
	a := wireAttributes{Enabled: &en, NotBefore: unixOrNil(k.NotBefore), Expires: unixOrNil(k.Expires),
		Created: k.Created.Unix(), Updated: k.Updated.Unix(), RecoverableDays: k.RecoverableDays, RecoveryLevel: recoveryLevel(k.RecoverableDays)}
	if ex {
		a.Exportable = &ex
	}
	return a
}

func bundle(r *http.Request, k *keys.Key) wireBundle {
	jwk := wireJWK(k.Public)
	jwk.Kid = kidOf(r, k.Name, k.Version)
	jwk.Kty = k.Kty
	b := wireBundle{Key: jwk, Attributes: attrs(k), Tags: k.Tags}
	if k.ReleasePolicy != nil {
		data := B64(k.ReleasePolicy.Data)
		imm := k.ReleasePolicy.Immutable
		b.ReleasePolicy = &wireRelease{ContentType: k.ReleasePolicy.ContentType, Data: &data}
		if imm {
			b.ReleasePolicy.Immutable = &imm
		}
	}
	return b
}

func item(r *http.Request, k *keys.Key, versioned bool) wireBundle {
	v := ""
	if versioned {
		v = k.Version
	}
	return wireBundle{Kid: kidOf(r, k.Name, v), Attributes: attrs(k), Tags: k.Tags}
}

func deleted(r *http.Request, d *keys.DeletedKey, full bool) wireBundle {
	var b wireBundle
	if full {
		b = bundle(r, &d.Key)
	} else {
		b = item(r, &d.Key, false)
	}
	b.RecoveryID = base(r) + "/deletedkeys/" + d.Name
	b.DeletedDate, b.ScheduledPurgeDate = d.DeletedAt.Unix(), d.PurgeAt.Unix()
	return b
}

func (a *wireAttributes) domain() keys.Attributes {
	var out keys.Attributes
	if a == nil {
		return out
	}
	out.Enabled, out.Exportable = a.Enabled, a.Exportable
	if a.NotBefore != nil {
		t := time.Unix(*a.NotBefore, 0).UTC()
		out.NotBefore = &t
	}
	if a.Expires != nil {
		t := time.Unix(*a.Expires, 0).UTC()
		out.Expires = &t
	}
	return out
}

func (p *wireRelease) domain() (*keys.ReleasePolicy, error) {
	if p == nil {
		return nil, nil
	}
	if p.Data == nil {
		return nil, fmt.Errorf("release_policy.data is missing")
	}
	out := &keys.ReleasePolicy{ContentType: p.ContentType, Data: *p.Data}
	if p.Immutable != nil {
		out.Immutable = *p.Immutable
	}
	return out, nil
}

// --- handlers ---

func (h *Handler) create(w http.ResponseWriter, r *http.Request, _ *auth.Principal) {
	var in struct {
		Kty            string            `json:"kty"`
		KeySize        int               `json:"key_size"`
		PublicExponent int               `json:"public_exponent"`
		Crv            string            `json:"crv"`
		KeyOps         []string          `json:"key_ops"`
		Attributes     *wireAttributes   `json:"attributes"`
		Tags           map[string]string `json:"tags"`
		ReleasePolicy  *wireRelease      `json:"release_policy"`
	}
	if !decode(w, r, &in) {
		return
	}
	if in.Kty == "" {
		Error(w, http.StatusBadRequest, "BadParameter", "kty: missing")
		return
	}
	rp, err := in.ReleasePolicy.domain()
	if err != nil {
		Error(w, http.StatusBadRequest, "BadParameter", err.Error())
		return
	}
	h.answerKey(w, r)(h.Keys.Create(r.Context(), r.PathValue("name"), keys.CreateParams{Kty: in.Kty, Size: in.KeySize, PublicExponent: in.PublicExponent,
		Curve: in.Crv, KeyOps: in.KeyOps, Attributes: in.Attributes.domain(), Tags: in.Tags, ReleasePolicy: rp}))
}

func (h *Handler) importKey(w http.ResponseWriter, r *http.Request, _ *auth.Principal) {
	var in struct {
		HSM           bool              `json:"Hsm"`
		Key           *JWK              `json:"key"`
		Attributes    *wireAttributes   `json:"attributes"`
		Tags          map[string]string `json:"tags"`
		ReleasePolicy *wireRelease      `json:"release_policy"`
	}
	if !decode(w, r, &in) {
		return
	}
	if in.Key == nil {
		Error(w, http.StatusBadRequest, "BadParameter", "key: missing")
		return
	}
	rp, err := in.ReleasePolicy.domain()
	if err != nil {
		Error(w, http.StatusBadRequest, "BadParameter", err.Error())
		return
	}
	h.answerKey(w, r)(h.Keys.Import(r.Context(), r.PathValue("name"), keys.ImportParams{HSM: in.HSM, JWK: in.Key.domain(),
		Attributes: in.Attributes.domain(), Tags: in.Tags, ReleasePolicy: rp}))
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request, _ *auth.Principal) {
	h.answerKey(w, r)(h.Keys.Get(r.Context(), r.PathValue("name"), r.PathValue("version")))
}

func (h *Handler) update(w http.ResponseWriter, r *http.Request, _ *auth.Principal) {
	var in struct {
		KeyOps        *[]string          `json:"key_ops"`
		Attributes    *wireAttributes    `json:"attributes"`
		Tags          *map[string]string `json:"tags"`
		ReleasePolicy *wireRelease       `json:"release_policy"`
	}
	if !decode(w, r, &in) {
		return
	}
	rp, err := in.ReleasePolicy.domain()
	if err != nil {
		Error(w, http.StatusBadRequest, "BadParameter", err.Error())
		return
	}
	h.answerKey(w, r)(h.Keys.Update(r.Context(), r.PathValue("name"), r.PathValue("version"), keys.UpdateParams{KeyOps: in.KeyOps,
		Attributes: in.Attributes.domain(), Tags: in.Tags, ReleasePolicy: rp}))
}

func (h *Handler) delete(w http.ResponseWriter, r *http.Request, _ *auth.Principal) {
	h.answerDeleted(w, r)(h.Keys.Delete(r.Context(), r.PathValue("name")))
}

// answerKey returns a function that answers with a key operation's result:
// the key bundle, or the error mapped by fail. Handlers pass it the call
// directly: h.answerKey(w, r)(h.Keys.Rotate(ctx, name)).
func (h *Handler) answerKey(w http.ResponseWriter, r *http.Request) func(*keys.Key, error) {
	return func(k *keys.Key, err error) {
		if err != nil {
			h.fail(w, r, err)
			return
		}
		writeJSON(w, bundle(r, k))
	}
}

// answerDeleted is answerKey for deleted keys.
func (h *Handler) answerDeleted(w http.ResponseWriter, r *http.Request) func(*keys.DeletedKey, error) {
	return func(d *keys.DeletedKey, err error) {
		if err != nil {
			h.fail(w, r, err)
			return
		}
		writeJSON(w, deleted(r, d, true))
	}
}

// skipToken turns a cursor into an opaque query value and back.
func skipToken(r *http.Request) (string, bool) {
	t := r.URL.Query().Get("$skiptoken")
	if t == "" {
		return "", true
	}
	b, err := base64.RawURLEncoding.DecodeString(t)
	if err != nil {
		return "", false
	}
	return string(b), true
}

// nextLink is absolute and carries api-version: azkeys fetches it as is.
func nextLink(r *http.Request, cursor string) *string {
	if cursor == "" {
		return nil
	}
	l := base(r) + r.URL.Path + "?api-version=" + r.URL.Query().Get("api-version") + "&$skiptoken=" + base64.RawURLEncoding.EncodeToString([]byte(cursor)) + "&maxresults=25"
	return &l
}

type listResult struct {
	Value    []wireBundle `json:"value"`
	NextLink *string      `json:"nextLink"`
}

// servePage answers one page of a listing: fetch reads the page after the
// $skiptoken cursor, render turns each item into its wire form.
func servePage[T any](h *Handler, w http.ResponseWriter, r *http.Request, fetch func(after string) (keys.Page[T], error), render func(T) wireBundle) {
	after, ok := skipToken(r)
	if !ok {
		Error(w, http.StatusBadRequest, "BadParameter", "$skiptoken is malformed")
		return
	}
	p, err := fetch(after)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := listResult{Value: []wireBundle{}, NextLink: nextLink(r, p.Next)}
	for _, it := range p.Items {
		out.Value = append(out.Value, render(it))
	}
	writeJSON(w, out)
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request, _ *auth.Principal) {
	servePage(h, w, r, func(after string) (keys.Page[*keys.Key], error) { return h.Keys.List(r.Context(), after) },
		func(k *keys.Key) wireBundle { return item(r, k, false) })
}

func (h *Handler) listVersions(w http.ResponseWriter, r *http.Request, _ *auth.Principal) {
	servePage(h, w, r, func(after string) (keys.Page[*keys.Key], error) {
		return h.Keys.ListVersions(r.Context(), r.PathValue("name"), after)
	}, func(k *keys.Key) wireBundle { return item(r, k, true) })
}

func (h *Handler) listDeleted(w http.ResponseWriter, r *http.Request, _ *auth.Principal) {
	servePage(h, w, r, func(after string) (keys.Page[*keys.DeletedKey], error) { return h.Keys.ListDeleted(r.Context(), after) },
		func(d *keys.DeletedKey) wireBundle { return deleted(r, d, false) })
}

func (h *Handler) getDeleted(w http.ResponseWriter, r *http.Request, _ *auth.Principal) {
	h.answerDeleted(w, r)(h.Keys.GetDeleted(r.Context(), r.PathValue("name")))
}

func (h *Handler) purge(w http.ResponseWriter, r *http.Request, _ *auth.Principal) {
	if err := h.Keys.Purge(r.Context(), r.PathValue("name")); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) recover(w http.ResponseWriter, r *http.Request, _ *auth.Principal) {
	h.answerKey(w, r)(h.Keys.Recover(r.Context(), r.PathValue("name")))
}

type valueBody struct {
	Value *B64 `json:"value"`
}

func (h *Handler) backup(w http.ResponseWriter, r *http.Request, _ *auth.Principal) {
	blob, err := h.Keys.Backup(r.Context(), r.PathValue("name"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v := B64(blob)
	writeJSON(w, valueBody{Value: &v})
}

func (h *Handler) restore(w http.ResponseWriter, r *http.Request, _ *auth.Principal) {
	var in valueBody
	if !decode(w, r, &in) {
		return
	}
	if in.Value == nil || len(*in.Value) == 0 {
		Error(w, http.StatusBadRequest, "BadParameter", "value: missing")
		return
	}
	h.answerKey(w, r)(h.Keys.Restore(r.Context(), *in.Value))
}

func (h *Handler) rotate(w http.ResponseWriter, r *http.Request, _ *auth.Principal) {
	h.answerKey(w, r)(h.Keys.Rotate(r.Context(), r.PathValue("name")))
}

type wireRotation struct {
	ID              string `json:"id,omitempty"`
	LifetimeActions []struct {
		Trigger struct {
			TimeAfterCreate  string `json:"timeAfterCreate,omitempty"`
			TimeBeforeExpiry string `json:"timeBeforeExpiry,omitempty"`
		} `json:"trigger"`
		Action struct {
			Type string `json:"type"`
		} `json:"action"`
	} `json:"lifetimeActions"`
	Attributes *struct {
		ExpiryTime string `json:"expiryTime,omitempty"`
		Created    int64  `json:"created,omitempty"`
		Updated    int64  `json:"updated,omitempty"`
	} `json:"attributes,omitempty"`
}

func rotationWire(r *http.Request, name string, p *keys.RotationPolicy) wireRotation {
	out := wireRotation{ID: base(r) + "/keys/" + name + "/rotationpolicy"}
	out.LifetimeActions = make([]struct {
		Trigger struct {
			TimeAfterCreate  string `json:"timeAfterCreate,omitempty"`
			TimeBeforeExpiry string `json:"timeBeforeExpiry,omitempty"`
		} `json:"trigger"`
		Action struct {
			Type string `json:"type"`
		} `json:"action"`
	}, len(p.LifetimeActions))
	for i, a := range p.LifetimeActions {
		out.LifetimeActions[i].Trigger.TimeAfterCreate = a.TimeAfterCreate
		out.LifetimeActions[i].Trigger.TimeBeforeExpiry = a.TimeBeforeExpiry
		out.LifetimeActions[i].Action.Type = a.Action
	}
	out.Attributes = &struct {
		ExpiryTime string `json:"expiryTime,omitempty"`
		Created    int64  `json:"created,omitempty"`
		Updated    int64  `json:"updated,omitempty"`
	}{ExpiryTime: p.ExpiryTime}
	if !p.Created.IsZero() {
		out.Attributes.Created, out.Attributes.Updated = p.Created.Unix(), p.Updated.Unix()
	}
	return out
}

func (h *Handler) getRotation(w http.ResponseWriter, r *http.Request, _ *auth.Principal) {
	p, err := h.Keys.GetRotationPolicy(r.Context(), r.PathValue("name"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, rotationWire(r, r.PathValue("name"), p))
}

func (h *Handler) setRotation(w http.ResponseWriter, r *http.Request, _ *auth.Principal) {
	var in wireRotation
	if !decode(w, r, &in) {
		return
	}
	var p keys.RotationPolicy
	for _, a := range in.LifetimeActions {
		p.LifetimeActions = append(p.LifetimeActions, keys.LifetimeAction{TimeAfterCreate: a.Trigger.TimeAfterCreate,
			TimeBeforeExpiry: a.Trigger.TimeBeforeExpiry, Action: a.Action.Type})
	}
	if in.Attributes != nil {
		p.ExpiryTime = in.Attributes.ExpiryTime
	}
	out, err := h.Keys.SetRotationPolicy(r.Context(), r.PathValue("name"), p)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, rotationWire(r, r.PathValue("name"), out))
}

func (h *Handler) rng(w http.ResponseWriter, r *http.Request, _ *auth.Principal) {
	var in struct {
		Count *int `json:"count"`
	}
	if !decode(w, r, &in) {
		return
	}
	if in.Count == nil {
		Error(w, http.StatusBadRequest, "BadParameter", "count: missing")
		return
	}
	b, err := keys.RandomBytes(*in.Count)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v := B64(b)
	writeJSON(w, valueBody{Value: &v})
}

// operation dispatches POST /keys/{name}[/{version}]/{op}.
func (h *Handler) operation(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	name, version, op := r.PathValue("name"), r.PathValue("version"), r.PathValue("op")
	perm := auth.KeysCrypto
	switch op {
	case "encrypt", "decrypt", "sign", "verify", "wrapkey", "unwrapkey":
	case "release":
		perm = auth.KeysRelease
	default:
		Error(w, http.StatusNotFound, "NotFound", fmt.Sprintf("no operation %q on keys", op))
		return
	}
	if !p.Can(perm, name) {
		Error(w, http.StatusForbidden, "Forbidden", fmt.Sprintf("principal %q has no role that allows %s on /keys/%s", p.Name, op, name))
		return
	}
	if op == "release" {
		if h.Release == nil {
			Error(w, http.StatusNotFound, "NotFound", "secure key release is not enabled on this instance")
			return
		}
		h.Release(w, r, p)
		return
	}
	var in struct {
		Alg    string `json:"alg"`
		Value  *B64   `json:"value"`
		IV     B64    `json:"iv"`
		AAD    B64    `json:"aad"`
		Tag    B64    `json:"tag"`
		Digest *B64   `json:"digest"`
	}
	if !decode(w, r, &in) {
		return
	}
	if in.Alg == "" {
		Error(w, http.StatusBadRequest, "BadParameter", "alg: missing")
		return
	}
	if in.Value == nil {
		Error(w, http.StatusBadRequest, "BadParameter", "value: missing")
		return
	}
	ctx := r.Context()
	var res *keys.OpResult
	var err error
	switch op {
	case "encrypt":
		res, err = h.Keys.Encrypt(ctx, name, version, in.Alg, *in.Value, in.IV, in.AAD)
	case "decrypt":
		res, err = h.Keys.Decrypt(ctx, name, version, in.Alg, *in.Value, in.IV, in.AAD, in.Tag)
	case "wrapkey":
		res, err = h.Keys.WrapKey(ctx, name, version, in.Alg, *in.Value)
	case "unwrapkey":
		res, err = h.Keys.UnwrapKey(ctx, name, version, in.Alg, *in.Value)
	case "sign":
		res, err = h.Keys.Sign(ctx, name, version, in.Alg, *in.Value)
	case "verify":
		if in.Digest == nil {
			Error(w, http.StatusBadRequest, "BadParameter", "digest: missing")
			return
		}
		ok, verr := h.Keys.Verify(ctx, name, version, in.Alg, *in.Digest, *in.Value)
		if verr != nil {
			h.fail(w, r, verr)
			return
		}
		writeJSON(w, map[string]bool{"value": ok})
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := struct {
		Kid   string `json:"kid"`
		Value B64    `json:"value"`
		IV    B64    `json:"iv,omitempty"`
		Tag   B64    `json:"tag,omitempty"`
		AAD   B64    `json:"aad,omitempty"`
	}{Kid: kidOf(r, name, res.Version), Value: res.Value, IV: res.IV, Tag: res.Tag}
	if len(res.Tag) > 0 {
		out.AAD = in.AAD
	}
	writeJSON(w, out)
}

// IsPath reports whether path belongs to the Key Vault surface, so that
// errors answered before routing (sealed, no route) take its shape.
func IsPath(path string) bool {
	for _, p := range []string{"/keys", "/deletedkeys", "/rng"} {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}
