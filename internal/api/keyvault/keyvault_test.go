package keyvault

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/kura-project/kura/internal/auth"
	"github.com/kura-project/kura/internal/fault"
	"github.com/kura-project/kura/internal/keyrelease"
	"github.com/kura-project/kura/internal/keys"
	"github.com/kura-project/kura/internal/oidc"
	"github.com/kura-project/kura/internal/seal"
	"github.com/kura-project/kura/internal/store/sqlite"
)

// --- test rig ---

// t0 is the injected time every rig starts at.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	host  = "kura.localhost:8443"
	vault = "https://" + host
	reqID = "req-kv-0001"
	av    = "?api-version=7.4"
)

var versionRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

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

// rig is the keys surface over a real SQLite store, a real sealer, a real
// key manager and a real auth service.
type rig struct {
	t     *testing.T
	st    *sqlite.Store
	keys  *keys.Manager
	auth  *auth.Service
	h     *Handler
	srv   http.Handler
	clk   *clock
	admin string
	logs  *bytes.Buffer
}

func newRig(t *testing.T, recoverableDays int) *rig {
	t.Helper()
	return newRigStrict(t, recoverableDays, false)
}

// newRigStrict is newRig with keyvault_strict_inputs set or not.
func newRigStrict(t *testing.T, recoverableDays int, strict bool) *rig {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "kura.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	root, err := seal.OpenSoftwareRoot(filepath.Join(dir, "root.sealed"), bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: t0}
	admin := "dev-admin-token-for-tests"
	logs := &bytes.Buffer{}
	r := &rig{t: t, st: st, clk: clk, admin: admin, logs: logs,
		keys: keys.New(st, seal.New(root), keys.Config{Now: clk.now, RecoverableDays: recoverableDays, StrictInputs: strict}),
		auth: auth.New(st, seal.New(root), auth.Config{Now: clk.now, AdminTokenHash: sha256.Sum256([]byte(admin))}),
	}
	r.h = &Handler{Keys: r.keys, Auth: r.auth, Log: slog.New(slog.NewTextHandler(logs, nil))}
	mux := http.NewServeMux()
	r.h.Register(mux)
	// The server's middleware sets the request id that error messages cite.
	r.srv = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("x-ms-request-id", reqID)
		mux.ServeHTTP(w, req)
	})
	return r
}

// principal creates a principal with one role and returns its access token.
func (r *rig) principal(name, role, scope string) string {
	r.t.Helper()
	ctx := context.Background()
	id, secret, err := r.auth.CreatePrincipal(ctx, auth.NewPrincipal{Name: name, Role: role, Scope: scope})
	if err != nil {
		r.t.Fatalf("create principal %s: %v", name, err)
	}
	tok, _, err := r.auth.ClientCredentials(ctx, id, secret)
	if err != nil {
		r.t.Fatalf("token for %s: %v", name, err)
	}
	return tok
}

// send serves req as the vault host.
func (r *rig) send(req *http.Request) *httptest.ResponseRecorder {
	req.Host = host
	w := httptest.NewRecorder()
	r.srv.ServeHTTP(w, req)
	return w
}

// do sends a request with a bearer token ("" for none) and a body ("" for
// none).
func (r *rig) do(method, target, token, body string) *httptest.ResponseRecorder {
	r.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return r.send(req)
}

// ok sends an admin request and requires a 200, returning the JSON body.
func (r *rig) ok(method, target, body string) map[string]any {
	r.t.Helper()
	w := r.do(method, target, r.admin, body)
	if w.Code != http.StatusOK {
		r.t.Fatalf("%s %s: %d %s", method, target, w.Code, w.Body)
	}
	return object(r.t, w.Body.Bytes())
}

// create makes an EC P-256 key through the surface and returns its bundle.
func (r *rig) create(name string) map[string]any {
	r.t.Helper()
	return r.ok("POST", "/keys/"+name+"/create"+av, `{"kty":"EC","crv":"P-256"}`)
}

func object(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("body %q: %v", b, err)
	}
	return m
}

// at walks nested objects: at(m, "key", "kid").
func at(m map[string]any, path ...string) any {
	var v any = m
	for _, p := range path {
		o, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = o[p]
	}
	return v
}

func str(m map[string]any, path ...string) string { s, _ := at(m, path...).(string); return s }

func unixOf(t time.Time) float64 { return float64(t.Unix()) }

// errOf decodes Key Vault's error body and checks that x-ms-error-code
// carries the same code.
func errOf(t *testing.T, w *httptest.ResponseRecorder) (code, msg string) {
	t.Helper()
	var e struct {
		Error *struct{ Code, Message string }
	}
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == nil {
		t.Fatalf("not an error body (%d): %q", w.Code, w.Body)
	}
	if h := w.Header().Get("x-ms-error-code"); h != e.Error.Code {
		t.Errorf("x-ms-error-code %q, body code %q", h, e.Error.Code)
	}
	return e.Error.Code, e.Error.Message
}

// wantErr checks status, code and that the message holds every part.
func wantErr(t *testing.T, w *httptest.ResponseRecorder, status int, code string, parts ...string) {
	t.Helper()
	if w.Code != status {
		t.Errorf("status %d, want %d (%s)", w.Code, status, w.Body)
	}
	c, msg := errOf(t, w)
	if c != code {
		t.Errorf("code %q, want %q (message %q)", c, code, msg)
	}
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("message %q does not contain %q", msg, p)
		}
	}
}

// --- authentication and the challenge ---

// TestChallenge: a request without a usable bearer token gets the 401
// azkeys' authentication policy expects, before any api-version, body or
// routing check.
func TestChallenge(t *testing.T) {
	r := newRig(t, 0)
	const challenge = `Bearer authorization="https://kura.localhost:8443/kura", resource="https://localhost:8443"`
	for _, c := range []struct {
		name, method, target, authz, body, msg string
	}{
		{"no token", "GET", "/keys/k" + av, "", "", "AKV10000: Request is missing a Bearer or PoP token."},
		{"no token, no api-version", "GET", "/keys/k", "", "", "AKV10000"},
		{"no token, unsupported api-version", "GET", "/keys?api-version=1.0", "", "", "AKV10000"},
		{"no token, unknown operation", "POST", "/keys/k/bogus", "", "", "AKV10000"},
		{"no token, body stripped", "POST", "/keys/k/create" + av, "", "", "AKV10000"},
		{"no token, release", "POST", "/keys/k/release" + av, "", "", "AKV10000"},
		{"no token, deleted keys", "DELETE", "/deletedkeys/k" + av, "", "", "AKV10000"},
		{"basic scheme", "GET", "/keys" + av, "Basic YWRtaW46eA==", "", "AKV10000"},
		{"bearer without token", "GET", "/keys" + av, "Bearer ", "", "AKV10000"},
		{"scheme only", "GET", "/keys" + av, "Bearer", "", "AKV10000"},
		{"unknown token", "GET", "/keys" + av, "Bearer not-a-token", "", "the bearer token is invalid or expired"},
		{"unknown kura token", "GET", "/keys" + av, "Bearer kura_at_AAAA", "", "the bearer token is invalid or expired"},
		{"unknown token, no api-version", "POST", "/keys/k/bogus", "Bearer nope", `{"x":1}`, "invalid or expired"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var rd io.Reader
			if c.body != "" {
				rd = strings.NewReader(c.body)
			}
			req := httptest.NewRequest(c.method, c.target, rd)
			if c.authz != "" {
				req.Header.Set("Authorization", c.authz)
			}
			w := r.send(req)
			wantErr(t, w, http.StatusUnauthorized, "Unauthorized", c.msg)
			if got := w.Header().Get("WWW-Authenticate"); got != challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, challenge)
			}
		})
	}
}

// TestChallengeResource: the resource is the configured one, or the parent
// domain of the request's host.
func TestChallengeResource(t *testing.T) {
	r := newRig(t, 0)
	req := httptest.NewRequest("GET", "/keys"+av, nil)
	req.Host = "vault.kura.example"
	w := httptest.NewRecorder()
	r.srv.ServeHTTP(w, req)
	if got, want := w.Header().Get("WWW-Authenticate"), `Bearer authorization="https://vault.kura.example/kura", resource="https://kura.example"`; got != want {
		t.Errorf("derived resource: %q, want %q", got, want)
	}
	r.h.Resource = "https://vault.example:9443"
	w = r.do("GET", "/keys"+av, "", "")
	if got, want := w.Header().Get("WWW-Authenticate"), `Bearer authorization="https://kura.localhost:8443/kura", resource="https://vault.example:9443"`; got != want {
		t.Errorf("configured resource: %q, want %q", got, want)
	}
}

func TestParentHost(t *testing.T) {
	for in, want := range map[string]string{
		"kura.localhost:8443":     "localhost:8443",
		"kura.localhost":          "localhost",
		"a.b.example.com:443":     "b.example.com:443",
		"localhost:8443":          "localhost:8443",
		"localhost":               "localhost",
		"127.0.0.1:8443":          "127.0.0.1:8443",
		"127.0.0.1":               "127.0.0.1",
		"[::1]:8443":              "[::1]:8443",
		"kura.":                   "kura.",
		"vault.contoso.net:12345": "contoso.net:12345",
	} {
		if got := parentHost(in); got != want {
			t.Errorf("parentHost(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestBearerScheme: the scheme is matched without regard to case, and
// surrounding spaces of the token do not matter.
func TestBearerScheme(t *testing.T) {
	r := newRig(t, 0)
	for _, authz := range []string{"Bearer " + r.admin, "bearer " + r.admin, "BEARER " + r.admin, "Bearer   " + r.admin + " "} {
		req := httptest.NewRequest("GET", "/keys"+av, nil)
		req.Header.Set("Authorization", authz)
		if w := r.send(req); w.Code != http.StatusOK {
			t.Errorf("Authorization %q: %d %s", authz, w.Code, w.Body)
		}
	}
}

// TestExpiredToken: an issued token works until it expires, then gets the
// challenge.
func TestExpiredToken(t *testing.T) {
	r := newRig(t, 0)
	tok := r.principal("reader", auth.Auditor, "/")
	if w := r.do("GET", "/keys"+av, tok, ""); w.Code != http.StatusOK {
		t.Fatalf("fresh token: %d %s", w.Code, w.Body)
	}
	r.clk.add(time.Hour + time.Second)
	w := r.do("GET", "/keys"+av, tok, "")
	wantErr(t, w, http.StatusUnauthorized, "Unauthorized", "invalid or expired")
	if !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), `Bearer authorization="https://`+host+`/kura"`) {
		t.Errorf("no challenge: %q", w.Header().Get("WWW-Authenticate"))
	}
}

// TestAuthenticationUnavailable: a store that cannot answer is a 503, not a
// challenge (the credential may be good), and the cause stays in the log.
func TestAuthenticationUnavailable(t *testing.T) {
	r := newRig(t, 0)
	tok := r.principal("reader", auth.Auditor, "/") // not yet cached
	r.st.Close()
	w := r.do("GET", "/keys"+av, tok, "")
	wantErr(t, w, http.StatusServiceUnavailable, "ServiceUnavailable", "authentication is unavailable; retry later")
	if w.Header().Get("WWW-Authenticate") != "" {
		t.Errorf("503 carries a challenge")
	}
	if strings.Contains(w.Body.String(), "closed") {
		t.Errorf("cause leaked: %s", w.Body)
	}
	if !strings.Contains(r.logs.String(), "authentication failed") || !strings.Contains(r.logs.String(), "closed") {
		t.Errorf("cause not logged: %s", r.logs)
	}
}

// --- api-version ---

func TestAPIVersion(t *testing.T) {
	r := newRig(t, 0)
	for _, v := range APIVersions {
		if w := r.do("GET", "/keys?api-version="+url.QueryEscape(v), r.admin, ""); w.Code != http.StatusOK {
			t.Errorf("api-version %s: %d %s", v, w.Code, w.Body)
		}
	}
	noRole := r.principal("nobody", auth.ReleaseUser, "/keys/other")
	for _, c := range []struct {
		name, target, token string
		parts               []string
	}{
		{"missing", "/keys", r.admin, []string{"api-version is required", "7.4-preview.1", "2025-07-01"}},
		{"empty", "/keys?api-version=", r.admin, []string{"api-version is required", "7.4-preview.1", "2025-07-01"}},
		{"unsupported", "/keys?api-version=2016-10-01", r.admin, []string{`api-version "2016-10-01" is not supported`, strings.Join(APIVersions, ", ")}},
		{"case matters", "/keys?api-version=7.4-PREVIEW.1", r.admin, []string{`"7.4-PREVIEW.1" is not supported`}},
		{"before the permission check", "/keys/k/create?api-version=6.0", noRole, []string{`"6.0" is not supported`}},
		{"before the operation check", "/keys/k/bogus", r.admin, []string{"api-version is required"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			method := "GET"
			if strings.Contains(c.target, "/k/") {
				method = "POST"
			}
			wantErr(t, r.do(method, c.target, c.token, `{}`), http.StatusBadRequest, "BadParameter", c.parts...)
		})
	}
}

// --- permissions ---

func TestPermissions(t *testing.T) {
	r := newRig(t, 0)
	r.create("k")
	tokens := map[string]string{
		"auditor":   r.principal("aud", auth.Auditor, "/"),
		"officer-k": r.principal("officer", auth.CryptoOfficer, "/keys/k"),
		"user":      r.principal("user", auth.CryptoUser, "/"),
		"releaser":  r.principal("rel", auth.ReleaseUser, "/"),
	}
	digest := base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	sign := `{"alg":"ES256","value":"` + digest + `"}`
	for _, c := range []struct {
		who, method, target, body string
		status                    int
		msg                       string
	}{
		{"auditor", "GET", "/keys" + av, "", 200, ""},
		{"auditor", "GET", "/keys/k" + av, "", 200, ""},
		{"auditor", "GET", "/deletedkeys" + av, "", 200, ""},
		{"auditor", "POST", "/keys/k2/create" + av, `{"kty":"EC"}`, 403, `principal "aud" has no role that allows this operation on /keys/k2`},
		{"auditor", "DELETE", "/keys/k" + av, "", 403, `principal "aud" has no role that allows this operation on /keys/k`},
		{"auditor", "POST", "/keys/k/sign" + av, sign, 403, `principal "aud" has no role that allows sign on /keys/k`},
		{"auditor", "POST", "/rng" + av, `{"count":8}`, 403, `principal "aud" has no role that allows this operation on /`},
		{"officer-k", "GET", "/keys/k" + av, "", 200, ""},
		{"officer-k", "PATCH", "/keys/k" + av, `{"tags":{"a":"b"}}`, 200, ""},
		{"officer-k", "GET", "/keys/k/versions" + av, "", 200, ""},
		{"officer-k", "GET", "/keys" + av, "", 403, `principal "officer" has no role that allows this operation on /`},
		{"officer-k", "POST", "/keys/other/create" + av, `{"kty":"EC"}`, 403, "on /keys/other"},
		{"officer-k", "POST", "/keys/restore" + av, `{"value":"AA"}`, 403, "this operation on /"},
		{"officer-k", "POST", "/keys/k/sign" + av, sign, 403, `principal "officer" has no role that allows sign on /keys/k`},
		{"user", "POST", "/keys/k/sign" + av, sign, 200, ""},
		{"user", "POST", "/rng" + av, `{"count":8}`, 200, ""},
		{"user", "DELETE", "/keys/k" + av, "", 403, `principal "user"`},
		{"user", "POST", "/keys/k/release" + av, `{}`, 403, `principal "user" has no role that allows release on /keys/k`},
		{"releaser", "GET", "/keys/k" + av, "", 403, `principal "rel"`},
		{"releaser", "POST", "/keys/k/sign" + av, sign, 403, "allows sign on /keys/k"},
		// Allowed, but release is not served by this handler.
		{"releaser", "POST", "/keys/k/release" + av, `{}`, 404, "secure key release is not enabled"},
	} {
		t.Run(c.who+" "+c.method+" "+c.target, func(t *testing.T) {
			w := r.do(c.method, c.target, tokens[c.who], c.body)
			if c.status == 200 {
				if w.Code != 200 {
					t.Fatalf("%d %s", w.Code, w.Body)
				}
				return
			}
			code := "Forbidden"
			if c.status == 404 {
				code = "NotFound"
			}
			wantErr(t, w, c.status, code, c.msg)
		})
	}
}

// --- the key life cycle ---

func TestCreateGetUpdate(t *testing.T) {
	r := newRig(t, 0)
	b := r.ok("POST", "/keys/k1/create"+av, `{"kty":"EC-HSM","crv":"P-256","tags":{"env":"test"},"attributes":{"nbf":1770000000,"exp":4102444800}}`)
	kid := str(b, "key", "kid")
	version, ok := strings.CutPrefix(kid, vault+"/keys/k1/")
	if !ok || !versionRE.MatchString(version) {
		t.Fatalf("kid %q is not %s/keys/k1/<version>", kid, vault)
	}
	if str(b, "key", "kty") != "EC-HSM" || str(b, "key", "crv") != "P-256" || str(b, "key", "x") == "" || str(b, "key", "y") == "" {
		t.Errorf("key %v", b["key"])
	}
	if at(b, "key", "d") != nil {
		t.Fatalf("private material in the answer: %v", b["key"])
	}
	if ops := at(b, "key", "key_ops"); fmt.Sprint(ops) != "[sign verify]" {
		t.Errorf("key_ops %v", ops)
	}
	want := map[string]any{"enabled": true, "created": unixOf(t0), "updated": unixOf(t0), "nbf": float64(1770000000), "exp": float64(4102444800),
		"recoverableDays": float64(90), "recoveryLevel": "Recoverable+Purgeable"}
	attrs, _ := b["attributes"].(map[string]any)
	for k, v := range want {
		if attrs[k] != v {
			t.Errorf("attributes.%s = %v, want %v", k, attrs[k], v)
		}
	}
	if _, ok := attrs["exportable"]; ok {
		t.Errorf("a non-exportable key says exportable: %v", attrs)
	}
	if str(b, "tags", "env") != "test" {
		t.Errorf("tags %v", b["tags"])
	}
	if _, ok := b["release_policy"]; ok {
		t.Errorf("release_policy on a key without one: %v", b["release_policy"])
	}

	// The kid is built from the host the client addressed.
	req := httptest.NewRequest("GET", "/keys/k1"+av, nil)
	req.Header.Set("Authorization", "Bearer "+r.admin)
	req.Host = "other.localhost:9000"
	w := httptest.NewRecorder()
	r.srv.ServeHTTP(w, req)
	if got := str(object(t, w.Body.Bytes()), "key", "kid"); got != "https://other.localhost:9000/keys/k1/"+version {
		t.Errorf("kid on another host: %q", got)
	}

	// Latest, latest with a trailing slash, and the version.
	for _, p := range []string{"/keys/k1", "/keys/k1/", "/keys/k1/" + version} {
		if got := str(r.ok("GET", p+av, ""), "key", "kid"); got != kid {
			t.Errorf("GET %s: kid %q, want %q", p, got, kid)
		}
	}
	wantErr(t, r.do("GET", "/keys/nokey"+av, r.admin, ""), 404, "KeyNotFound", `a key with name "nokey" was not found`)
	wantErr(t, r.do("GET", "/keys/k1/"+strings.Repeat("0", 32)+av, r.admin, ""), 404, "KeyNotFound", `key "k1" version "`+strings.Repeat("0", 32)+`" was not found`)
	wantErr(t, r.do("GET", "/keys/k1/notaversion"+av, r.admin, ""), 404, "KeyNotFound", `key version "notaversion" was not found`)

	// A new version of the same name becomes the latest.
	b2 := r.create("k1")
	if kid2 := str(b2, "key", "kid"); kid2 == kid || !strings.HasPrefix(kid2, vault+"/keys/k1/") {
		t.Errorf("second version kid %q (first %q)", kid2, kid)
	}
	if got := str(r.ok("GET", "/keys/k1"+av, ""), "key", "kid"); got != str(b2, "key", "kid") {
		t.Errorf("latest after a new version: %q", got)
	}

	// Update a version: attributes and tags change, created stays.
	r.clk.add(time.Minute)
	u := r.ok("PATCH", "/keys/k1/"+version+av, `{"attributes":{"enabled":false},"tags":{"env":"prod","team":"x"}}`)
	if at(u, "attributes", "enabled") != false || at(u, "attributes", "updated") != unixOf(t0.Add(time.Minute)) || at(u, "attributes", "created") != unixOf(t0) {
		t.Errorf("updated attributes %v", u["attributes"])
	}
	if str(u, "tags", "env") != "prod" || str(u, "tags", "team") != "x" || str(u, "key", "kid") != kid {
		t.Errorf("updated bundle %v", u)
	}
	// The disabled version refuses operations: Forbidden.
	d := base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	wantErr(t, r.do("POST", "/keys/k1/"+version+"/sign"+av, r.admin, `{"alg":"ES256","value":"`+d+`"}`), 403, "Forbidden", "disabled key")
	// The latest version (unversioned PATCH, with a trailing slash too).
	for _, p := range []string{"/keys/k1", "/keys/k1/"} {
		u = r.ok("PATCH", p+av, `{"key_ops":["verify"]}`)
		if str(u, "key", "kid") != str(b2, "key", "kid") || fmt.Sprint(at(u, "key", "key_ops")) != "[verify]" {
			t.Errorf("PATCH %s: %v", p, u["key"])
		}
	}
	wantErr(t, r.do("PATCH", "/keys/k1"+av, r.admin, `{"key_ops":["encrypt"]}`), 400, "BadParameter", `key_ops: "encrypt" is not possible with a EC key`)
	wantErr(t, r.do("PATCH", "/keys/k1"+av, r.admin, `{"attributes":{"exportable":true}}`), 400, "BadParameter", "AKV.SKR.1003")
	wantErr(t, r.do("PATCH", "/keys/nokey"+av, r.admin, `{"tags":{}}`), 404, "KeyNotFound", `"nokey"`)
	wantErr(t, r.do("PATCH", "/keys/k1"+av, r.admin, `{"release_policy":{"contentType":"x"}}`), 400, "BadParameter", "release_policy.data is missing")
}

func TestDeleteRecoverPurge(t *testing.T) {
	r := newRig(t, 0)
	created := r.create("k")
	r.clk.add(time.Hour)
	deletedAt := r.clk.now()
	d := r.ok("DELETE", "/keys/k"+av, "")
	if str(d, "recoveryId") != vault+"/deletedkeys/k" || at(d, "deletedDate") != unixOf(deletedAt) ||
		at(d, "scheduledPurgeDate") != unixOf(deletedAt.AddDate(0, 0, 90)) || str(d, "key", "kid") != str(created, "key", "kid") {
		t.Errorf("deleted bundle %v", d)
	}
	if at(d, "attributes", "recoveryLevel") != "Recoverable+Purgeable" {
		t.Errorf("deleted attributes %v", d["attributes"])
	}
	wantErr(t, r.do("GET", "/keys/k"+av, r.admin, ""), 404, "KeyNotFound")
	wantErr(t, r.do("DELETE", "/keys/k"+av, r.admin, ""), 404, "KeyNotFound", `"k"`)
	g := r.ok("GET", "/deletedkeys/k"+av, "")
	if str(g, "recoveryId") != vault+"/deletedkeys/k" || at(g, "deletedDate") != unixOf(deletedAt) || str(g, "key", "kid") == "" {
		t.Errorf("get deleted %v", g)
	}
	// A deleted name cannot be reused until it is recovered or purged.
	wantErr(t, r.do("POST", "/keys/k/create"+av, r.admin, `{"kty":"EC"}`), 409, "Conflict", `key "k" is deleted but recoverable`)

	rec := r.ok("POST", "/deletedkeys/k/recover"+av, "")
	if str(rec, "key", "kid") != str(created, "key", "kid") || at(rec, "recoveryId") != nil {
		t.Errorf("recovered %v", rec)
	}
	r.ok("GET", "/keys/k"+av, "")
	wantErr(t, r.do("GET", "/deletedkeys/k"+av, r.admin, ""), 404, "KeyNotFound", `a deleted key with name "k" was not found`)
	wantErr(t, r.do("POST", "/deletedkeys/k/recover"+av, r.admin, ""), 404, "KeyNotFound", `a deleted key with name "k"`)
	wantErr(t, r.do("DELETE", "/deletedkeys/k"+av, r.admin, ""), 404, "KeyNotFound", `a deleted key with name "k"`)

	r.ok("DELETE", "/keys/k"+av, "")
	w := r.do("DELETE", "/deletedkeys/k"+av, r.admin, "")
	if w.Code != http.StatusNoContent || w.Body.Len() != 0 {
		t.Fatalf("purge: %d %q", w.Code, w.Body)
	}
	wantErr(t, r.do("GET", "/deletedkeys/k"+av, r.admin, ""), 404, "KeyNotFound")
	wantErr(t, r.do("DELETE", "/deletedkeys/k"+av, r.admin, ""), 404, "KeyNotFound")
	// Purged: the name is free again.
	r.create("k")
}

// TestCustomRetention: a retention under 90 days is "Customized".
func TestCustomRetention(t *testing.T) {
	r := newRig(t, 7)
	b := r.create("k")
	if at(b, "attributes", "recoverableDays") != float64(7) || at(b, "attributes", "recoveryLevel") != "CustomizedRecoverable+Purgeable" {
		t.Errorf("attributes %v", b["attributes"])
	}
	d := r.ok("DELETE", "/keys/k"+av, "")
	if at(d, "scheduledPurgeDate") != unixOf(t0.AddDate(0, 0, 7)) {
		t.Errorf("scheduledPurgeDate %v, want %v", d["scheduledPurgeDate"], unixOf(t0.AddDate(0, 0, 7)))
	}
	for days, want := range map[int]string{1: "CustomizedRecoverable+Purgeable", 89: "CustomizedRecoverable+Purgeable", 90: "Recoverable+Purgeable"} {
		if got := recoveryLevel(days); got != want {
			t.Errorf("recoveryLevel(%d) = %q, want %q", days, got, want)
		}
	}
}

func TestImport(t *testing.T) {
	r := newRig(t, 0)
	aesKey := bytes.Repeat([]byte{0x42}, 32)
	k := base64.RawURLEncoding.EncodeToString(aesKey)
	b := r.ok("PUT", "/keys/imp"+av, `{"Hsm":true,"key":{"kty":"oct","k":"`+k+`","key_ops":["encrypt","decrypt"]},"tags":{"src":"import"}}`)
	if str(b, "key", "kty") != "oct-HSM" || at(b, "key", "k") != nil || str(b, "tags", "src") != "import" {
		t.Fatalf("imported bundle %v", b)
	}
	// kura encrypts with the imported key: the ciphertext opens locally.
	msg := []byte("imported key in use")
	aad := []byte("ctx")
	e := r.ok("POST", "/keys/imp/encrypt"+av, `{"alg":"A256GCM","value":"`+base64.RawURLEncoding.EncodeToString(msg)+`","aad":"`+base64.RawURLEncoding.EncodeToString(aad)+`"}`)
	ct, _ := base64.RawURLEncoding.DecodeString(str(e, "value"))
	iv, _ := base64.RawURLEncoding.DecodeString(str(e, "iv"))
	tag, _ := base64.RawURLEncoding.DecodeString(str(e, "tag"))
	block, _ := aes.NewCipher(aesKey)
	gcm, _ := cipher.NewGCM(block)
	if len(iv) != gcm.NonceSize() {
		t.Fatalf("iv %d bytes", len(iv))
	}
	if pt, err := gcm.Open(nil, iv, append(ct, tag...), aad); err != nil || !bytes.Equal(pt, msg) {
		t.Errorf("local decryption of kura's ciphertext: %v", err)
	}
	for _, c := range []struct{ name, body, msg string }{
		{"no key", `{"Hsm":true}`, "key: missing"},
		{"bad base64 in the key", `{"key":{"kty":"oct","k":"**"}}`, "key.k"},
		{"not a key", `{"key":{"kty":"oct"}}`, ""},
		{"bad release policy", `{"key":{"kty":"oct","k":"` + k + `"},"release_policy":{}}`, "release_policy.data is missing"},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantErr(t, r.do("PUT", "/keys/imp2"+av, r.admin, c.body), 400, "BadParameter", c.msg)
		})
	}
	wantErr(t, r.do("PUT", "/keys/bad_name"+av, r.admin, `{"key":{"kty":"oct","k":"`+k+`"}}`), 400, "BadParameter", `key name "bad_name" is invalid`)
}

// --- listings ---

func TestListPaging(t *testing.T) {
	r := newRig(t, 0)
	ctx := context.Background()
	var names []string
	for i := range keys.PageSize + 1 {
		n := fmt.Sprintf("k%02d", i)
		if _, err := r.keys.Create(ctx, n, keys.CreateParams{Kty: "EC"}); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	type page struct {
		Value []map[string]any `json:"value"`
		Next  *string          `json:"nextLink"`
	}
	get := func(target string) page {
		t.Helper()
		w := r.do("GET", target, r.admin, "")
		if w.Code != 200 {
			t.Fatalf("GET %s: %d %s", target, w.Code, w.Body)
		}
		var p page
		if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Value == nil {
			t.Fatalf("page %s: %v", w.Body, err)
		}
		if !strings.Contains(w.Body.String(), `"nextLink":`) {
			t.Errorf("no nextLink member: %s", w.Body)
		}
		return p
	}
	p1 := get("/keys?api-version=7.6")
	if len(p1.Value) != keys.PageSize || p1.Next == nil {
		t.Fatalf("first page: %d items, nextLink %v", len(p1.Value), p1.Next)
	}
	u, err := url.Parse(*p1.Next)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Scheme != "https" || u.Host != host || u.Path != "/keys" || q.Get("api-version") != "7.6" || q.Get("$skiptoken") == "" || q.Get("maxresults") != "25" {
		t.Errorf("nextLink %q", *p1.Next)
	}
	p2 := get(u.RequestURI())
	if len(p2.Value) != 1 || p2.Next != nil {
		t.Fatalf("second page: %d items, nextLink %v", len(p2.Value), p2.Next)
	}
	var got []string
	for _, it := range append(p1.Value, p2.Value...) {
		kid := str(it, "kid")
		n, ok := strings.CutPrefix(kid, vault+"/keys/")
		if !ok || strings.Contains(n, "/") {
			t.Errorf("list item kid %q is not unversioned", kid)
		}
		if it["key"] != nil || at(it, "attributes", "created") != unixOf(t0) || at(it, "attributes", "enabled") != true {
			t.Errorf("list item %v", it)
		}
		got = append(got, n)
	}
	if !slices.Equal(got, names) {
		t.Errorf("listed %v, want %v", got, names)
	}
	wantErr(t, r.do("GET", "/keys?api-version=7.4&$skiptoken=***", r.admin, ""), 400, "BadParameter", "$skiptoken is malformed")

	// Versions: versioned kids, in creation order.
	second, err := r.keys.Create(ctx, "k00", keys.CreateParams{Kty: "EC"})
	if err != nil {
		t.Fatal(err)
	}
	vs := get("/keys/k00/versions" + av)
	if len(vs.Value) != 2 || vs.Next != nil {
		t.Fatalf("versions: %v", vs.Value)
	}
	for _, it := range vs.Value {
		if v, ok := strings.CutPrefix(str(it, "kid"), vault+"/keys/k00/"); !ok || !versionRE.MatchString(v) {
			t.Errorf("version item kid %q", str(it, "kid"))
		}
	}
	if !slices.ContainsFunc(vs.Value, func(it map[string]any) bool { return str(it, "kid") == vault+"/keys/k00/"+second.Version }) {
		t.Errorf("versions %v lack %s", vs.Value, second.Version)
	}

	// Deleted keys: an empty listing is [] and null, then items.
	if d := get("/deletedkeys" + av); len(d.Value) != 0 || d.Next != nil {
		t.Errorf("no deleted keys: %v", d)
	}
	r.clk.add(time.Minute)
	for _, n := range []string{"k03", "k01"} {
		r.ok("DELETE", "/keys/"+n+av, "")
	}
	d := get("/deletedkeys" + av)
	if len(d.Value) != 2 || d.Next != nil {
		t.Fatalf("deleted: %v", d.Value)
	}
	for i, n := range []string{"k01", "k03"} {
		it := d.Value[i]
		if str(it, "kid") != vault+"/keys/"+n || str(it, "recoveryId") != vault+"/deletedkeys/"+n || it["key"] != nil ||
			at(it, "deletedDate") != unixOf(t0.Add(time.Minute)) || at(it, "scheduledPurgeDate") != unixOf(t0.Add(time.Minute).AddDate(0, 0, 90)) {
			t.Errorf("deleted item %d: %v", i, it)
		}
	}
	if l := get("/keys" + av); len(l.Value) != keys.PageSize-1 || l.Next != nil {
		t.Errorf("after deleting two of 26: %d items, nextLink %v", len(l.Value), l.Next)
	}
}

// --- errors ---

// TestFail: each domain error kind becomes Key Vault's status and code, and
// the causes of unavailability and bugs stay in the log.
func TestFail(t *testing.T) {
	const cause = "secret-cause-xyzzy"
	for _, c := range []struct {
		name   string
		err    error
		status int
		code   string
		msg    string
	}{
		{"bad input", fault.Bad("value", "too short"), 400, "BadParameter", "value: too short"},
		{"bad input naming itself", fault.Bad("count", "count must be positive"), 400, "BadParameter", "count must be positive"},
		{"not found", fault.Missing("key %q was not found", "k"), 404, "KeyNotFound", `key "k" was not found`},
		{"conflict", fault.Conflicting("key exists"), 409, "Conflict", "key exists"},
		{"denied", fault.Deny("operation sign is not allowed on a disabled key"), 403, "Forbidden", "disabled key"},
		{"refined code", &fault.Error{Kind: fault.Denied, Code: "KeyDisabled", Msg: "disabled"}, 403, "KeyDisabled", "disabled"},
		{"wrapped", fmt.Errorf("outer: %w", fault.Missing("gone")), 404, "KeyNotFound", "gone"},
		{"kind only", &fault.Error{Kind: fault.Conflict}, 409, "Conflict", "Conflict"},
		{"unavailable", fault.Down("key store unavailable", errors.New(cause)), 503, "ServiceUnavailable", "the key service is unavailable; retry later (request id " + reqID + ")"},
		{"unavailable with a code", &fault.Error{Kind: fault.Unavailable, Code: "Custom", Msg: "m", Err: errors.New(cause)}, 503, "ServiceUnavailable", reqID},
		{"internal", &fault.Error{Kind: fault.Internal, Msg: cause}, 500, "InternalError", "internal error (request id " + reqID + ")"},
		{"plain error", errors.New(cause), 500, "InternalError", "internal error (request id " + reqID + ")"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logs bytes.Buffer
			h := &Handler{Log: slog.New(slog.NewTextHandler(&logs, nil))}
			w := httptest.NewRecorder()
			w.Header().Set("x-ms-request-id", reqID)
			h.fail(w, httptest.NewRequest("GET", "/keys/k", nil), c.err)
			wantErr(t, w, c.status, c.code, c.msg)
			if strings.Contains(w.Body.String(), cause) {
				t.Errorf("the cause reached the client: %s", w.Body)
			}
			if c.status >= 500 && (!strings.Contains(logs.String(), cause) || !strings.Contains(logs.String(), reqID)) {
				t.Errorf("cause or request id not logged: %s", logs.String())
			}
			if c.status < 500 && logs.Len() != 0 {
				t.Errorf("a client error was logged: %s", logs.String())
			}
		})
	}
}

// TestStoreUnavailable: a key operation over a store that cannot answer is
// a 503 citing the request id, with the cause in the log only.
func TestStoreUnavailable(t *testing.T) {
	r := newRig(t, 0)
	r.st.Close()
	for _, c := range []struct{ method, target, body string }{
		{"GET", "/keys/k" + av, ""},
		{"GET", "/keys" + av, ""},
		{"POST", "/keys/k/create" + av, `{"kty":"EC"}`},
		{"DELETE", "/keys/k" + av, ""},
		{"GET", "/deletedkeys" + av, ""},
	} {
		w := r.do(c.method, c.target, r.admin, c.body)
		wantErr(t, w, http.StatusServiceUnavailable, "ServiceUnavailable", "retry later (request id "+reqID+")")
		if strings.Contains(w.Body.String(), "closed") || strings.Contains(w.Body.String(), "sql") {
			t.Errorf("%s %s: cause leaked: %s", c.method, c.target, w.Body)
		}
	}
	if !strings.Contains(r.logs.String(), "database is closed") {
		t.Errorf("cause not logged: %s", r.logs)
	}
}

// TestBadParameters: refusals of the surface and of the domain are 400
// BadParameter naming the member at fault.
func TestBadParameters(t *testing.T) {
	r := newRig(t, 0)
	r.create("ec")
	r.ok("POST", "/keys/aes/create"+av, `{"kty":"oct-HSM","key_size":256}`)
	b64 := func(n int) string { return base64.RawURLEncoding.EncodeToString(make([]byte, n)) }
	tags := map[string]string{}
	for i := range 16 {
		tags[fmt.Sprint("t", i)] = "v"
	}
	manyTags, _ := json.Marshal(map[string]any{"kty": "EC", "tags": tags})
	for _, c := range []struct {
		name, method, target, body, msg string
	}{
		{"create without kty", "POST", "/keys/n/create", `{"crv":"P-256"}`, "kty: missing"},
		{"unknown kty", "POST", "/keys/n/create", `{"kty":"DSA"}`, `kty "DSA" is not supported`},
		{"curve on an AES key", "POST", "/keys/n/create", `{"kty":"oct-HSM","crv":"P-256"}`, "crv"},
		{"bad AES size", "POST", "/keys/n/create", `{"kty":"oct-HSM","key_size":100}`, "key_size"},
		{"unknown operation", "POST", "/keys/n/create", `{"kty":"EC","key_ops":["fly"]}`, `key_ops: "fly" is not an operation`},
		{"too many tags", "POST", "/keys/n/create", string(manyTags), "tags: 16 tags, at most 15"},
		{"nbf out of range", "POST", "/keys/n/create", `{"kty":"EC","attributes":{"nbf":-5}}`, "attributes.nbf: -5 is outside"},
		{"tag value not UTF-8", "POST", "/keys/n/create", "{\"kty\":\"EC\",\"tags\":{\"env\":\"d\xffv\"}}", "tags.env: not valid UTF-8 (byte 28 of the body)"},
		{"import tag name not UTF-8", "PUT", "/keys/n", "{\"key\":{\"kty\":\"oct\",\"k\":\"" + b64(32) + "\"},\"tags\":{\"\xc3\":\"x\"}}", "not valid UTF-8"},
		{"release policy without data", "POST", "/keys/n/create", `{"kty":"EC","release_policy":{"immutable":true}}`, "release_policy.data is missing"},
		{"exportable without policy", "POST", "/keys/n/create", `{"kty":"EC","attributes":{"exportable":true}}`, "AKV.SKR.1004"},
		{"policy on a non-exportable key", "POST", "/keys/n/create", `{"kty":"EC","release_policy":{"data":"` + base64.RawURLEncoding.EncodeToString([]byte(`{"version":"1.0.0","anyOf":[]}`)) + `"}}`, "AKV.SKR.1005"},
		{"bad key name", "POST", "/keys/bad_name/create", `{"kty":"EC"}`, `key name "bad_name" is invalid`},
		{"rng without count", "POST", "/rng", `{}`, "count: missing"},
		{"rng count zero", "POST", "/rng", `{"count":0}`, "count must be between 1 and 128, got 0"},
		{"rng count too large", "POST", "/rng", `{"count":129}`, "got 129"},
		{"operation without alg", "POST", "/keys/aes/encrypt", `{"value":"` + b64(4) + `"}`, "alg: missing"},
		{"operation without value", "POST", "/keys/aes/encrypt", `{"alg":"A256GCM"}`, "value: missing"},
		{"verify without digest", "POST", "/keys/ec/verify", `{"alg":"ES256","value":"` + b64(64) + `"}`, "digest: missing"},
		{"bad base64 value", "POST", "/keys/aes/encrypt", `{"alg":"A256GCM","value":"*!*"}`, "value:"},
		{"bad base64 iv", "POST", "/keys/aes/decrypt", `{"alg":"A256GCM","value":"` + b64(4) + `","iv":"%%"}`, "iv:"},
		{"wrong algorithm for the key", "POST", "/keys/aes/encrypt", `{"alg":"RSA-OAEP","value":"` + b64(4) + `"}`, "RSA-OAEP"},
		{"restore without value", "POST", "/keys/restore", `{}`, "value: missing"},
		{"restore of an empty value", "POST", "/keys/restore", `{"value":""}`, "value: missing"},
		{"restore of a foreign blob", "POST", "/keys/restore", `{"value":"` + b64(24) + `"}`, "value: not a kura key backup"},
		{"rotation action", "PUT", "/keys/ec/rotationpolicy", `{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P30D"},"action":{"type":"Explode"}}]}`, `lifetimeActions[0].action.type: "Explode" is neither Rotate nor Notify`},
		{"rotation trigger", "PUT", "/keys/ec/rotationpolicy", `{"lifetimeActions":[{"trigger":{},"action":{"type":"Rotate"}}]}`, "lifetimeActions[0].trigger: set exactly one"},
		{"rotation expiry", "PUT", "/keys/ec/rotationpolicy", `{"lifetimeActions":[],"attributes":{"expiryTime":"P1D"}}`, "attributes.expiryTime P1D: must be at least 28 days"},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantErr(t, r.do(c.method, c.target+av, r.admin, c.body), 400, "BadParameter", c.msg)
		})
	}
	// Nothing was created by the refused requests.
	wantErr(t, r.do("GET", "/keys/n"+av, r.admin, ""), 404, "KeyNotFound")
	wantErr(t, r.do("POST", "/keys/aes/bogus"+av, r.admin, `{}`), 404, "NotFound", `no operation "bogus" on keys`)
	wantErr(t, r.do("POST", "/keys/aes/"+strings.Repeat("a", 32)+"/bogus"+av, r.admin, `{}`), 404, "NotFound", `no operation "bogus"`)
	wantErr(t, r.do("POST", "/keys/nokey/encrypt"+av, r.admin, `{"alg":"A256GCM","value":"AA"}`), 404, "KeyNotFound", `"nokey"`)
	wantErr(t, r.do("GET", "/keys/nokey/rotationpolicy"+av, r.admin, ""), 404, "KeyNotFound", `"nokey"`)
	wantErr(t, r.do("POST", "/keys/nokey/rotate"+av, r.admin, ""), 404, "KeyNotFound", `"nokey"`)
	wantErr(t, r.do("POST", "/keys/nokey/backup"+av, r.admin, ""), 404, "KeyNotFound", `"nokey"`)
}

// TestMalformedBodies: a body that is not a JSON object of the right types
// is a 400 that says what is wrong and where; unknown members are ignored.
func TestMalformedBodies(t *testing.T) {
	r := newRig(t, 0)
	for _, c := range []struct {
		name, body string
		parts      []string
	}{
		{"empty", "", []string{"the request body is empty"}},
		{"blank", " \n\t ", []string{"the request body is empty"}},
		{"array", `[{"kty":"EC"}]`, []string{"the request body must be a JSON object"}},
		{"string", `"EC"`, []string{"must be a JSON object"}},
		{"null", `null`, []string{"must be a JSON object"}},
		{"truncated", `{"kty":"EC"`, []string{"the request body is not valid JSON", "(at byte 11)"}},
		{"trailing comma", `{"kty":"EC",}`, []string{"not valid JSON", "(at byte 13)"}},
		{"leading space", `  {"kty" "EC"}`, []string{"not valid JSON", "(at byte 10)"}},
		{"trailing data", `{"kty":"EC"}x`, []string{"not valid JSON", "(at byte 13)"}},
		{"number for a string", `{"kty":5}`, []string{"kty: number is not a string"}},
		{"string for a number", `{"kty":"EC","key_size":"256"}`, []string{"key_size: string is not a int"}},
		{"nested wrong type", `{"kty":"EC","attributes":{"enabled":"yes"}}`, []string{"attributes.enabled: string is not a bool"}},
		{"array for a map", `{"kty":"EC","tags":["a"]}`, []string{"tags: array is not a map[string]string"}},
		{"bad base64 nested", `{"kty":"EC","release_policy":{"data":"**"}}`, []string{"release_policy.data"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantErr(t, r.do("POST", "/keys/k/create"+av, r.admin, c.body), 400, "BadParameter", c.parts...)
		})
	}
	wantErr(t, r.do("GET", "/keys/k"+av, r.admin, ""), 404, "KeyNotFound")
	if w := r.do("POST", "/keys/k/create"+av, r.admin, `{"kty":"EC","crv":"P-256","unknown":{"deep":[1,2]},"KTY":"EC"}`); w.Code != 200 {
		t.Errorf("unknown members: %d %s", w.Code, w.Body)
	}

	// A body over the server's limit, and a body that cannot be read.
	limited := http.MaxBytesHandler(r.srv, 64)
	req := httptest.NewRequest("POST", "/keys/big/create"+av, strings.NewReader(`{"kty":"EC","tags":{"a":"`+strings.Repeat("x", 100)+`"}}`))
	req.Header.Set("Authorization", "Bearer "+r.admin)
	req.Host = host
	w := httptest.NewRecorder()
	limited.ServeHTTP(w, req)
	wantErr(t, w, http.StatusRequestEntityTooLarge, "RequestTooLarge", "request body exceeds the limit of 64 bytes")
	req = httptest.NewRequest("POST", "/keys/big/create"+av, io.MultiReader(strings.NewReader(`{"kty":`), errReader{}))
	req.Header.Set("Authorization", "Bearer "+r.admin)
	wantErr(t, r.send(req), 400, "BadParameter", "reading the request body failed")
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

// --- operations ---

func TestOperations(t *testing.T) {
	r := newRig(t, 0)
	aes := r.ok("POST", "/keys/aes/create"+av, `{"kty":"oct-HSM","key_size":256}`)
	aesVersion := strings.TrimPrefix(str(aes, "key", "kid"), vault+"/keys/aes/")
	if aesVersion == "" || at(aes, "key", "k") != nil {
		t.Fatalf("AES key %v", aes["key"])
	}
	enc := base64.RawURLEncoding.EncodeToString
	msg := []byte("attack at dawn")
	// Encryption on the latest version names the version it used.
	e := r.ok("POST", "/keys/aes/encrypt"+av, `{"alg":"A256GCM","value":"`+enc(msg)+`","aad":"`+enc([]byte("hdr"))+`"}`)
	if str(e, "kid") != vault+"/keys/aes/"+aesVersion || str(e, "iv") == "" || str(e, "tag") == "" || str(e, "aad") != enc([]byte("hdr")) || str(e, "value") == enc(msg) {
		t.Fatalf("encrypt answer %v", e)
	}
	dec := func(path, iv, tag, aad string) *httptest.ResponseRecorder {
		return r.do("POST", path+av, r.admin, fmt.Sprintf(`{"alg":"A256GCM","value":%q,"iv":%q,"tag":%q,"aad":%q}`, str(e, "value"), iv, tag, aad))
	}
	for _, p := range []string{"/keys/aes/decrypt", "/keys/aes/" + aesVersion + "/decrypt"} {
		w := dec(p, str(e, "iv"), str(e, "tag"), enc([]byte("hdr")))
		if w.Code != 200 || str(object(t, w.Body.Bytes()), "value") != enc(msg) {
			t.Errorf("%s: %d %s", p, w.Code, w.Body)
		}
	}
	// A wrong AAD: one fixed message, no detail.
	w := dec("/keys/aes/decrypt", str(e, "iv"), str(e, "tag"), enc([]byte("other")))
	wantErr(t, w, 400, "BadParameter", "decryption failed")

	// Key wrap without IV or tag in the answer.
	cek := bytes.Repeat([]byte{9}, 32)
	wr := r.ok("POST", "/keys/aes/wrapkey"+av, `{"alg":"A256KW","value":"`+enc(cek)+`"}`)
	if b, _ := base64.RawURLEncoding.DecodeString(str(wr, "value")); len(b) != 40 || wr["iv"] != nil || wr["tag"] != nil || wr["aad"] != nil {
		t.Errorf("wrap answer %v", wr)
	}
	if u := r.ok("POST", "/keys/aes/unwrapkey"+av, `{"alg":"A256KW","value":"`+str(wr, "value")+`"}`); str(u, "value") != enc(cek) {
		t.Errorf("unwrap answer %v", u)
	}

	// Signatures verify locally and in kura.
	ec := r.create("ec")
	x, _ := base64.RawURLEncoding.DecodeString(str(ec, "key", "x"))
	y, _ := base64.RawURLEncoding.DecodeString(str(ec, "key", "y"))
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("document"))
	s := r.ok("POST", "/keys/ec/sign"+av, `{"alg":"ES256","value":"`+enc(digest[:])+`"}`)
	sig, _ := base64.RawURLEncoding.DecodeString(str(s, "value"))
	if len(sig) != 64 || str(s, "kid") != str(ec, "key", "kid") {
		t.Fatalf("sign answer %v", s)
	}
	rr := new(big.Int).SetBytes(sig[:32])
	ss := new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(pub, digest[:], rr, ss) {
		t.Errorf("kura's signature does not verify locally")
	}
	other := sha256.Sum256([]byte("other"))
	for _, c := range []struct {
		digest []byte
		want   bool
	}{{digest[:], true}, {other[:], false}} {
		v := r.ok("POST", "/keys/ec/verify"+av, `{"alg":"ES256","digest":"`+enc(c.digest)+`","value":"`+enc(sig)+`"}`)
		if v["value"] != c.want {
			t.Errorf("verify %v: %v", c.want, v)
		}
	}
	// An operation the key's key_ops do not allow.
	wantErr(t, r.do("POST", "/keys/ec/encrypt"+av, r.admin, `{"alg":"ES256","value":"AA"}`), 403, "Forbidden", "operation encrypt is not permitted by the key's key_ops")

	// Random bytes.
	rnd := r.ok("POST", "/rng"+av, `{"count":16}`)
	if b, err := base64.RawURLEncoding.DecodeString(str(rnd, "value")); err != nil || len(b) != 16 {
		t.Errorf("rng %v", rnd)
	}
}

// --- backup, restore, rotation ---

func TestBackupRestore(t *testing.T) {
	r := newRig(t, 0)
	created := r.create("k")
	bk := r.ok("POST", "/keys/k/backup"+av, "")
	blob, err := base64.RawURLEncoding.DecodeString(str(bk, "value"))
	if err != nil || len(blob) < 32 {
		t.Fatalf("backup %v", bk)
	}
	// Restoring over a live key is refused.
	if w := r.do("POST", "/keys/restore"+av, r.admin, `{"value":"`+str(bk, "value")+`"}`); w.Code < 400 || w.Code >= 500 {
		t.Errorf("restore over a live key: %d %s", w.Code, w.Body)
	}
	r.ok("DELETE", "/keys/k"+av, "")
	if w := r.do("DELETE", "/deletedkeys/k"+av, r.admin, ""); w.Code != 204 {
		t.Fatalf("purge %d", w.Code)
	}
	back := r.ok("POST", "/keys/restore"+av, `{"value":"`+str(bk, "value")+`"}`)
	if str(back, "key", "kid") != str(created, "key", "kid") || str(back, "key", "x") != str(created, "key", "x") {
		t.Errorf("restored %v, created %v", back["key"], created["key"])
	}
	r.ok("GET", "/keys/k"+av, "")
	// A backup altered in one byte does not authenticate.
	blob[len(blob)-1] ^= 1
	wantErr(t, r.do("POST", "/keys/restore"+av, r.admin, `{"value":"`+base64.RawURLEncoding.EncodeToString(blob)+`"}`), 400, "BadParameter", "value:")
}

func TestRotation(t *testing.T) {
	r := newRig(t, 0)
	first := r.create("k")
	p := r.ok("GET", "/keys/k/rotationpolicy"+av, "")
	if str(p, "id") != vault+"/keys/k/rotationpolicy" || fmt.Sprint(p["lifetimeActions"]) != "[map[action:map[type:Notify] trigger:map[timeBeforeExpiry:P30D]]]" {
		t.Errorf("default policy %v", p)
	}
	if at(p, "attributes", "created") != nil {
		t.Errorf("the default policy has a creation time: %v", p["attributes"])
	}
	r.clk.add(time.Minute)
	set := r.ok("PUT", "/keys/k/rotationpolicy"+av, `{"id":"ignored","lifetimeActions":[{"trigger":{"timeAfterCreate":"P30D"},"action":{"type":"rotate"}}],"attributes":{"expiryTime":"P90D"}}`)
	if str(set, "id") != vault+"/keys/k/rotationpolicy" || at(set, "attributes", "expiryTime") != "P90D" || at(set, "attributes", "created") != unixOf(t0.Add(time.Minute)) {
		t.Errorf("set policy %v", set)
	}
	acts, _ := set["lifetimeActions"].([]any)
	if len(acts) != 1 || at(acts[0].(map[string]any), "action", "type") != "Rotate" || at(acts[0].(map[string]any), "trigger", "timeAfterCreate") != "P30D" {
		t.Errorf("lifetimeActions %v", set["lifetimeActions"])
	}
	if got := r.ok("GET", "/keys/k/rotationpolicy"+av, ""); fmt.Sprint(got) != fmt.Sprint(set) {
		t.Errorf("read back %v, set %v", got, set)
	}
	rot := r.ok("POST", "/keys/k/rotate"+av, "")
	if str(rot, "key", "kid") == str(first, "key", "kid") || !strings.HasPrefix(str(rot, "key", "kid"), vault+"/keys/k/") || str(rot, "key", "crv") != "P-256" {
		t.Errorf("rotated %v", rot["key"])
	}
	// The policy's expiryTime applies to the new version.
	if at(rot, "attributes", "exp") != unixOf(t0.Add(time.Minute).AddDate(0, 0, 90)) {
		t.Errorf("rotated version exp %v", at(rot, "attributes", "exp"))
	}
}

// --- secure key release ---

// TestReleaseRoute: without Handler.Release the route answers 404 (after
// authentication and the release permission); with it, the function gets
// the authenticated principal.
func TestReleaseRoute(t *testing.T) {
	r := newRig(t, 0)
	r.create("k")
	rel := r.principal("rel", auth.ReleaseUser, "/keys/k")
	for _, p := range []string{"/keys/k/release", "/keys/k/" + strings.Repeat("a", 32) + "/release"} {
		wantErr(t, r.do("POST", p+av, rel, `{"target":"x"}`), 404, "NotFound", "secure key release is not enabled on this instance")
	}
	var got *auth.Principal
	var gotVersion string
	r.h.Release = func(w http.ResponseWriter, req *http.Request, p *auth.Principal) {
		got, gotVersion = p, req.PathValue("version")
		w.WriteHeader(http.StatusTeapot)
	}
	if w := r.do("POST", "/keys/k/"+strings.Repeat("b", 32)+"/release"+av, rel, `{}`); w.Code != http.StatusTeapot || got == nil || got.Name != "rel" || gotVersion != strings.Repeat("b", 32) {
		t.Errorf("release route: %d, principal %v, version %q", w.Code, got, gotVersion)
	}
	got = nil
	wantErr(t, r.do("POST", "/keys/other/release"+av, rel, `{}`), 403, "Forbidden", `principal "rel" has no role that allows release on /keys/other`)
	if got != nil {
		t.Errorf("release called for a principal without the permission")
	}
}

type downSource struct{}

func (downSource) Keys(context.Context, string, bool) (*jose.JSONWebKeySet, error) {
	return nil, errors.New("dial tcp 10.0.0.1:443: secret-upstream-detail")
}

// TestReleaseRefusals drives ReleaseHandler's refusals; granting a release
// needs an attestation token and is covered by the server's tests.
func TestReleaseRefusals(t *testing.T) {
	r := newRig(t, 0)
	r.create("k")
	signer, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwks := &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &signer.PublicKey, Algorithm: "ES256", Use: "sig"}}}
	verifier := &oidc.Verifier{Now: r.clk.now, Sources: map[string]oidc.KeySource{
		"https://maa.example":  oidc.Static(func() *jose.JSONWebKeySet { return jwks }),
		"https://down.example": downSource{},
	}}
	r.h.Release = r.h.ReleaseHandler(&Releaser{Service: &keyrelease.Service{Keys: r.keys, Verifier: verifier, Now: r.clk.now}})
	token := func(iss string) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: signer}, nil)
		if err != nil {
			t.Fatal(err)
		}
		payload, _ := json.Marshal(map[string]any{"iss": iss, "exp": r.clk.now().Add(time.Hour).Unix(), "iat": r.clk.now().Unix()})
		obj, err := s.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := obj.CompactSerialize()
		return c
	}
	for _, c := range []struct {
		name, path, body string
		status           int
		code             string
		msg              string
	}{
		{"malformed body", "/keys/k/release", `{"target":`, 400, "BadParameter", "not valid JSON"},
		{"wrong type", "/keys/k/release", `{"target":7}`, 400, "BadParameter", "target: number is not a string"},
		{"no target", "/keys/k/release", `{}`, 400, "BadParameter", "target: missing (the attestation token)"},
		{"unsupported enc", "/keys/k/release", `{"target":"x","enc":"A128KW"}`, 400, "BadParameter", `enc "A128KW" is not supported`},
		{"not a token", "/keys/k/release", `{"target":"not-a-jws"}`, 403, "Forbidden", "release denied: the attestation token is not acceptable"},
		{"untrusted issuer", "/keys/k/release", `{"target":"` + token("https://evil.example") + `"}`, 403, "Forbidden", `issuer "https://evil.example" is not trusted`},
		{"issuer keys unavailable", "/keys/k/release", `{"target":"` + token("https://down.example") + `"}`, 503, "ServiceUnavailable", "AKV.SKR.1012: the attestation authority's keys cannot be fetched; retry later"},
		{"no such key", "/keys/nokey/release", `{"target":"` + token("https://maa.example") + `"}`, 404, "KeyNotFound", `a key with name "nokey" was not found`},
		{"no such version", "/keys/k/" + strings.Repeat("c", 32) + "/release", `{"target":"` + token("https://maa.example") + `"}`, 404, "KeyNotFound", "was not found"},
		{"not exportable", "/keys/k/release", `{"target":"` + token("https://maa.example") + `"}`, 403, "Forbidden", "release denied: key k/"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r.logs.Reset()
			w := r.do("POST", c.path+av, r.admin, c.body)
			wantErr(t, w, c.status, c.code, c.msg)
			if strings.Contains(w.Body.String(), "secret-upstream-detail") {
				t.Errorf("cause leaked: %s", w.Body)
			}
			if c.status == 403 {
				if _, ok := object(t, w.Body.Bytes())["error"].(map[string]any)["x-kura-explanation"]; !ok {
					t.Errorf("denial without x-kura-explanation: %s", w.Body)
				}
				if !strings.Contains(r.logs.String(), "key release denied") {
					t.Errorf("denial not logged: %s", r.logs)
				}
			}
			if c.status == 503 && !strings.Contains(r.logs.String(), "secret-upstream-detail") {
				t.Errorf("cause not logged: %s", r.logs)
			}
		})
	}
}

// --- routing helpers ---

func TestIsPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/keys": true, "/keys/": true, "/keys/k": true, "/keys/k/v/encrypt": true,
		"/deletedkeys": true, "/deletedkeys/k/recover": true, "/rng": true, "/rng/": true,
		"/": false, "": false, "/key": false, "/keysx": false, "/keys-old": false, "/deletedkeysx/k": false, "/rngs": false,
		"/attest/SevSnpVm": false, "/kura/v1/principals": false, "/oauth2/token": false, "/KEYS": false, "/x/keys": false,
	} {
		if got := IsPath(p); got != want {
			t.Errorf("IsPath(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestError(t *testing.T) {
	w := httptest.NewRecorder()
	Error(w, http.StatusServiceUnavailable, "ServiceUnavailable", "kura is sealed")
	wantErr(t, w, 503, "ServiceUnavailable", "kura is sealed")
	if ct := w.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
}

// TestEveryBodyIsChecked: every route that reads a body refuses one that
// is not a JSON object, before doing anything.
func TestEveryBodyIsChecked(t *testing.T) {
	r := newRig(t, 0)
	r.create("k")
	r.h.Release = r.h.ReleaseHandler(&Releaser{Service: &keyrelease.Service{}})
	for _, c := range []struct{ method, path string }{
		{"POST", "/keys/k/create"}, {"PUT", "/keys/k"}, {"PATCH", "/keys/k"}, {"PATCH", "/keys/k/"}, {"POST", "/keys/restore"},
		{"PUT", "/keys/k/rotationpolicy"}, {"POST", "/rng"}, {"POST", "/keys/k/encrypt"}, {"POST", "/keys/k/decrypt"},
		{"POST", "/keys/k/sign"}, {"POST", "/keys/k/verify"}, {"POST", "/keys/k/wrapkey"}, {"POST", "/keys/k/unwrapkey"},
		{"POST", "/keys/k/" + strings.Repeat("d", 32) + "/sign"}, {"POST", "/keys/k/release"},
	} {
		for _, body := range []string{"", "[]", "{"} {
			w := r.do(c.method, c.path+av, r.admin, body)
			if w.Code != 400 {
				t.Errorf("%s %s %q: %d %s", c.method, c.path, body, w.Code, w.Body)
				continue
			}
			if code, _ := errOf(t, w); code != "BadParameter" {
				t.Errorf("%s %s %q: code %s", c.method, c.path, body, code)
			}
		}
	}
	// A verification the key cannot do is refused, not answered false.
	d := base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	wantErr(t, r.do("POST", "/keys/k/verify"+av, r.admin, `{"alg":"RS256","digest":"`+d+`","value":"`+d+`"}`), 400, "BadParameter", "RS256")
}

const maaPolicy = `{"version":"1.0.0","anyOf":[{"authority":"https://maa.example","allOf":[{"claim":"x-ms-attestation-type","equals":"sevsnpvm"}]}]}`

// TestExportableKey: an exportable key carries its release policy on the
// wire, and a token that does not meet the policy is denied with the
// explanation.
func TestExportableKey(t *testing.T) {
	r := newRig(t, 0)
	data := base64.RawURLEncoding.EncodeToString([]byte(maaPolicy))
	b := r.ok("POST", "/keys/exp/create"+av, `{"kty":"oct-HSM","key_size":256,"attributes":{"exportable":true},"release_policy":{"data":"`+data+`","immutable":true}}`)
	if at(b, "attributes", "exportable") != true {
		t.Errorf("attributes %v", b["attributes"])
	}
	rp, _ := b["release_policy"].(map[string]any)
	if rp["data"] != data || rp["contentType"] != "application/json; charset=utf-8" || rp["immutable"] != true {
		t.Errorf("release_policy %v", rp)
	}
	// A mutable policy says nothing about immutability.
	m := r.ok("POST", "/keys/mut/create"+av, `{"kty":"oct-HSM","attributes":{"exportable":true},"release_policy":{"contentType":"application/json","data":"`+data+`"}}`)
	if rp, _ := m["release_policy"].(map[string]any); rp["contentType"] != "application/json" || rp["immutable"] != nil {
		t.Errorf("mutable release_policy %v", rp)
	}
	wantErr(t, r.do("PATCH", "/keys/exp"+av, r.admin, `{"release_policy":{"data":"`+base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(maaPolicy, "sevsnpvm", "tdxvm", 1)))+`","immutable":true}}`),
		400, "BadParameter", "AKV.SKR.1020")

	signer, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwks := &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &signer.PublicKey, Algorithm: "ES256", Use: "sig"}}}
	verifier := &oidc.Verifier{Now: r.clk.now, Sources: map[string]oidc.KeySource{"https://maa.example": oidc.Static(func() *jose.JSONWebKeySet { return jwks })}}
	r.h.Release = r.h.ReleaseHandler(&Releaser{Service: &keyrelease.Service{Keys: r.keys, Verifier: verifier, Now: r.clk.now}})
	s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: signer}, nil)
	payload, _ := json.Marshal(map[string]any{"iss": "https://maa.example", "exp": r.clk.now().Add(time.Hour).Unix(), "x-ms-attestation-type": "tdxvm"})
	obj, _ := s.Sign(payload)
	tok, _ := obj.CompactSerialize()
	w := r.do("POST", "/keys/exp/release"+av, r.admin, `{"target":"`+tok+`"}`)
	wantErr(t, w, 403, "Forbidden", "release denied: the release policy is not met")
	if object(t, w.Body.Bytes())["error"].(map[string]any)["x-kura-explanation"] == nil {
		t.Errorf("no explanation: %s", w.Body)
	}
}

// TestEmptyKeyOpsShown: a key created with "key_ops": [] permits nothing,
// and its bundle says so with "key_ops": [] rather than leaving the member
// out (which clients read as "no restriction").
func TestEmptyKeyOpsShown(t *testing.T) {
	r := newRig(t, 90)
	b := r.ok("POST", "/keys/none/create"+av, `{"kty":"EC","crv":"P-256","key_ops":[]}`)
	key, _ := b["key"].(map[string]any)
	ops, present := key["key_ops"]
	if list, ok := ops.([]any); !present || !ok || len(list) != 0 {
		t.Fatalf(`key_ops = %v (present %v), want []`, ops, present)
	}
	if w := r.do("POST", "/keys/none/sign"+av, r.admin, `{"alg":"ES256","value":"47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"}`); w.Code != http.StatusForbidden {
		t.Errorf("sign with key_ops []: %d %s", w.Code, w.Body)
	}
	b = r.ok("GET", "/keys/none"+av, "")
	if key, _ := b["key"].(map[string]any); key["key_ops"] == nil {
		t.Errorf("get: key_ops missing: %v", key)
	}
}

// TestStrictInputs: key_ops listed twice and exp before nbf, which Key
// Vault is not documented to refuse, are accepted by default and refused,
// naming the member, with keyvault_strict_inputs.
func TestStrictInputs(t *testing.T) {
	dup := `{"kty":"EC","key_ops":["sign","verify","sign"]}`
	window := `{"kty":"EC","attributes":{"nbf":1800000000,"exp":1700000000}}`
	lax := newRig(t, 0)
	lax.ok("POST", "/keys/dup/create"+av, dup)
	lax.ok("POST", "/keys/window/create"+av, window)

	r := newRigStrict(t, 0, true)
	for _, c := range []struct{ name, method, target, body, msg string }{
		{"duplicate key_ops", "POST", "/keys/n/create", dup, `is listed twice`},
		{"exp before nbf", "POST", "/keys/n/create", window, "attributes.exp: 1700000000 is before attributes.nbf 1800000000"},
	} {
		w := r.do(c.method, c.target+av, r.admin, c.body)
		if w.Code != 400 || !strings.Contains(w.Body.String(), c.msg) || !strings.Contains(w.Body.String(), "BadParameter") {
			t.Errorf("%s: %d %s", c.name, w.Code, w.Body)
		}
	}
	kid := r.ok("POST", "/keys/window/create"+av, `{"kty":"EC","attributes":{"nbf":1800000000}}`)["key"].(map[string]any)["kid"].(string)
	version := kid[strings.LastIndex(kid, "/")+1:]
	if w := r.do("PATCH", "/keys/window/"+version+av, r.admin, `{"attributes":{"exp":1700000000}}`); w.Code != 400 || !strings.Contains(w.Body.String(), "attributes.exp") {
		t.Errorf("exp before the existing nbf: %d %s", w.Code, w.Body)
	}
	if w := r.do("PATCH", "/keys/window/"+version+av, r.admin, `{"tags":{"a":"b"}}`); w.Code != 200 {
		t.Errorf("an update that leaves the window alone: %d %s", w.Code, w.Body)
	}
	if w := r.do("GET", "/keys/n"+av, r.admin, ""); w.Code != 404 {
		t.Errorf("a refused create made the key: %d", w.Code)
	}
}
