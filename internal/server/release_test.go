package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	azpolicy "github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/kura-project/kura/internal/agent"
	"github.com/kura-project/kura/internal/attest/sim"
	"github.com/kura-project/kura/internal/config"
	"github.com/kura-project/kura/internal/ledger"
	"github.com/kura-project/kura/internal/ledger/acltest"
)

const kuraIssuer = "https://kura.test"

func releasePolicy(authority string, extra map[string]any, conds ...map[string]any) []byte {
	var all []any
	for _, c := range conds {
		all = append(all, c)
	}
	p := map[string]any{"version": "1.0.0", "anyOf": []any{map[string]any{"authority": authority, "allOf": all}}}
	for k, v := range extra {
		p[k] = v
	}
	b, _ := json.Marshal(p)
	return b
}

func cond(claim string, op string, v any) map[string]any {
	return map[string]any{"claim": claim, op: v}
}

// tee is a simulated guest: its ephemeral key and a way to get tokens.
type tee struct {
	priv *rsa.PrivateKey
	kid  string
}

func newTEE(t *testing.T) *tee {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &tee{priv: k, kid: "tee-key-1"}
}

// token attests the simulated guest through the handler and returns the
// MAA token carrying the guest's key in x-ms-runtime.keys.
func (g *tee) token(t *testing.T, r *rig, nonce string, o sim.Options, runtime []byte) string {
	t.Helper()
	if runtime == nil {
		var err error
		if runtime, err = agent.RuntimeData(g.kid, &g.priv.PublicKey); err != nil {
			t.Fatal(err)
		}
	}
	a, err := sim.Load(filepath.Join(r.dir, "sim"))
	if err != nil {
		t.Fatal(err)
	}
	body, err := a.Body(runtime, "JSON", nonce, o)
	if err != nil {
		t.Fatal(err)
	}
	code, resp, _ := r.do("POST", attestPath, body)
	if code != 200 {
		t.Fatalf("attest: %d %s", code, resp)
	}
	var out struct{ Token string }
	json.Unmarshal(resp, &out)
	return out.Token
}

func (r *rig) admin_() []string { return []string{"Authorization", "Bearer " + r.admin} }

// importKey imports a local RSA key as exportable with a release policy.
func (r *rig) importKey(t *testing.T, name string, exportable bool, policy []byte) *rsa.PrivateKey {
	t.Helper()
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	b64 := base64.RawURLEncoding.EncodeToString
	body := map[string]any{"key": map[string]string{"kty": "RSA", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes()),
		"d": b64(k.D.Bytes()), "p": b64(k.Primes[0].Bytes()), "q": b64(k.Primes[1].Bytes())}}
	if exportable {
		body["attributes"] = map[string]any{"exportable": true}
	}
	if policy != nil {
		body["release_policy"] = map[string]any{"data": b64(policy)}
	}
	raw, _ := json.Marshal(body)
	code, resp, _ := r.do("PUT", "/keys/"+name+"?api-version=2025-07-01", raw, r.admin_()...)
	if code != 200 {
		t.Fatalf("import %s: %d %s", name, code, resp)
	}
	return k
}

func (r *rig) release(t *testing.T, name, token, nonce, enc string) (int, []byte) {
	t.Helper()
	raw, _ := json.Marshal(map[string]string{"target": token, "nonce": nonce, "enc": enc})
	code, resp, _ := r.do("POST", "/keys/"+name+"/release?api-version=2025-07-01", raw, r.admin_()...)
	return code, resp
}

func otherEnc(enc string) string {
	if enc == "RSA_AES_KEY_WRAP_384" {
		return "RSA_AES_KEY_WRAP_256"
	}
	return "RSA_AES_KEY_WRAP_384"
}

// releaseCerts fetches the certificates kura signs release answers with.
func (r *rig) releaseCerts(t *testing.T) []*x509.Certificate {
	t.Helper()
	code, resp, _ := r.do("GET", "/kura/v1/release-keys", nil)
	if code != 200 {
		t.Fatalf("release-keys: %d %s", code, resp)
	}
	certs, err := agent.ParseReleaseCerts(resp)
	if err != nil {
		t.Fatal(err)
	}
	return certs
}

func issuerOpt(c *config.Config) { c.Issuer = kuraIssuer }

// TestReleaseGranted: a simulated TEE attests, the key is released wrapped
// to its key, the answer verifies with x5c and is bound to the token and
// policy, and every wrapping algorithm unwraps to the imported key.
func TestReleaseGranted(t *testing.T) {
	r := newRig(t, time.Now(), issuerOpt)
	policy := releasePolicy(kuraIssuer+"/", nil, cond("x-ms-attestation-type", "equals", "sevsnpvm"), cond("x-ms-sevsnpvm-is-debuggable", "equals", false))
	key := r.importKey(t, "secret", true, policy)
	want, _ := x509.MarshalPKCS8PrivateKey(key)
	g := newTEE(t)
	trusted := r.releaseCerts(t)
	for _, enc := range []string{"", "CKM_RSA_AES_KEY_WRAP", "RSA_AES_KEY_WRAP_256", "RSA_AES_KEY_WRAP_384"} {
		tok := g.token(t, r, "n-1", sim.Options{}, nil)
		code, resp := r.release(t, "secret", tok, "n-1", enc)
		if code != 200 {
			t.Fatalf("release (%q): %d %s", enc, code, resp)
		}
		var out struct{ Value string }
		json.Unmarshal(resp, &out)
		payload, err := agent.VerifyReleaseJWS(out.Value, trusted)
		if err != nil {
			t.Fatal(err)
		}
		wantEnc := enc
		if wantEnc == "" {
			wantEnc = "CKM_RSA_AES_KEY_WRAP"
		}
		got, err := agent.Open(payload, g.priv, agent.Expect{Name: "secret", Nonce: "n-1", TEEKeyID: g.kid, Enc: wantEnc})
		if err != nil {
			t.Fatalf("unwrap (%q): %v", enc, err)
		}
		if !bytes.Equal(got.Material, want) || got.Kty != "RSA" {
			t.Fatalf("released material differs from the imported key (%q)", enc)
		}
		var p struct {
			Request map[string]string `json:"request"`
			Kura    map[string]string `json:"x-kura-release"`
		}
		json.Unmarshal(payload, &p)
		tsum := sha256.Sum256([]byte(tok))
		psum := sha256.Sum256(policy)
		if p.Request["enc"] != wantEnc || p.Request["nonce"] != "n-1" || p.Kura["token_sha256"] != hex.EncodeToString(tsum[:]) ||
			p.Kura["policy_sha256"] != hex.EncodeToString(psum[:]) || p.Kura["tee_key"] != g.kid {
			t.Errorf("payload binding: %+v %+v", p.Request, p.Kura)
		}
		// The agent refuses an answer bound to another request, key or TEE key.
		for _, bad := range []agent.Expect{
			{Name: "secret", Nonce: "n-2", TEEKeyID: g.kid},
			{Name: "other", Nonce: "n-1", TEEKeyID: g.kid},
			{Name: "secret", Nonce: "n-1", TEEKeyID: "tee-key-2"},
			{Name: "secret", Version: "0123456789abcdef0123456789abcdef", Nonce: "n-1", TEEKeyID: g.kid},
			{Name: "secret", Nonce: "n-1", TEEKeyID: g.kid, Enc: otherEnc(wantEnc)},
		} {
			if _, err := agent.Open(payload, g.priv, bad); err == nil {
				t.Errorf("Open accepted a payload not bound to %+v", bad)
			}
		}
		// and one signed by a certificate kura does not publish.
		if _, err := agent.VerifyReleaseJWS(out.Value, []*x509.Certificate{{Raw: []byte("other")}}); err == nil {
			t.Error("a release JWS verified against a certificate kura does not publish")
		}
	}
	// The release signing certificate is published.
	code, b, _ := r.do("GET", "/kura/v1/release-keys", nil)
	if code != 200 || !strings.Contains(string(b), "x5c") {
		t.Errorf("release keys: %d %s", code, b)
	}
}

// TestReleaseDenials: every way a release must fail answers 403 (or 400
// for a malformed request) with its reason, and never key material.
func TestReleaseDenials(t *testing.T) {
	t0 := time.Now()
	r := newRig(t, t0, issuerOpt)
	g := newTEE(t)
	base := []map[string]any{cond("x-ms-attestation-type", "equals", "sevsnpvm"), cond("x-ms-sevsnpvm-is-debuggable", "equals", false)}
	priv := r.importKey(t, "k", true, releasePolicy(kuraIssuer, nil, base...))
	r.importKey(t, "other-authority", true, releasePolicy("https://maa.example", nil, base...))
	r.importKey(t, "needs-compliance", true, releasePolicy(kuraIssuer, nil, cond("x-ms-compliance-status", "equals", "azure-compliant-cvm")))
	r.importKey(t, "needs-nonce", true, releasePolicy(kuraIssuer, map[string]any{"x-kura-require-nonce": true}, base...))
	r.importKey(t, "not-exportable", false, nil)
	r.importKey(t, "disabled", true, releasePolicy(kuraIssuer, nil, base...))
	if code, resp, _ := r.do("PATCH", "/keys/disabled/?api-version=2025-07-01", []byte(`{"attributes":{"enabled":false}}`), r.admin_()...); code != 200 {
		t.Fatalf("disable: %d %s", code, resp)
	}

	good := g.token(t, r, "nonce-1", sim.Options{}, nil)
	debug := g.token(t, r, "", sim.Options{Debug: true}, nil)
	noKey := g.token(t, r, "nonce-2", sim.Options{}, []byte(`{"note":"no keys here"}`))
	parts := strings.Split(good, ".")
	pb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(bytes.Replace(pb, []byte(`"x-ms-sevsnpvm-vmpl":0`), []byte(`"x-ms-sevsnpvm-vmpl":1`), 1)) + "." + parts[2]
	forged := forgeToken(t, pb)

	for _, c := range []struct {
		name, key, token, nonce, enc string
		status                       int
		want                         string
	}{
		{"wrong authority", "other-authority", good, "", "", 403, "is not an authority"},
		{"tampered token", "k", tampered, "", "", 403, "not acceptable"},
		{"token signed by an unknown key", "k", forged, "", "", 403, "not acceptable"},
		{"untrusted issuer", "k", forgeTokenIss(t, pb, "https://evil.example"), "", "", 403, "not trusted"},
		{"claim mismatch", "k", debug, "", "", 403, "x-ms-sevsnpvm-is-debuggable"},
		{"missing claim", "needs-compliance", good, "", "", 403, "x-ms-compliance-status"},
		{"non-exportable key", "not-exportable", good, "", "", 403, "not exportable"},
		{"disabled key", "disabled", good, "", "", 403, "disabled"},
		{"token without a TEE key", "k", noKey, "", "", 403, "x-ms-runtime"},
		{"nonce required but absent", "needs-nonce", good, "", "", 403, "requires a nonce"},
		{"nonce not the token's", "needs-nonce", good, "other", "", 403, "requires the request's nonce to be the attestation token's nonce"},
		{"nonce required, token without a TEE key", "needs-nonce", noKey, "nonce-2", "", 403, "x-ms-runtime"},
		{"nonce too long", "k", good, strings.Repeat("n", 1025), "", 400, "nonce: longer than"},
		{"bad enc", "k", good, "", "AES_GCM", 400, "enc"},
		{"no target", "k", "", "", "", 400, "target"},
		{"unknown key", "nope", good, "", "", 404, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, resp := r.release(t, c.key, c.token, c.nonce, c.enc)
			if code != c.status || !strings.Contains(string(resp), c.want) {
				t.Fatalf("%d %.300s, want %d containing %q", code, resp, c.status, c.want)
			}
			if bytes.Contains(resp, []byte("key_hsm")) || bytes.Contains(resp, priv.D.Bytes()) {
				t.Error("a denial carried key material")
			}
		})
	}

	// The explanation tree names the failing claim and its actual value.
	_, resp := r.release(t, "k", debug, "", "")
	var e struct {
		Error struct {
			Explanation json.RawMessage `json:"x-kura-explanation"`
		} `json:"error"`
	}
	json.Unmarshal(resp, &e)
	if !bytes.Contains(e.Error.Explanation, []byte("x-ms-sevsnpvm-is-debuggable")) {
		t.Errorf("explanation %s", e.Error.Explanation)
	}

	// A nonce the policy asks for works once; the refusals above did not
	// spend it.
	if code, resp := r.release(t, "needs-nonce", good, "nonce-1", ""); code != 200 {
		t.Fatalf("release with the token's nonce: %d %s", code, resp)
	}
	if code, resp := r.release(t, "needs-nonce", good, "nonce-1", ""); code != 403 || !strings.Contains(string(resp), "already used") {
		t.Errorf("reused nonce: %d %s", code, resp)
	}
	if code, resp := r.release(t, "needs-nonce", g.token(t, r, "nonce-2", sim.Options{}, nil), "nonce-2", ""); code != 200 {
		t.Errorf("nonce-2 after a refused release with it: %d %.300s", code, resp)
	}

	// An expired token: nine hours later.
	r.clk.t = t0.Add(9 * time.Hour)
	if code, resp := r.release(t, "k", good, "", ""); code != 403 || !strings.Contains(string(resp), "expired") {
		t.Errorf("expired token: %d %.300s", code, resp)
	}

	// Creating an exportable key without a policy, or with a malformed one, is refused.
	for _, body := range []string{
		`{"kty":"EC","attributes":{"exportable":true}}`,
		`{"kty":"EC","release_policy":{"data":"` + base64.RawURLEncoding.EncodeToString(releasePolicy(kuraIssuer, nil, base...)) + `"}}`,
		`{"kty":"EC","attributes":{"exportable":true},"release_policy":{"data":"` + base64.RawURLEncoding.EncodeToString([]byte(`{"version":"1.0.0","allOf":[]}`)) + `"}}`,
	} {
		if code, resp, _ := r.do("POST", "/keys/bad/create?api-version=2025-07-01", []byte(body), r.admin_()...); code != 400 {
			t.Errorf("create %s: %d %s", body, code, resp)
		}
	}
}

// forgeToken signs the claims with a key kura does not know, keeping the issuer.
func forgeToken(t *testing.T, payload []byte) string {
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"forged","typ":"JWT"}`))
	in := h + "." + base64.RawURLEncoding.EncodeToString(payload)
	d := sha256.Sum256([]byte(in))
	sig, _ := rsa.SignPKCS1v15(rand.Reader, k, 5, d[:])
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func forgeTokenIss(t *testing.T, payload []byte, iss string) string {
	var m map[string]any
	json.Unmarshal(payload, &m)
	m["iss"] = iss
	b, _ := json.Marshal(m)
	return forgeToken(t, b)
}

// TestReleaseWithAzkeys: the real azkeys client's ReleaseKey gets the
// imported key back, through the agent's unwrap.
func TestReleaseWithAzkeys(t *testing.T) {
	l := startLive(t, issuerOpt)
	ctx := context.Background()
	officer := l.client(t, l.principal(t, "officer", "crypto-officer"))
	releaserCred := l.principal(t, "releaser", "release-user")
	releaser := l.client(t, releaserCred)
	local, _ := rsa.GenerateKey(rand.Reader, 2048)
	policy := releasePolicy(kuraIssuer, nil, cond("x-ms-attestation-type", "equals", "sevsnpvm"))
	if _, err := officer.ImportKey(ctx, "released", azkeys.ImportKeyParameters{
		Key: &azkeys.JSONWebKey{Kty: to.Ptr(azkeys.KeyTypeRSA), N: local.N.Bytes(), E: []byte{1, 0, 1}, D: local.D.Bytes(),
			P: local.Primes[0].Bytes(), Q: local.Primes[1].Bytes()},
		KeyAttributes: &azkeys.KeyAttributes{Exportable: to.Ptr(true)},
		ReleasePolicy: &azkeys.KeyReleasePolicy{EncodedPolicy: policy},
	}, nil); err != nil {
		t.Fatal(err)
	}
	// The key bundle carries the policy as Key Vault does.
	got, err := officer.GetKey(ctx, "released", "", nil)
	if err != nil || got.ReleasePolicy == nil || !bytes.Equal(got.ReleasePolicy.EncodedPolicy, policy) || !*got.Attributes.Exportable {
		t.Fatalf("bundle release policy: %v", err)
	}
	g := newTEE(t)
	r := &rig{t: t, srv: l.srv, dir: l.dir, admin: l.admin}
	tok := g.token(t, r, "", sim.Options{}, nil)
	var httpResp *http.Response
	resp, err := releaser.Release(azpolicy.WithCaptureResponse(ctx, &httpResp), "released", "", azkeys.ReleaseParameters{TargetAttestationToken: &tok,
		Algorithm: to.Ptr(azkeys.KeyEncryptionAlgorithmRSAAESKEYWRAP256)}, nil)
	if err != nil {
		t.Fatalf("ReleaseKey: %v", err)
	}
	// The record names the claims that granted it: the policy's one
	// condition, with the token's value.
	checkReleaseOnLedger(t, l, httpResp.Header.Get("x-kura-ledger-transaction-id"), *resp.Value, `[["x-ms-attestation-type","equals","\"sevsnpvm\""]]`)
	// The releasing principal may read its own release's record (the
	// agent checks it), no other entry; another principal may not.
	otherCred := l.principal(t, "other-releaser", "release-user")
	seq, err := ledger.ParseTxID(httpResp.Header.Get("x-kura-ledger-transaction-id"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		who  string
		seq  int64
		want int
	}{{"releaser", seq, 200}, {"releaser", 0, 403}, {"other-releaser", seq, 403}, {"", seq, 401}} {
		var bearer string
		if cred := map[string]*clientCred{"releaser": releaserCred, "other-releaser": otherCred}[c.who]; cred != nil {
			tok, err := cred.GetToken(ctx, azpolicy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
			if err != nil {
				t.Fatal(err)
			}
			bearer = tok.Token
		}
		req, _ := http.NewRequest("GET", l.url()+fmt.Sprintf("/kura/v1/ledger/entries/%d", c.seq), nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := l.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%q reads entry %d: %d, want %d", c.who, c.seq, resp.StatusCode, c.want)
		}
	}
	// A principal that takes a deleted one's name reads nothing of its
	// releases: records name the principal's id.
	del, _ := http.NewRequest("DELETE", l.url()+"/kura/v1/principals/"+otherCred.id, nil)
	del.Header.Set("Authorization", "Bearer "+l.admin)
	if resp, err := l.http.Do(del); err != nil || resp.StatusCode/100 != 2 {
		t.Fatalf("delete principal: %v %v", err, resp)
	}
	delReleaser, _ := http.NewRequest("DELETE", l.url()+"/kura/v1/principals/"+releaserCred.id, nil)
	delReleaser.Header.Set("Authorization", "Bearer "+l.admin)
	if resp, err := l.http.Do(delReleaser); err != nil || resp.StatusCode/100 != 2 {
		t.Fatalf("delete releaser: %v %v", err, resp)
	}
	heir := l.principal(t, "releaser", "release-user")
	heirTok, err := heir.GetToken(ctx, azpolicy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", l.url()+fmt.Sprintf("/kura/v1/ledger/entries/%d", seq), nil)
	req.Header.Set("Authorization", "Bearer "+heirTok.Token)
	if resp, err := l.http.Do(req); err != nil || resp.StatusCode != 403 {
		t.Errorf("a new principal with a deleted one's name reads its release record: %v %v", err, resp)
	}
	releaser = l.client(t, heir)
	payload, err := agent.VerifyReleaseJWS(*resp.Value, r.releaseCerts(t))
	if err != nil {
		t.Fatal(err)
	}
	rel, err := agent.Open(payload, g.priv, agent.Expect{Name: "released", TEEKeyID: g.kid})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := x509.MarshalPKCS8PrivateKey(local)
	if !bytes.Equal(rel.Material, want) {
		t.Fatal("azkeys release: the unwrapped key is not the imported key")
	}
	// A nonce of the client's own (Key Vault: "a client-provided nonce for
	// freshness"), not the token's: released, and echoed in the signed answer.
	clientNonce := "client-nonce-7f3a"
	resp, err = releaser.Release(ctx, "released", "", azkeys.ReleaseParameters{TargetAttestationToken: &tok,
		Nonce: &clientNonce, Algorithm: to.Ptr(azkeys.KeyEncryptionAlgorithmRSAAESKEYWRAP256)}, nil)
	if err != nil {
		t.Fatalf("ReleaseKey with the client's nonce: %v", err)
	}
	payload, err = agent.VerifyReleaseJWS(*resp.Value, r.releaseCerts(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agent.Open(payload, g.priv, agent.Expect{Name: "released", Nonce: clientNonce, TEEKeyID: g.kid}); err != nil {
		t.Fatalf("the answer does not echo the client's nonce: %v", err)
	}
	// As Microsoft's SKR client side checks it: x5c chains to the root the
	// client trusts for TLS, and x5c[0] names the vault's host.
	caPEM, err := os.ReadFile(filepath.Join(l.dir, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	checkAnswerCert(t, *resp.Value, caPEM, "127.0.0.1", "kura.localhost", "localhost", "::1")
	// The officer may not release; the releaser may not read.
	if _, err := officer.Release(ctx, "released", "", azkeys.ReleaseParameters{TargetAttestationToken: &tok}, nil); status(err) != 403 {
		t.Errorf("officer release: %v", err)
	}
	if _, err := releaser.GetKey(ctx, "released", "", nil); status(err) != 403 {
		t.Errorf("releaser get: %v", err)
	}
}

// TestKeyRowTampering: making a non-exportable key exportable (with a
// permissive policy) by editing the database releases nothing.
func TestKeyRowTampering(t *testing.T) {
	r := newRig(t, time.Now(), issuerOpt)
	r.importKey(t, "crown", false, nil)
	db, err := sql.Open("sqlite", filepath.Join(r.dir, "kura.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	policy := releasePolicy(kuraIssuer, nil, cond("x-ms-attestation-type", "equals", "sevsnpvm"))
	rp, _ := json.Marshal(map[string]any{"contentType": "application/json; charset=utf-8", "data": policy})
	if _, err := db.Exec(`UPDATE key_versions SET exportable = 1, release = ? WHERE name = 'crown'`, rp); err != nil {
		t.Fatal(err)
	}
	r.clk.t = r.clk.t.Add(1100 * time.Millisecond) // past the version cache
	g := newTEE(t)
	code, resp := r.release(t, "crown", g.token(t, r, "", sim.Options{}, nil), "", "")
	if code == 200 || bytes.Contains(resp, []byte("key_hsm")) {
		t.Fatalf("a tampered row released the key: %d", code)
	}
	if code != 503 {
		t.Errorf("tampered row: %d %.200s, want 503", code, resp)
	}
}

// checkAnswerCert verifies a release answer's x5c as an SKR client does:
// the chain to the roots in caPEM, then each vault host name (DNS or IP).
func checkAnswerCert(t *testing.T, jws string, caPEM []byte, hosts ...string) {
	t.Helper()
	var hdr struct {
		X5C []string `json:"x5c"`
	}
	hb, err := base64.RawURLEncoding.DecodeString(strings.SplitN(jws, ".", 2)[0])
	if err != nil || json.Unmarshal(hb, &hdr) != nil || len(hdr.X5C) == 0 {
		t.Fatalf("answer header has no x5c: %s", hb)
	}
	var chain []*x509.Certificate
	for _, b := range hdr.X5C {
		der, err := base64.StdEncoding.DecodeString(b)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, c)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA certificate")
	}
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
		t.Fatalf("the answer's certificate does not chain to the TLS CA: %v", err)
	}
	for _, h := range hosts {
		if err := chain[0].VerifyHostname(h); err != nil {
			t.Errorf("the answer's certificate is not valid for the vault host: %v", err)
		}
	}
}

// TestReleaseIssuer: outside --dev, release_ca_cert/release_ca_key certify
// the release key for the TLS certificate's names, chained to the TLS root;
// a certificate that is no CA, or a TLS certificate without names, is refused.
func TestReleaseIssuer(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rootT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "operator root"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.AddDate(3, 0, 0), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	rootDER, _ := x509.CreateCertificate(rand.Reader, rootT, rootT, &rootKey.PublicKey, rootKey)
	root, _ := x509.ParseCertificate(rootDER)
	write := func(name string, der []byte, typ string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	issue := func(serial int64, tmpl *x509.Certificate) (*x509.Certificate, *ecdsa.PrivateKey) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter = big.NewInt(serial), now.Add(-time.Hour), now.AddDate(1, 0, 0)
		der, err := x509.CreateCertificate(rand.Reader, tmpl, root, &k.PublicKey, rootKey)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c, k
	}
	keyFile := func(name string, k *ecdsa.PrivateKey) string {
		der, _ := x509.MarshalPKCS8PrivateKey(k)
		return write(name, der, "PRIVATE KEY")
	}
	inter, interKey := issue(2, &x509.Certificate{Subject: pkix.Name{CommonName: "kura release CA"}, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign})
	tlsLeaf, tlsKey := issue(3, &x509.Certificate{Subject: pkix.Name{CommonName: "vault.example"}, DNSNames: []string{"vault.example"},
		IPAddresses: []net.IP{net.IPv4(10, 0, 0, 7)}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	tlsCert := &tls.Certificate{Certificate: [][]byte{tlsLeaf.Raw}, PrivateKey: tlsKey}
	iss, err := releaseIssuer(write("inter.pem", inter.Raw, "CERTIFICATE"), keyFile("inter-key.pem", interKey), tlsCert)
	if err != nil {
		t.Fatal(err)
	}
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	chain, err := iss.certify(&rk.PublicKey, now)
	if err != nil {
		t.Fatal(err)
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	for _, c := range chain[1:] {
		inters.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters}); err != nil {
		t.Fatalf("release certificate does not chain to the TLS root: %v", err)
	}
	for _, h := range []string{"vault.example", "10.0.0.7"} {
		if err := chain[0].VerifyHostname(h); err != nil {
			t.Error(err)
		}
	}
	if err := chain[0].VerifyHostname("other.example"); err == nil {
		t.Error("release certificate names a host the TLS certificate does not")
	}
	// Refusals: the TLS leaf is no CA; a TLS certificate without names.
	if _, err := releaseIssuer(write("leaf.pem", tlsLeaf.Raw, "CERTIFICATE"), keyFile("leaf-key.pem", tlsKey), tlsCert); err == nil || !strings.Contains(err.Error(), "not a CA") {
		t.Errorf("a leaf as release CA: %v", err)
	}
	bare, bareKey := issue(4, &x509.Certificate{Subject: pkix.Name{CommonName: "no names"}})
	if _, err := releaseIssuer(write("inter2.pem", inter.Raw, "CERTIFICATE"), keyFile("inter2-key.pem", interKey),
		&tls.Certificate{Certificate: [][]byte{bare.Raw}, PrivateKey: bareKey}); err == nil || !strings.Contains(err.Error(), "names no DNS or IP") {
		t.Errorf("TLS certificate without names: %v", err)
	}
}

// TestReleasePolicyStrictTypes: by default a string operand matches a
// boolean claim as Key Vault does, and the grant's audit record names the
// coercion; with release_policy_strict_types the same release is denied and
// the explanation says why.
func TestReleasePolicyStrictTypes(t *testing.T) {
	policy := releasePolicy(kuraIssuer, nil, cond("x-ms-sevsnpvm-is-debuggable", "equals", "false"))
	for _, strict := range []bool{false, true} {
		r := newRig(t, time.Now(), issuerOpt, func(c *config.Config) { c.ReleasePolicyStrictTypes = strict })
		r.importKey(t, "k", true, policy)
		g := newTEE(t)
		code, resp := r.release(t, "k", g.token(t, r, "", sim.Options{}, nil), "", "")
		if !strict {
			if code != 200 {
				t.Fatalf("lenient release: %d %s", code, resp)
			}
			recs, err := r.srv.app.Store.AuditRecords(context.Background(), 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			last := recs[len(recs)-1]
			if last.Action != "key.release" || !strings.Contains(string(last.Details), `claim x-ms-sevsnpvm-is-debuggable equals \"false\", actual false`) {
				t.Errorf("the grant's record does not name the coercion: %s %s", last.Action, last.Details)
			}
			continue
		}
		if code != 403 || !strings.Contains(string(resp), "release_policy_strict_types: a boolean is not compared with a string") {
			t.Errorf("strict release: %d %s", code, resp)
		}
	}
}

// checkReleaseOnLedger: the release's ledger record (its transaction id
// in the answer's x-kura-ledger-transaction-id) names the answer's digest,
// and its ACL receipt verifies with ACL's algorithm against the ledger's
// identity (the dev CA).
func checkReleaseOnLedger(t *testing.T, l *live, txid, jws, matched string) {
	t.Helper()
	if txid == "" {
		t.Fatal("the release answer has no x-kura-ledger-transaction-id")
	}
	get := func(path string, v any) {
		t.Helper()
		req, _ := http.NewRequest("GET", l.url()+path+"?api-version=2022-05-13", nil)
		req.Header.Set("Authorization", "Bearer "+l.admin)
		resp, err := l.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	var entry struct {
		Entry struct{ Contents, CollectionID string }
	}
	get("/app/transactions/"+txid, &entry)
	var rec struct {
		Action, Object string
		Details        map[string]string
	}
	if err := json.Unmarshal([]byte(entry.Entry.Contents), &rec); err != nil {
		t.Fatalf("ledger record %s: %v", txid, err)
	}
	sum := sha256.Sum256([]byte(jws))
	if csum := sha256.Sum256([]byte(matched)); rec.Details["claims_sha256"] != hex.EncodeToString(csum[:]) {
		t.Errorf("ledger record %s: claims_sha256 %s, want SHA-256 of %s", txid, rec.Details["claims_sha256"], matched)
	}
	if entry.Entry.CollectionID != "kura-audit" || rec.Action != "key.release" || rec.Details["answer_sha256"] != hex.EncodeToString(sum[:]) ||
		rec.Details["token_sha256"] == "" || rec.Details["policy_sha256"] == "" || rec.Details["tee_key"] == "" {
		t.Errorf("ledger record %s of the release: %+v", txid, entry)
	}
	var receipt struct{ Receipt json.RawMessage }
	get("/app/transactions/"+txid+"/receipt", &receipt)
	ca, err := os.ReadFile(filepath.Join(l.dir, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := acltest.Verify(receipt.Receipt, string(ca)); err != nil {
		t.Errorf("the release's receipt does not verify: %v", err)
	}
}
