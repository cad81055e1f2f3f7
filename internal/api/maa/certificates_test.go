package maa

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/api/wire"
	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/attest/appraisal"
	"github.com/kura-project/kura/internal/audit"
	"github.com/kura-project/kura/internal/certtest"
	"github.com/kura-project/kura/internal/seal"
	"github.com/kura-project/kura/internal/store"
	"github.com/kura-project/kura/internal/store/open"
	"github.com/kura-project/kura/internal/token"
)

const (
	fakeType  = "FakeTee"
	permitAll = "version=1.0; authorizationrules { => permit(); }; issuancerules { };"
	adminTok  = "the-administrator"
	policyV2  = "version=1.0; authorizationrules { => permit(); }; issuancerules { => issue(type=\"two\", value=true); };"
)

// signer is a policy management key and its self-signed certificate.
type signer struct {
	key  crypto.Signer
	cert *x509.Certificate
	alg  string
}

func newSigner(t *testing.T, name string) signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signer{k, certtest.SelfSigned(t, k, name), "ES256"}
}

func (s signer) sign(t *testing.T, payload []byte) string {
	t.Helper()
	return certtest.CompactX5C(t, s.alg, s.key, s.cert, payload)
}

func (s signer) policy(t *testing.T, text string) string {
	p, _ := json.Marshal(map[string]string{"AttestationPolicy": base64.RawURLEncoding.EncodeToString([]byte(text))})
	return s.sign(t, p)
}

// change is a certificates:add/remove JWS about cert, signed by s.
func (s signer) change(t *testing.T, cert *x509.Certificate) string {
	body, _ := json.Marshal(map[string]any{"policyCertificate": map[string]any{"kty": "EC", "x5c": []string{base64.StdEncoding.EncodeToString(cert.Raw)}}})
	return s.sign(t, body)
}

// instance is an MAA handler over a real SQLite store and sealer.
type instance struct {
	t     *testing.T
	dir   string
	st    store.Store
	mux   *http.ServeMux
	audit *switchableRecorder
	ps    *PolicyStore
}

// switchableRecorder records in the store's audit log, or fails as an
// audit log that cannot be written.
type switchableRecorder struct {
	rec  audit.Recorder
	down bool
}

func (s *switchableRecorder) Record(ctx context.Context, e audit.Event, change func(tx store.Store) error) (audit.Receipt, error) {
	if s.down {
		return audit.Receipt{}, &audit.Error{Err: errors.New("audit log unavailable")}
	}
	return s.rec.Record(ctx, e, change)
}

// newInstance opens dir (a new one when empty) with initial as the
// configured policy_signers.
func newInstance(t *testing.T, dir string, initial ...*x509.Certificate) *instance {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	st, err := open.Open("sqlite:" + filepath.Join(dir, "kura.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	root, err := seal.OpenSoftwareRoot(filepath.Join(dir, "root.sealed"), bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	sealer := seal.New(root)
	kr, err := token.Open(context.Background(), token.Config{Issuer: "https://kura.test", Alg: token.ES256, Now: time.Now}, st, sealer)
	if err != nil {
		t.Fatal(err)
	}
	rec := &switchableRecorder{rec: audit.Store{St: st, Now: time.Now}}
	ps := appraisal.NewPolicyStore(st, sealer, time.Now, map[string]string{fakeType: permitAll}).WithAudit(rec)
	svc := appraisal.NewService(map[string]attest.Built{fakeType: {Module: attest.Module{Type: fakeType, Member: "report"}}}, ps, kr, time.Now)
	h := &Handler{
		Service: svc, Keys: kr, Log: slog.New(slog.DiscardHandler),
		Policies: &PolicyStore{PolicyStore: ps, Signers: initial},
		Authorize: func(r *http.Request) (string, error) {
			if tok, ok := wire.Bearer(r); ok && tok == adminTok {
				return "admin", nil
			}
			return "", errors.New("not the administrator")
		},
	}
	mux := http.NewServeMux()
	h.Register(mux)
	return &instance{t: t, dir: dir, st: st, mux: mux, audit: rec, ps: h.Policies}
}

func (in *instance) do(method, path, body string) (int, []byte) {
	in.t.Helper()
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	req := httptest.NewRequest(method, path+sep+"api-version=2020-10-01", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminTok)
	w := httptest.NewRecorder()
	in.mux.ServeHTTP(w, req)
	return w.Code, w.Body.Bytes()
}

// claims returns the body of the answer's token (its signature is the
// keyring's, tested elsewhere).
func claims(t *testing.T, resp []byte) map[string]any {
	t.Helper()
	var out struct{ Token string }
	if err := json.Unmarshal(resp, &out); err != nil || out.Token == "" {
		t.Fatalf("answer %s has no token", resp)
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(out.Token, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func errMsg(t *testing.T, resp []byte) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(resp, &e); err != nil || e.Error.Message == "" {
		t.Fatalf("answer %s is not an MAA error", resp)
	}
	return e.Error.Code + ": " + e.Error.Message
}

// list returns the SHA-1 thumbprints of GET /certificates.
func (in *instance) list() []string {
	in.t.Helper()
	code, resp := in.do("GET", "/certificates", "")
	if code != 200 {
		in.t.Fatalf("GET /certificates: %d %s", code, resp)
	}
	set := claims(in.t, resp)["x-ms-policy-certificates"].(map[string]any)["keys"].([]any)
	out := []string{}
	for _, k := range set {
		jwk := k.(map[string]any)
		der, _ := base64.StdEncoding.DecodeString(jwk["x5c"].([]any)[0].(string))
		sum := sha1.Sum(der)
		if jwk["kid"] != strings.ToUpper(hex.EncodeToString(sum[:])) || jwk["kty"] == nil || jwk["alg"] == nil {
			in.t.Errorf("JWK %v: kid is not the thumbprint of x5c[0], or kty/alg missing", jwk)
		}
		out = append(out, jwk["kid"].(string))
	}
	return out
}

func tp(c *x509.Certificate) string { return appraisal.Thumbprint(c) }

func jsonString(s string) string { b, _ := json.Marshal(s); return string(b) }

func same(a []string, b ...string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

// TestDefaultMode: without policy_signers the administrator uploads
// unsigned policies and policies signed by any key; there are no policy
// management certificates and the set cannot be changed.
func TestDefaultMode(t *testing.T) {
	in := newInstance(t, "")
	anyone := newSigner(t, "anyone")
	path := "/policies/" + fakeType
	if code, resp := in.do("PUT", path, unsignedJWS(policyV2)); code != 200 {
		t.Fatalf("unsigned upload: %d %s", code, resp)
	}
	jws := anyone.policy(t, permitAll)
	code, resp := in.do("PUT", path, jws)
	if code != 200 {
		t.Fatalf("signed upload by an unconfigured key: %d %s", code, resp)
	}
	c := claims(t, resp)
	signerJWK, _ := c["x-ms-policy-signer"].(map[string]any)
	if signerJWK == nil || signerJWK["x5c"].([]any)[0] != base64.StdEncoding.EncodeToString(anyone.cert.Raw) {
		t.Errorf("x-ms-policy-signer %v does not name the signer", c["x-ms-policy-signer"])
	}
	// GET policy reports the signer of the stored policy.
	if code, resp := in.do("GET", path, ""); code != 200 || claims(t, resp)["x-ms-policy-signer"] == nil {
		t.Errorf("get: %d %s", code, resp)
	}
	// A P-384 key signing as @azure/attestation does (SHA-256, labelled
	// ES256, 96-byte r||s) and as RFC 7518 says (ES384).
	k384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	c384 := certtest.SelfSigned(t, k384, "p384")
	for _, alg := range []string{"ES256", "ES384"} {
		if code, resp := in.do("PUT", path, signer{k384, c384, alg}.policy(t, permitAll)); code != 200 {
			t.Errorf("P-384 signer, %s: %d %s", alg, code, resp)
		}
	}
	// A signature that does not verify with x5c[0] is refused, in any mode.
	other := newSigner(t, "other")
	forged := signer{other.key, anyone.cert, "ES256"}.policy(t, policyV2)
	if code, resp := in.do("PUT", path, forged); code != 400 || !strings.Contains(errMsg(t, resp), "does not verify") {
		t.Errorf("forged signature: %d %s", code, resp)
	}
	// Resets: unsigned, signed, and an empty body.
	for _, body := range []string{unsignedJWS(""), anyone.sign(t, nil), ""} {
		if code, resp := in.do("POST", path+":reset", body); code != 200 || claims(t, resp)["x-ms-policy-result"] != "Removed" {
			t.Errorf("reset %q: %d %s", body, code, resp)
		}
	}

	if got := in.list(); len(got) != 0 {
		t.Errorf("default mode lists certificates %v", got)
	}
	for _, op := range []string{":add", ":remove"} {
		code, resp := in.do("POST", "/certificates"+op, jsonString(anyone.change(t, other.cert)))
		if code != 409 || !strings.Contains(errMsg(t, resp), "not in isolated mode") {
			t.Errorf("%s in default mode: %d %s", op, code, resp)
		}
	}
	if got := in.list(); len(got) != 0 {
		t.Errorf("after refused changes the set is %v", got)
	}
}

// TestIsolatedMode: with policy_signers, uploads must be signed by a
// current policy management certificate; the set is listed, grown and
// shrunk by requests signed by a member, never emptied, and every refusal
// leaves it as it was.
func TestIsolatedMode(t *testing.T) {
	first, second, stranger := newSigner(t, "first"), newSigner(t, "second"), newSigner(t, "stranger")
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaSigner := signer{rk, certtest.SelfSigned(t, rk, "rsa"), "RS256"}
	in := newInstance(t, "", first.cert)
	path := "/policies/" + fakeType

	if got := in.list(); !same(got, tp(first.cert)) {
		t.Fatalf("initial set %v, want the configured certificate", got)
	}
	// Uploads.
	for _, c := range []struct {
		name string
		jws  string
		want int
		msg  string
	}{
		{"unsigned", unsignedJWS(policyV2), 400, "isolated mode"},
		{"signed by a stranger", stranger.policy(t, policyV2), 400, "not a policy management certificate"},
		{"signed by the second, not yet a member", second.policy(t, policyV2), 400, "not a policy management certificate"},
		{"signed by the configured certificate", first.policy(t, policyV2), 200, ""},
	} {
		code, resp := in.do("PUT", path, c.jws)
		if code != c.want || (c.msg != "" && !strings.Contains(errMsg(t, resp), c.msg)) {
			t.Errorf("%s: %d %s, want %d %q", c.name, code, resp, c.want, c.msg)
		}
	}
	if code, resp := in.do("POST", path+":reset", ""); code != 400 || !strings.Contains(errMsg(t, resp), "isolated mode") {
		t.Errorf("unsigned empty reset: %d %s", code, resp)
	}
	if code, resp := in.do("POST", path+":reset", unsignedJWS("")); code != 400 {
		t.Errorf("unsigned reset: %d %s", code, resp)
	}

	// Refused changes, none of which changes the set.
	change := first.change(t, second.cert)
	for _, c := range []struct {
		name, op, body string
		want           int
		msg            string
	}{
		{"signed by a stranger", ":add", jsonString(stranger.change(t, second.cert)), 400, "not a policy management certificate"},
		{"unsigned", ":add", jsonString(base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + strings.Split(change, ".")[1] + "."), 400, "unsigned"},
		{"forged signature", ":add", jsonString(signer{stranger.key, first.cert, "ES256"}.change(t, second.cert)), 400, "does not verify"},
		{"not JSON", ":add", change, 400, "JSON string"},
		{"wrong member", ":add", `{"policyCertificateToRemove":` + jsonString(change) + `}`, 400, "unknown member"},
		{"no x5c in the JWK", ":add", jsonString(first.sign(t, []byte(`{"policyCertificate":{"kty":"EC"}}`))), 400, "no x5c"},
		{"unknown body member", ":add", jsonString(first.sign(t, []byte(`{"policyCertificate":{"kty":"EC","x5c":["`+base64.StdEncoding.EncodeToString(second.cert.Raw)+`"]},"extra":1}`))), 400, "unknown member"},
		{"expired request", ":add", jsonString(first.sign(t, []byte(`{"exp":1000,"policyCertificate":{"kty":"EC","x5c":["`+base64.StdEncoding.EncodeToString(second.cert.Raw)+`"]}}`))), 400, "expired"},
		{"not a certificate", ":add", jsonString(first.sign(t, []byte(`{"policyCertificate":{"kty":"EC","x5c":["AAAA"]}}`))), 400, "not a certificate"},
		{"the last certificate", ":remove", jsonString(first.change(t, first.cert)), 409, "last policy management certificate"},
	} {
		code, resp := in.do("POST", "/certificates"+c.op, c.body)
		if code != c.want || !strings.Contains(errMsg(t, resp), c.msg) {
			t.Errorf("%s: %d %s, want %d %q", c.name, code, resp, c.want, c.msg)
		}
		if got := in.list(); !same(got, tp(first.cert)) {
			t.Fatalf("%s changed the set to %v", c.name, got)
		}
	}

	// Add the second (the 2020-10-01 body: a JSON string), then an RSA
	// one signed by the second (the 2025-06-01 body: an object).
	code, resp := in.do("POST", "/certificates:add", jsonString(change))
	if code != 200 {
		t.Fatalf("add: %d %s", code, resp)
	}
	if c := claims(t, resp); c["x-ms-policycertificates-result"] != "IsPresent" || c["x-ms-certificate-thumbprint"] != tp(second.cert) {
		t.Errorf("add result %v", c)
	}
	code, resp = in.do("POST", "/certificates:add", `{"policyCertificateToAdd":`+jsonString(second.change(t, rsaSigner.cert))+`}`)
	if code != 200 {
		t.Fatalf("add by the new member: %d %s", code, resp)
	}
	if got := in.list(); !same(got, tp(first.cert), tp(second.cert), tp(rsaSigner.cert)) {
		t.Fatalf("set %v after two additions", got)
	}
	// Adding a member again changes nothing and answers IsPresent.
	if code, resp := in.do("POST", "/certificates:add", jsonString(change)); code != 200 || claims(t, resp)["x-ms-policycertificates-result"] != "IsPresent" {
		t.Errorf("repeated add: %d %s", code, resp)
	}
	// The new members sign policies (RS256 too).
	if code, resp := in.do("PUT", path, rsaSigner.policy(t, permitAll)); code != 200 {
		t.Errorf("upload signed by an added RSA member: %d %s", code, resp)
	}
	if code, resp := in.do("POST", path+":reset", second.sign(t, nil)); code != 200 {
		t.Errorf("reset signed by an added member: %d %s", code, resp)
	}

	// Remove the configured one, signed by itself; it no longer signs.
	code, resp = in.do("POST", "/certificates:remove", `{"policyCertificateToRemove":`+jsonString(first.change(t, first.cert))+`}`)
	if code != 200 || claims(t, resp)["x-ms-policycertificates-result"] != "IsAbsent" {
		t.Fatalf("remove: %d %s", code, resp)
	}
	if got := in.list(); !same(got, tp(second.cert), tp(rsaSigner.cert)) {
		t.Fatalf("set %v after the removal", got)
	}
	if code, resp := in.do("PUT", path, first.policy(t, policyV2)); code != 400 {
		t.Errorf("upload by a removed certificate: %d %s", code, resp)
	}
	if code, resp := in.do("POST", "/certificates:add", jsonString(first.change(t, first.cert))); code != 400 {
		t.Errorf("a removed certificate re-adding itself: %d %s", code, resp)
	}
	// Removing an absent certificate changes nothing and answers IsAbsent.
	if code, resp := in.do("POST", "/certificates:remove", jsonString(second.change(t, stranger.cert))); code != 200 || claims(t, resp)["x-ms-policycertificates-result"] != "IsAbsent" {
		t.Errorf("remove of an absent certificate: %d %s", code, resp)
	}

	// Each change left one audit record naming the certificate.
	var actions []string
	recs, err := in.st.AuditRecords(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if strings.HasPrefix(r.Action, "policy.certificate.") {
			actions = append(actions, r.Action)
			if !strings.HasPrefix(r.Object, "policy-certificates/") || r.Actor != "admin" {
				t.Errorf("record %+v", r)
			}
		}
	}
	if !same(actions, "policy.certificate.add", "policy.certificate.add", "policy.certificate.remove") {
		t.Errorf("audit records %v, want add, add, remove", actions)
	}

	// A restart over the same database keeps the set; a changed
	// policy_signers starts it again from the configuration.
	if got := newInstance(t, in.dir, first.cert).list(); !same(got, tp(second.cert), tp(rsaSigner.cert)) {
		t.Errorf("after a restart the set is %v", got)
	}
	if got := newInstance(t, in.dir, stranger.cert).list(); !same(got, tp(stranger.cert)) {
		t.Errorf("with policy_signers changed the set is %v, want the new configuration", got)
	}

	// Unauthenticated callers are refused before anything is read.
	req := httptest.NewRequest("GET", "/certificates?api-version=2020-10-01", nil)
	w := httptest.NewRecorder()
	in.mux.ServeHTTP(w, req)
	if w.Code != 401 {
		t.Errorf("GET /certificates without a token: %d", w.Code)
	}
}

// TestStoredCertificatesTampered: a stored set edited in the database
// (which kura does not trust) is refused wherever it would be used, and
// nothing signed by a certificate smuggled into it is accepted.
func TestStoredCertificatesTampered(t *testing.T) {
	first, second, attacker := newSigner(t, "first"), newSigner(t, "second"), newSigner(t, "attacker")
	in := newInstance(t, "", first.cert)
	if code, resp := in.do("POST", "/certificates:add", jsonString(first.change(t, second.cert))); code != 200 {
		t.Fatalf("add: %d %s", code, resp)
	}
	db, err := sql.Open("sqlite", filepath.Join(in.dir, "kura.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var text string
	if err := db.QueryRow(`SELECT text FROM policies WHERE type = 'kura.policy-certificates'`).Scan(&text); err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	json.Unmarshal([]byte(text), &s)
	s["certificates"] = append(s["certificates"].([]any), base64.StdEncoding.EncodeToString(attacker.cert.Raw))
	edited, _ := json.Marshal(s)
	if _, err := db.Exec(`UPDATE policies SET text = ? WHERE type = 'kura.policy-certificates'`, string(edited)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, method, path, body string }{
		{"list", "GET", "/certificates", ""},
		{"upload by the smuggled certificate", "PUT", "/policies/" + fakeType, attacker.policy(t, policyV2)},
		{"upload by a real member", "PUT", "/policies/" + fakeType, first.policy(t, policyV2)},
		{"add", "POST", "/certificates:add", jsonString(attacker.change(t, attacker.cert))},
		{"remove", "POST", "/certificates:remove", jsonString(first.change(t, second.cert))},
	} {
		code, resp := in.do(c.method, c.path, c.body)
		if code != 503 {
			t.Errorf("%s over an edited set: %d %s, want 503", c.name, code, resp)
			continue
		}
		if msg := errMsg(t, resp); strings.Contains(msg, "integrity") || strings.Contains(msg, "sqlite") {
			t.Errorf("%s: the 503 leaks internals: %s", c.name, msg)
		}
	}
	var after string
	db.QueryRow(`SELECT text FROM policies WHERE type = 'kura.policy-certificates'`).Scan(&after)
	if after != string(edited) {
		t.Error("a refused request rewrote the edited row")
	}
	// The row as kura wrote it authenticates again.
	if _, err := db.Exec(`UPDATE policies SET text = ? WHERE type = 'kura.policy-certificates'`, text); err != nil {
		t.Fatal(err)
	}
	if got := in.list(); !same(got, tp(first.cert), tp(second.cert)) {
		t.Errorf("the restored row lists %v", got)
	}
}

// TestCertificatesAuditFailsClosed: a change whose audit record cannot be
// written is refused as unavailable and changes nothing.
func TestCertificatesAuditFailsClosed(t *testing.T) {
	first, second := newSigner(t, "first"), newSigner(t, "second")
	in := newInstance(t, "", first.cert)
	in.audit.down = true
	for _, c := range []struct{ op, body string }{
		{":add", jsonString(first.change(t, second.cert))},
		{":remove", jsonString(first.change(t, first.cert))},
	} {
		code, resp := in.do("POST", "/certificates"+c.op, c.body)
		if code != 503 || !strings.Contains(errMsg(t, resp), "audit record could not be written") {
			t.Errorf("%s with the audit log down: %d %s", c.op, code, resp)
		}
	}
	if got := in.list(); !same(got, tp(first.cert)) {
		t.Errorf("the set changed with the audit log down: %v", got)
	}
	in.audit.down = false
	if code, resp := in.do("POST", "/certificates:add", jsonString(first.change(t, second.cert))); code != 200 {
		t.Fatalf("add with the audit log back: %d %s", code, resp)
	}
	if got := in.list(); !same(got, tp(first.cert), tp(second.cert)) {
		t.Errorf("set %v", got)
	}
}

// FuzzCertificateRequest: arbitrary :add/:remove bodies never panic the
// parser, every refusal is an *UploadError (a 400), and anything accepted
// names a certificate and a signer whose key made the signature (the
// domain then decides whether the signer is a member).
func FuzzCertificateRequest(f *testing.F) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	s := signer{k, certtest.SelfSigned(f, k, "fuzz signer"), "ES256"}
	body, _ := json.Marshal(map[string]any{"policyCertificate": map[string]any{"kty": "EC", "x5c": []string{base64.StdEncoding.EncodeToString(s.cert.Raw)}}})
	jws := certtest.CompactX5C(f, "ES256", k, s.cert, body)
	f.Add([]byte(jsonString(jws)))
	f.Add([]byte(`{"policyCertificateToAdd":` + jsonString(jws) + `}`))
	f.Add([]byte(jws))
	f.Add([]byte(jsonString(strings.Replace(jws, ".", "..", 1))))
	f.Add([]byte(`{"policyCertificateToAdd":5}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ch, err := parseCertificateRequest(b, "policyCertificateToAdd", time.Now())
		if err != nil {
			var ue *UploadError
			if !errors.As(err, &ue) {
				t.Fatalf("refusal is not an UploadError: %v (%T)", err, err)
			}
			return
		}
		if ch.Cert == nil || ch.Signer == nil || ch.JWS == "" {
			t.Fatalf("accepted %q without a certificate, a signer or the JWS", b)
		}
		if _, err := parseJWS(ch.JWS, "x"); err != nil {
			t.Fatalf("accepted %q whose JWS does not verify: %v", b, err)
		}
	})
}

// TestSignerRecheckedAtTheWrite: an isolated instance's upload whose
// signer stopped being a policy management certificate after the upload
// was checked (a :remove in between) is refused in the write itself, and
// nothing is stored.
func TestSignerRecheckedAtTheWrite(t *testing.T) {
	a, gone := newSigner(t, "a"), newSigner(t, "gone")
	in := newInstance(t, "", a.cert)
	ctx := context.Background()
	sp := store.Policy{Type: fakeType, Text: policyV2, JWS: gone.policy(t, policyV2), Signer: gone.cert.Raw}
	err := in.ps.SetChecked(ctx, sp, in.ps.signerStill(ctx, gone.cert))
	var ue *UploadError
	if !errors.As(err, &ue) || !strings.Contains(ue.Msg, "stopped being a policy management certificate") {
		t.Fatalf("set with a signer no longer trusted: %v", err)
	}
	if _, err := in.st.GetPolicy(ctx, fakeType); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the refused policy was stored: %v", err)
	}
	if err := in.ps.ResetChecked(ctx, fakeType, in.ps.signerStill(ctx, gone.cert)); !errors.As(err, &ue) {
		t.Errorf("reset with a signer no longer trusted: %v", err)
	}
	if err := in.ps.SetChecked(ctx, store.Policy{Type: fakeType, Text: policyV2, JWS: a.policy(t, policyV2), Signer: a.cert.Raw}, in.ps.signerStill(ctx, a.cert)); err != nil {
		t.Errorf("set with a current signer: %v", err)
	}
}

// TestVerifyJWSCurves: ES256 takes P-256 (and P-384, as the npm client
// signs), ES384 only P-384; no other curve.
func TestVerifyJWSCurves(t *testing.T) {
	for _, c := range []struct {
		alg   string
		curve elliptic.Curve
		ok    bool
	}{
		{"ES256", elliptic.P256(), true}, {"ES256", elliptic.P384(), true}, {"ES384", elliptic.P384(), true},
		{"ES256", elliptic.P521(), false}, {"ES384", elliptic.P256(), false}, {"ES256", elliptic.P224(), false},
	} {
		k, _ := ecdsa.GenerateKey(c.curve, rand.Reader)
		jws := certtest.CompactX5C(t, c.alg, k, certtest.SelfSigned(t, k, "k"), []byte(`{}`))
		parts := strings.Split(jws, ".")
		sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
		err := verifyJWS(c.alg, &k.PublicKey, []byte(parts[0]+"."+parts[1]), sig)
		if (err == nil) != c.ok {
			t.Errorf("%s with %s: %v", c.alg, c.curve.Params().Name, err)
		}
	}
}
