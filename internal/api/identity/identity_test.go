package identity

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/auth"
	"github.com/kura-project/kura/internal/seal"
	"github.com/kura-project/kura/internal/store/sqlite"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const reqID = "req-id-0001"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// rig is the identity surface over a real SQLite store and auth service.
type rig struct {
	t     *testing.T
	st    *sqlite.Store
	auth  *auth.Service
	h     *Handler
	srv   http.Handler
	clk   *clock
	admin string
	logs  *bytes.Buffer
}

func newRig(t *testing.T) *rig {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "kura.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := &clock{t: t0}
	admin := "bootstrap-admin-token"
	logs := &bytes.Buffer{}
	r := &rig{t: t, st: st, clk: clk, admin: admin, logs: logs,
		auth: auth.New(st, testSealer(t), auth.Config{Now: clk.now, AdminTokenHash: sha256.Sum256([]byte(admin))})}
	r.h = &Handler{Auth: r.auth, Log: slog.New(slog.NewTextHandler(logs, nil)), Now: clk.now}
	mux := http.NewServeMux()
	r.h.Register(mux)
	r.srv = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("x-ms-request-id", reqID)
		mux.ServeHTTP(w, req)
	})
	return r
}

func (r *rig) send(req *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	r.srv.ServeHTTP(w, req)
	return w
}

// do sends a JSON request with a bearer token ("" for none).
func (r *rig) do(method, target, token, body string) *httptest.ResponseRecorder {
	r.t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return r.send(req)
}

// form posts to the token endpoint.
func (r *rig) form(v url.Values, user, pass string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", "/oauth2/token", strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" || pass != "" {
		req.SetBasicAuth(user, pass)
	}
	return r.send(req)
}

type principalJSON struct {
	ID           string  `json:"id"`
	Name         string  `json:"name"`
	OIDCSubject  string  `json:"oidc_subject"`
	ClientSecret string  `json:"client_secret"`
	Roles        []roleT `json:"roles"`
	Created      int64   `json:"created"`
}

type roleT struct {
	PrincipalID string `json:"principal_id"`
	Role        string `json:"role"`
	Scope       string `json:"scope"`
}

// decodeStrict decodes a principal and fails on members this test does
// not know of (so a renamed member shows).
func decodeStrict(t *testing.T, b []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("body %q: %v", b, err)
	}
}

// create makes a principal through the admin API.
func (r *rig) create(body string) principalJSON {
	r.t.Helper()
	w := r.do("POST", "/kura/v1/principals", r.admin, body)
	if w.Code != http.StatusCreated {
		r.t.Fatalf("create %s: %d %s", body, w.Code, w.Body)
	}
	var p principalJSON
	decodeStrict(r.t, w.Body.Bytes(), &p)
	return p
}

// tokenFor runs the client-credentials grant and returns the access token.
func (r *rig) tokenFor(id, secret string) string {
	r.t.Helper()
	w := r.form(url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}, "", "")
	if w.Code != 200 {
		r.t.Fatalf("token: %d %s", w.Code, w.Body)
	}
	var out struct {
		AccessToken string `json:"access_token"`
	}
	json.Unmarshal(w.Body.Bytes(), &out)
	return out.AccessToken
}

// kuraErr decodes the error body and checks x-ms-error-code and that the
// answer is not cacheable.
func kuraErr(t *testing.T, w *httptest.ResponseRecorder, status int, code string, parts ...string) {
	t.Helper()
	if w.Code != status {
		t.Errorf("status %d, want %d (%s)", w.Code, status, w.Body)
	}
	var e struct {
		Error *struct{ Code, Message string }
	}
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == nil {
		t.Fatalf("not an error body: %q", w.Body)
	}
	if e.Error.Code != code || w.Header().Get("x-ms-error-code") != code {
		t.Errorf("code %q (header %q), want %q: %s", e.Error.Code, w.Header().Get("x-ms-error-code"), code, e.Error.Message)
	}
	for _, p := range parts {
		if !strings.Contains(e.Error.Message, p) {
			t.Errorf("message %q does not contain %q", e.Error.Message, p)
		}
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q on an error", cc)
	}
}

// oauthErr checks an RFC 6749 §5.2 error.
func oauthErr(t *testing.T, w *httptest.ResponseRecorder, status int, code, desc string) {
	t.Helper()
	if w.Code != status {
		t.Errorf("status %d, want %d (%s)", w.Code, status, w.Body)
	}
	var e map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
		t.Fatalf("body %q: %v", w.Body, err)
	}
	if e["error"] != code || !strings.Contains(e["error_description"], desc) || len(e) != 2 {
		t.Errorf("error %v, want %s containing %q", e, code, desc)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	wantChallenge := ""
	if status == http.StatusUnauthorized {
		wantChallenge = `Basic realm="kura"`
	}
	if got := w.Header().Get("WWW-Authenticate"); got != wantChallenge {
		t.Errorf("WWW-Authenticate %q, want %q", got, wantChallenge)
	}
}

// --- the token endpoint ---

func TestToken(t *testing.T) {
	r := newRig(t)
	app := r.create(`{"name":"app","role":"crypto-user"}`)
	oidcOnly := r.create(`{"name":"fed","oidc_subject":"https://issuer.example|alice"}`)
	cc := "client_credentials"
	for _, c := range []struct {
		name       string
		form       url.Values
		user, pass string
	}{
		{"form, id", url.Values{"grant_type": {cc}, "client_id": {app.ID}, "client_secret": {app.ClientSecret}}, "", ""},
		{"form, name", url.Values{"grant_type": {cc}, "client_id": {"app"}, "client_secret": {app.ClientSecret}}, "", ""},
		{"basic", url.Values{"grant_type": {cc}}, app.ID, app.ClientSecret},
		{"basic over wrong form credentials", url.Values{"grant_type": {cc}, "client_id": {"x"}, "client_secret": {"y"}}, app.ID, app.ClientSecret},
		{"with a scope", url.Values{"grant_type": {cc}, "client_id": {app.ID}, "client_secret": {app.ClientSecret}, "scope": {"https://localhost/.default"}}, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := r.form(c.form, c.user, c.pass)
			if w.Code != 200 {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q on a token", cc)
			}
			var out struct {
				AccessToken string `json:"access_token"`
				TokenType   string `json:"token_type"`
				ExpiresIn   int64  `json:"expires_in"`
				ExpiresOn   int64  `json:"expires_on"`
			}
			decodeStrict(t, w.Body.Bytes(), &out)
			if !strings.HasPrefix(out.AccessToken, "kura_at_") || out.TokenType != "Bearer" || out.ExpiresIn != 3600 || out.ExpiresOn != t0.Add(time.Hour).Unix() {
				t.Errorf("token answer %+v", out)
			}
			p, err := r.auth.Authenticate(context.Background(), out.AccessToken)
			if err != nil || p.ID != app.ID || p.Name != "app" {
				t.Errorf("issued token authenticates as %+v, %v", p, err)
			}
		})
	}
	for _, c := range []struct {
		name       string
		form       url.Values
		user, pass string
		status     int
		code, desc string
	}{
		{"wrong secret", url.Values{"grant_type": {cc}, "client_id": {app.ID}, "client_secret": {app.ClientSecret + "x"}}, "", "", 401, "invalid_client", "unknown client or wrong secret"},
		{"wrong secret, basic", url.Values{"grant_type": {cc}}, app.ID, "nope", 401, "invalid_client", "unknown client or wrong secret"},
		{"unknown client", url.Values{"grant_type": {cc}, "client_id": {"ghost"}, "client_secret": {app.ClientSecret}}, "", "", 401, "invalid_client", "unknown client"},
		{"principal without a secret", url.Values{"grant_type": {cc}, "client_id": {oidcOnly.ID}, "client_secret": {"anything"}}, "", "", 401, "invalid_client", "wrong secret"},
		{"password grant", url.Values{"grant_type": {"password"}, "client_id": {app.ID}, "client_secret": {app.ClientSecret}}, "", "", 400, "unsupported_grant_type", `grant_type "password" is not supported (client_credentials)`},
		{"no grant", url.Values{"client_id": {app.ID}, "client_secret": {app.ClientSecret}}, "", "", 400, "unsupported_grant_type", `grant_type "" is not supported`},
		{"no secret", url.Values{"grant_type": {cc}, "client_id": {app.ID}}, "", "", 400, "invalid_request", "client_id and client_secret are required"},
		{"no id", url.Values{"grant_type": {cc}, "client_secret": {app.ClientSecret}}, "", "", 400, "invalid_request", "client_id and client_secret are required"},
		{"basic with an empty password", url.Values{"grant_type": {cc}, "client_secret": {app.ClientSecret}}, app.ID, "", 400, "invalid_request", "required"},
	} {
		t.Run(c.name, func(t *testing.T) {
			oauthErr(t, r.form(c.form, c.user, c.pass), c.status, c.code, c.desc)
		})
	}

	// The grant type is read from the body only, not from the query.
	req := httptest.NewRequest("POST", "/oauth2/token?grant_type=client_credentials", strings.NewReader(url.Values{"client_id": {app.ID}, "client_secret": {app.ClientSecret}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	oauthErr(t, r.send(req), 400, "unsupported_grant_type", `grant_type ""`)
	// A body that is not form-encoded.
	req = httptest.NewRequest("POST", "/oauth2/token", strings.NewReader("grant_type=client_credentials&client_id=%zz"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	oauthErr(t, r.send(req), 400, "invalid_request", "application/x-www-form-urlencoded")
	req = httptest.NewRequest("POST", "/oauth2/token", strings.NewReader(`{"grant_type":"client_credentials"}`))
	req.Header.Set("Content-Type", "application/json")
	oauthErr(t, r.send(req), 400, "unsupported_grant_type", `grant_type ""`)
	if w := r.do("GET", "/oauth2/token", "", ""); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET /oauth2/token: %d", w.Code)
	}
}

// TestTokenLifetime: expires_in is counted from the handler's clock.
func TestTokenLifetime(t *testing.T) {
	r := newRig(t)
	app := r.create(`{"name":"app"}`)
	handlerNow := t0.Add(10 * time.Minute)
	r.h.Now = func() time.Time { return handlerNow }
	w := r.form(url.Values{"grant_type": {"client_credentials"}, "client_id": {app.ID}, "client_secret": {app.ClientSecret}}, "", "")
	var out struct {
		ExpiresIn int64 `json:"expires_in"`
		ExpiresOn int64 `json:"expires_on"`
	}
	json.Unmarshal(w.Body.Bytes(), &out)
	if out.ExpiresIn != 3000 || out.ExpiresOn != t0.Add(time.Hour).Unix() {
		t.Errorf("expires_in %d expires_on %d, want 3000 and %d", out.ExpiresIn, out.ExpiresOn, t0.Add(time.Hour).Unix())
	}
	// Without a clock the handler uses the wall clock.
	r.h.Now = nil
	w = r.form(url.Values{"grant_type": {"client_credentials"}, "client_id": {app.ID}, "client_secret": {app.ClientSecret}}, "", "")
	json.Unmarshal(w.Body.Bytes(), &out)
	if want := int64(time.Until(t0.Add(time.Hour)).Seconds()); out.ExpiresIn < want-5 || out.ExpiresIn > want+5 {
		t.Errorf("wall-clock expires_in %d, want about %d", out.ExpiresIn, want)
	}
}

// TestStoreUnavailable: a store that cannot answer is a 503 that retries
// are invited to, never a 401 or a leaked cause.
func TestStoreUnavailable(t *testing.T) {
	r := newRig(t)
	app := r.create(`{"name":"app","role":"administrator"}`)
	tok := r.tokenFor(app.ID, app.ClientSecret)
	r.st.Close()
	w := r.form(url.Values{"grant_type": {"client_credentials"}, "client_id": {app.ID}, "client_secret": {app.ClientSecret}}, "", "")
	oauthErr(t, w, 503, "temporarily_unavailable", "retry later")
	for _, c := range []struct{ method, path, token, body string }{
		{"GET", "/kura/v1/principals", tok, ""}, // authentication itself fails
		{"GET", "/kura/v1/principals", r.admin, ""},
		{"GET", "/kura/v1/principals/" + app.ID, r.admin, ""},
		{"POST", "/kura/v1/principals", r.admin, `{"name":"other"}`},
		{"DELETE", "/kura/v1/principals/" + app.ID, r.admin, ""},
		{"POST", "/kura/v1/principals/" + app.ID + "/secret", r.admin, ""},
		{"POST", "/kura/v1/principals/" + app.ID + "/roles", r.admin, `{"role":"auditor"}`},
	} {
		w := r.do(c.method, c.path, c.token, c.body)
		kuraErr(t, w, 503, "ServiceUnavailable", "retry later (request id "+reqID+")")
		if strings.Contains(w.Body.String(), "closed") {
			t.Errorf("%s %s: cause leaked: %s", c.method, c.path, w.Body)
		}
	}
	if !strings.Contains(r.logs.String(), "closed") {
		t.Errorf("cause not logged: %s", r.logs)
	}
}

// --- the administration API ---

// TestAdminAuthentication: every principals route needs a bearer token of
// an administrator over "/".
func TestAdminAuthentication(t *testing.T) {
	r := newRig(t)
	officer := r.create(`{"name":"officer","role":"crypto-officer"}`)
	keyAdmin := r.create(`{"name":"keyadmin","role":"administrator","scope":"/keys/k"}`)
	admin := r.create(`{"name":"root","role":"administrator"}`)
	tokens := map[string]string{
		"officer":  r.tokenFor(officer.ID, officer.ClientSecret),
		"keyadmin": r.tokenFor(keyAdmin.ID, keyAdmin.ClientSecret),
		"root":     r.tokenFor(admin.ID, admin.ClientSecret),
	}
	routes := []struct{ method, path, body string }{
		{"POST", "/kura/v1/principals", `{"name":"x"}`},
		{"GET", "/kura/v1/principals", ""},
		{"GET", "/kura/v1/principals/" + officer.ID, ""},
		{"DELETE", "/kura/v1/principals/" + officer.ID, ""},
		{"POST", "/kura/v1/principals/" + officer.ID + "/secret", ""},
		{"POST", "/kura/v1/principals/" + officer.ID + "/roles", `{"role":"auditor"}`},
		{"DELETE", "/kura/v1/principals/" + officer.ID + "/roles", `{"role":"crypto-officer"}`},
	}
	for _, rt := range routes {
		for _, c := range []struct {
			name, authz string
			status      int
			code, msg   string
		}{
			{"no token", "", 401, "Unauthorized", "a bearer token is required"},
			{"basic", "Basic " + officer.ClientSecret, 401, "Unauthorized", "a bearer token is required"},
			{"unknown token", "Bearer kura_at_nope", 401, "Unauthorized", "the bearer token is invalid or expired"},
			{"client secret as token", "Bearer " + officer.ClientSecret, 401, "Unauthorized", "invalid or expired"},
			{"not an administrator", "Bearer " + tokens["officer"], 403, "Forbidden", `principal "officer" is not an administrator`},
			{"administrator of one key", "bearer " + tokens["keyadmin"], 403, "Forbidden", `principal "keyadmin" is not an administrator`},
		} {
			req := httptest.NewRequest(rt.method, rt.path, strings.NewReader(rt.body))
			if c.authz != "" {
				req.Header.Set("Authorization", c.authz)
			}
			w := r.send(req)
			kuraErr(t, w, c.status, c.code, c.msg)
			wantChallenge := ""
			if c.status == 401 {
				wantChallenge = `Bearer realm="kura"`
			}
			if got := w.Header().Get("WWW-Authenticate"); got != wantChallenge {
				t.Errorf("%s %s, %s: WWW-Authenticate %q", rt.method, rt.path, c.name, got)
			}
		}
	}
	// An administrator principal's token (lower-case scheme too) is let in.
	req := httptest.NewRequest("GET", "/kura/v1/principals", nil)
	req.Header.Set("Authorization", "bearer "+tokens["root"])
	if w := r.send(req); w.Code != 200 {
		t.Errorf("administrator principal: %d %s", w.Code, w.Body)
	}
	// An expired token is refused.
	r.clk.add(2 * time.Hour)
	kuraErr(t, r.do("GET", "/kura/v1/principals", tokens["root"], ""), 401, "Unauthorized", "invalid or expired")
}

func TestCreatePrincipal(t *testing.T) {
	r := newRig(t)
	for _, c := range []struct {
		name, body string
		roles      []roleT // principal_id left out
		subject    string
	}{
		{"name only", `{"name":"app"}`, []roleT{}, ""},
		{"role at /", `{"name":"user","role":"crypto-user"}`, []roleT{{Role: "crypto-user", Scope: "/"}}, ""},
		{"role at a key", `{"name":"rel","role":"release-user","scope":"/keys/k1"}`, []roleT{{Role: "release-user", Scope: "/keys/k1"}}, ""},
		{"dotted name", `{"name":"svc.prod-1_a","role":"auditor","scope":"/"}`, []roleT{{Role: "auditor", Scope: "/"}}, ""},
		{"oidc subject", `{"name":"fed","oidc_subject":"https://issuer.example/|alice"}`, []roleT{}, "https://issuer.example|alice"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := r.do("POST", "/kura/v1/principals", r.admin, c.body)
			if w.Code != http.StatusCreated {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q on an answer with a secret", cc)
			}
			if !strings.Contains(w.Body.String(), `"roles":[`) {
				t.Errorf("roles is not an array: %s", w.Body)
			}
			var p principalJSON
			decodeStrict(t, w.Body.Bytes(), &p)
			var in struct{ Name string }
			json.Unmarshal([]byte(c.body), &in)
			if len(p.ID) != 32 || p.Name != in.Name || p.Created != t0.Unix() || p.OIDCSubject != c.subject {
				t.Errorf("principal %+v", p)
			}
			if c.subject == "" && !strings.HasPrefix(p.ClientSecret, "kura_cs_") {
				t.Errorf("client secret %q", p.ClientSecret)
			}
			if c.subject != "" && p.ClientSecret != "" {
				t.Errorf("a federated principal got a secret")
			}
			if len(p.Roles) != len(c.roles) {
				t.Fatalf("roles %+v, want %+v", p.Roles, c.roles)
			}
			for i, want := range c.roles {
				want.PrincipalID = p.ID
				if p.Roles[i] != want {
					t.Errorf("role %d: %+v, want %+v", i, p.Roles[i], want)
				}
			}
			if c.subject == "" {
				// The secret works at the token endpoint.
				r.tokenFor(p.ID, p.ClientSecret)
			}
		})
	}
	for _, c := range []struct {
		name, body string
		status     int
		code, msg  string
	}{
		{"duplicate name", `{"name":"app"}`, 409, "Conflict", "a principal with that name or subject exists"},
		{"duplicate subject", `{"name":"fed2","oidc_subject":"https://issuer.example|alice"}`, 409, "Conflict", "exists"},
		{"no name", `{"role":"auditor"}`, 400, "BadParameter", `name "": 1 to 64 letters`},
		{"reserved name", `{"name":"admin"}`, 400, "BadParameter", `name "admin"`},
		{"name with a space", `{"name":"my app"}`, 400, "BadParameter", `name "my app"`},
		{"name too long", `{"name":"` + strings.Repeat("a", 65) + `"}`, 400, "BadParameter", "name"},
		{"unknown role", `{"name":"x1","role":"wizard"}`, 400, "BadParameter", `role "wizard" is unknown (administrator, crypto-officer, crypto-user, release-user, auditor, ledger-administrator, ledger-contributor, ledger-reader)`},
		{"bad scope", `{"name":"x2","role":"auditor","scope":"/secrets/s"}`, 400, "BadParameter", `scope "/secrets/s": use "/" for all keys or "/keys/<name>" for one`},
		{"nested scope", `{"name":"x3","role":"auditor","scope":"/keys/a/b"}`, 400, "BadParameter", `scope "/keys/a/b"`},
		{"ledger role over a key", `{"name":"x6","role":"ledger-reader","scope":"/keys/a"}`, 400, "BadParameter", `the ledger role ledger-reader is granted over "/" only`},
		{"bad subject", `{"name":"x4","oidc_subject":"alice"}`, 400, "BadParameter", `oidc_subject: OIDC subject "alice" must be "issuer|sub"`},
		{"unknown member", `{"name":"x5","password":"hunter2"}`, 400, "BadParameter", `invalid JSON body: json: unknown field "password"`},
		{"wrong type", `{"name":5}`, 400, "BadParameter", "invalid JSON body"},
		{"empty body", ``, 400, "BadParameter", "invalid JSON body: EOF"},
		{"not JSON", `name=x`, 400, "BadParameter", "invalid JSON body"},
	} {
		t.Run(c.name, func(t *testing.T) {
			kuraErr(t, r.do("POST", "/kura/v1/principals", r.admin, c.body), c.status, c.code, c.msg)
		})
	}
	// Nothing refused was created: the five principals above only.
	w := r.do("GET", "/kura/v1/principals", r.admin, "")
	var list struct{ Value []principalJSON }
	json.Unmarshal(w.Body.Bytes(), &list)
	if len(list.Value) != 5 {
		t.Errorf("%d principals after refusals: %s", len(list.Value), w.Body)
	}
}

func TestGetAndList(t *testing.T) {
	r := newRig(t)
	// An empty listing is an array.
	w := r.do("GET", "/kura/v1/principals", r.admin, "")
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"value":[]}` {
		t.Errorf("empty list: %d %s", w.Code, w.Body)
	}
	a := r.create(`{"name":"a"}`)
	b := r.create(`{"name":"b","role":"auditor","scope":"/keys/k"}`)
	for _, p := range []principalJSON{a, b} {
		w := r.do("GET", "/kura/v1/principals/"+p.ID, r.admin, "")
		if w.Code != 200 || w.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("get %s: %d %s", p.Name, w.Code, w.Body)
		}
		if !strings.Contains(w.Body.String(), `"roles":[`) {
			t.Errorf("roles is not an array: %s", w.Body)
		}
		var got principalJSON
		decodeStrict(t, w.Body.Bytes(), &got)
		if got.ClientSecret != "" {
			t.Errorf("get %s returns the client secret", p.Name)
		}
		p.ClientSecret = ""
		if got.ID != p.ID || got.Name != p.Name || got.Created != p.Created || len(got.Roles) != len(p.Roles) {
			t.Errorf("get %+v, created %+v", got, p)
		}
	}
	w = r.do("GET", "/kura/v1/principals", r.admin, "")
	if strings.Contains(w.Body.String(), "kura_cs_") || strings.Contains(w.Body.String(), "client_secret") || strings.Contains(w.Body.String(), `"roles":null`) {
		t.Errorf("list %s", w.Body)
	}
	var list struct{ Value []principalJSON }
	decodeStrict(t, w.Body.Bytes(), &list)
	names := map[string]int{}
	for _, p := range list.Value {
		names[p.Name] = len(p.Roles)
	}
	if len(list.Value) != 2 || names["a"] != 0 || names["b"] != 1 {
		t.Errorf("list %+v", list.Value)
	}
	kuraErr(t, r.do("GET", "/kura/v1/principals/nobody", r.admin, ""), 404, "NotFound", `no principal "nobody"`)
	kuraErr(t, r.do("GET", "/kura/v1/principals/admin", r.admin, ""), 404, "NotFound", `no principal "admin"`)
}

func TestRoles(t *testing.T) {
	r := newRig(t)
	p := r.create(`{"name":"app"}`)
	path := "/kura/v1/principals/" + p.ID + "/roles"
	tok := r.tokenFor(p.ID, p.ClientSecret)
	if got, _ := r.auth.Authenticate(context.Background(), tok); got == nil || got.Can(auth.KeysRead, "k") {
		t.Fatalf("a principal without roles can read keys: %+v", got)
	}
	roles := func(w *httptest.ResponseRecorder) []roleT {
		t.Helper()
		if w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		if w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control %q", w.Header().Get("Cache-Control"))
		}
		var out principalJSON
		decodeStrict(t, w.Body.Bytes(), &out)
		if out.ID != p.ID || out.ClientSecret != "" {
			t.Errorf("answer %+v", out)
		}
		return out.Roles
	}
	if got := roles(r.do("POST", path, r.admin, `{"role":"auditor"}`)); len(got) != 1 || got[0] != (roleT{p.ID, "auditor", "/"}) {
		t.Errorf("after adding auditor at /: %+v", got)
	}
	// Adding a role twice changes nothing.
	if got := roles(r.do("POST", path, r.admin, `{"role":"auditor","scope":"/"}`)); len(got) != 1 {
		t.Errorf("after adding it again: %+v", got)
	}
	if got := roles(r.do("POST", path, r.admin, `{"role":"crypto-user","scope":"/keys/k"}`)); len(got) != 2 {
		t.Errorf("after adding crypto-user at /keys/k: %+v", got)
	}
	// The token already issued has the new rights once auth's cache of
	// its principal is rechecked (5 s)...
	r.clk.add(6 * time.Second)
	if got, _ := r.auth.Authenticate(context.Background(), tok); got == nil || !got.Can(auth.KeysCrypto, "k") || got.Can(auth.KeysCrypto, "other") {
		t.Errorf("rights after adding roles: %+v", got)
	}
	// ...and loses a removed one at once.
	if got := roles(r.do("DELETE", path, r.admin, `{"role":"crypto-user","scope":"/keys/k"}`)); len(got) != 1 || got[0].Role != "auditor" {
		t.Errorf("after removing crypto-user: %+v", got)
	}
	if got, _ := r.auth.Authenticate(context.Background(), tok); got == nil || got.Can(auth.KeysCrypto, "k") {
		t.Errorf("removed role still effective: %+v", got)
	}
	if got := roles(r.do("DELETE", path, r.admin, `{"role":"auditor"}`)); len(got) != 0 {
		t.Errorf("after removing every role: %+v", got)
	}
	for _, c := range []struct {
		name, method, path, body string
		status                   int
		code, msg                string
	}{
		{"remove a role not held", "DELETE", path, `{"role":"auditor"}`, 404, "NotFound", "no such role assignment"},
		{"unknown role", "POST", path, `{"role":"root"}`, 400, "BadParameter", `role "root" is unknown`},
		{"no role", "POST", path, `{"scope":"/"}`, 400, "BadParameter", `role "" is unknown`},
		{"bad scope", "POST", path, `{"role":"auditor","scope":"keys/k"}`, 400, "BadParameter", `scope "keys/k"`},
		{"bad scope on removal", "DELETE", path, `{"role":"auditor","scope":"/keys/"}`, 400, "BadParameter", `scope "/keys/"`},
		{"unknown member", "POST", path, `{"role":"auditor","principal_id":"other"}`, 400, "BadParameter", `unknown field "principal_id"`},
		{"empty body", "POST", path, ``, 400, "BadParameter", "invalid JSON body"},
		{"unknown principal", "POST", "/kura/v1/principals/ghost/roles", `{"role":"auditor"}`, 404, "NotFound", `no principal "ghost"`},
		{"unknown principal, removal", "DELETE", "/kura/v1/principals/ghost/roles", `{"role":"auditor"}`, 404, "NotFound", `"ghost"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			kuraErr(t, r.do(c.method, c.path, r.admin, c.body), c.status, c.code, c.msg)
		})
	}
}

func TestResetSecret(t *testing.T) {
	r := newRig(t)
	p := r.create(`{"name":"app","role":"crypto-user"}`)
	oldToken := r.tokenFor(p.ID, p.ClientSecret)
	w := r.do("POST", "/kura/v1/principals/"+p.ID+"/secret", r.admin, "")
	if w.Code != 200 || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("reset: %d %q %s", w.Code, w.Header().Get("Cache-Control"), w.Body)
	}
	var out principalJSON
	decodeStrict(t, w.Body.Bytes(), &out)
	if !strings.HasPrefix(out.ClientSecret, "kura_cs_") || out.ClientSecret == p.ClientSecret || out.ID != p.ID || len(out.Roles) != 1 {
		t.Fatalf("reset answer %+v", out)
	}
	oauthErr(t, r.form(url.Values{"grant_type": {"client_credentials"}, "client_id": {p.ID}, "client_secret": {p.ClientSecret}}, "", ""), 401, "invalid_client", "wrong secret")
	if _, err := r.auth.Authenticate(context.Background(), oldToken); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Errorf("a token of the old secret still works: %v", err)
	}
	if tok := r.tokenFor(p.ID, out.ClientSecret); tok == "" {
		t.Errorf("no token with the new secret")
	}
	kuraErr(t, r.do("POST", "/kura/v1/principals/ghost/secret", r.admin, ""), 404, "NotFound", `no principal "ghost"`)
}

func TestDeletePrincipal(t *testing.T) {
	r := newRig(t)
	p := r.create(`{"name":"app","role":"administrator"}`)
	tok := r.tokenFor(p.ID, p.ClientSecret)
	if w := r.do("GET", "/kura/v1/principals", tok, ""); w.Code != 200 {
		t.Fatalf("the principal's own token: %d", w.Code)
	}
	w := r.do("DELETE", "/kura/v1/principals/"+p.ID, r.admin, "")
	if w.Code != http.StatusNoContent || w.Body.Len() != 0 {
		t.Fatalf("delete: %d %q", w.Code, w.Body)
	}
	kuraErr(t, r.do("GET", "/kura/v1/principals/"+p.ID, r.admin, ""), 404, "NotFound", p.ID)
	kuraErr(t, r.do("DELETE", "/kura/v1/principals/"+p.ID, r.admin, ""), 404, "NotFound", p.ID)
	// Its token and secret are gone with it.
	kuraErr(t, r.do("GET", "/kura/v1/principals", tok, ""), 401, "Unauthorized", "invalid or expired")
	oauthErr(t, r.form(url.Values{"grant_type": {"client_credentials"}, "client_id": {p.ID}, "client_secret": {p.ClientSecret}}, "", ""), 401, "invalid_client", "unknown client")
	// The name is free again.
	r.create(`{"name":"app"}`)
}

// TestUnreadableBody: a body that cannot be read is a 400.
func TestUnreadableBody(t *testing.T) {
	r := newRig(t)
	req := httptest.NewRequest("POST", "/kura/v1/principals", io.MultiReader(strings.NewReader(`{"name":`), errReader{}))
	req.Header.Set("Authorization", "Bearer "+r.admin)
	kuraErr(t, r.send(req), 400, "BadParameter", "reading the body failed")
	limited := http.MaxBytesHandler(r.srv, 16)
	req = httptest.NewRequest("POST", "/kura/v1/principals", strings.NewReader(`{"name":"`+strings.Repeat("a", 40)+`"}`))
	req.Header.Set("Authorization", "Bearer "+r.admin)
	w := httptest.NewRecorder()
	limited.ServeHTTP(w, req)
	kuraErr(t, w, 400, "BadParameter", "too large?")
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

// TestStrictBodiesAndFederatedSecrets: trailing data after the JSON object
// is refused and creates nothing; a federated principal gets no secret.
func TestStrictBodiesAndFederatedSecrets(t *testing.T) {
	r := newRig(t)
	for _, body := range []string{`{"name":"x1"} {"name":"y"}`, `{"name":"x2"}garbage`, `{"name":"x3"}]`} {
		kuraErr(t, r.do("POST", "/kura/v1/principals", r.admin, body), 400, "BadParameter", "trailing data")
	}
	if ps, _ := r.st.ListPrincipals(context.Background()); len(ps) != 0 {
		t.Errorf("refused bodies created %d principals", len(ps))
	}
	p := r.create(`{"name":"fed","oidc_subject":"https://idp.example|svc"}`)
	kuraErr(t, r.do("POST", "/kura/v1/principals/"+p.ID+"/secret", r.admin, ""), 400, "BadParameter", "OIDC issuer", "no client secret")
}

func testSealer(t *testing.T) *seal.Sealer {
	root, err := seal.OpenSoftwareRoot(filepath.Join(t.TempDir(), "root.sealed"), bytes.Repeat([]byte{5}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return seal.New(root)
}

// TestAdoptRoute: an untagged principal (schema 2) is refused at the token
// endpoint and in a management read until an administrator adopts it.
func TestAdoptRoute(t *testing.T) {
	r := newRig(t)
	p := r.create(`{"name":"legacy","role":"auditor"}`)
	if err := r.st.SetPrincipalMAC(context.Background(), p.ID, nil); err != nil {
		t.Fatal(err)
	}
	creds := url.Values{"grant_type": {"client_credentials"}, "client_id": {p.ID}, "client_secret": {p.ClientSecret}}
	oauthErr(t, r.form(creds, "", ""), 401, "invalid_client", "unknown client")
	if w := r.do("GET", "/kura/v1/principals/"+p.ID, r.admin, ""); w.Code != 503 || !strings.Contains(w.Body.String(), "integrity check") {
		t.Errorf("management read of an untagged principal: %d %s", w.Code, w.Body)
	}
	auditor := r.create(`{"name":"reader","role":"auditor"}`)
	if w := r.do("POST", "/kura/v1/principals:adopt", r.tokenFor(auditor.ID, auditor.ClientSecret), `{"names":["legacy"]}`); w.Code != 403 {
		t.Errorf("adopt by a non-administrator: %d", w.Code)
	}
	// Listed, flagged, with no roles.
	if w := r.do("GET", "/kura/v1/principals", r.admin, ""); w.Code != 200 || !strings.Contains(w.Body.String(), `"integrity":"failed: `) {
		t.Errorf("list with an untagged principal: %d %s", w.Code, w.Body)
	}
	if w := r.do("POST", "/kura/v1/principals:adopt", r.admin, `{}`); w.Code != 400 {
		t.Errorf("adopt without names: %d %s", w.Code, w.Body)
	}
	w := r.do("POST", "/kura/v1/principals:adopt", r.admin, `{"names":["legacy"]}`)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"name":"legacy"`) || !strings.Contains(w.Body.String(), `"role":"auditor"`) {
		t.Fatalf("adopt: %d %s", w.Code, w.Body)
	}
	r.tokenFor(p.ID, p.ClientSecret)
	if w := r.do("POST", "/kura/v1/principals:adopt", r.admin, `{"names":["legacy"]}`); w.Code != 409 {
		t.Errorf("adopt again: %d %s", w.Code, w.Body)
	}
}
