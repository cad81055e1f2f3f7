package server

import (
	"bytes"
	"context"
	"crypto"
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
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/kura-project/kura/internal/attest/sim"
	"github.com/kura-project/kura/internal/attest/snp"
	"github.com/kura-project/kura/internal/auth"
	"github.com/kura-project/kura/internal/certtest"
	"github.com/kura-project/kura/internal/config"
	"github.com/kura-project/kura/internal/evidence"
	"github.com/kura-project/kura/internal/seal"
)

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

type rig struct {
	t     *testing.T
	srv   *Server
	dir   string
	clk   *clock
	admin string
}

type rigOpt func(*config.Config)

func newRig(t *testing.T, at time.Time, opts ...rigOpt) *rig {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir, cfg.Dev, cfg.Issuer = dir, true, "https://kura.test"
	for _, o := range opts {
		o(&cfg)
	}
	clk := &clock{t: at}
	srv, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler), clk.now)
	if err != nil {
		t.Fatalf("server: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	r := &rig{t: t, srv: srv, dir: dir, clk: clk}
	if cfg.Dev {
		b, err := os.ReadFile(filepath.Join(dir, "dev", "admin-token"))
		if err != nil {
			t.Fatal(err)
		}
		r.admin = strings.TrimSpace(string(b))
	}
	return r
}

// do sends a request through the full handler stack (middleware included).
func (r *rig) do(method, path string, body []byte, hdr ...string) (int, []byte, http.Header) {
	r.t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	r.srv.Handler().ServeHTTP(w, req)
	return w.Code, w.Body.Bytes(), w.Header()
}

const attestPath = "/attest/SevSnpVm?api-version=2022-08-01"

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// body builds a SevSnpVm request.
func body(report, chainPEM, runtime []byte, dataType string) []byte {
	bundle, _ := json.Marshal(snp.Bundle{SnpReport: b64u(report), VcekCertChain: base64.StdEncoding.EncodeToString(chainPEM)})
	req := map[string]any{"report": b64u(bundle), "nonce": "n-1"}
	if runtime != nil {
		req["runtimeData"] = map[string]string{"data": base64.StdEncoding.EncodeToString(runtime), "dataType": dataType}
	}
	b, _ := json.Marshal(req)
	return b
}

func pemOf(ders ...[]byte) []byte {
	var out []byte
	for _, d := range ders {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
	}
	return out
}

// errBody decodes MAA's error body and checks the header.
func errBody(t *testing.T, b []byte, h http.Header) (string, string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("error body %q: %v", b, err)
	}
	if h.Get("x-ms-error-code") != e.Error.Code {
		t.Errorf("x-ms-error-code %q != body code %q", h.Get("x-ms-error-code"), e.Error.Code)
	}
	return e.Error.Code, e.Error.Message
}

func claimsOf(t *testing.T, resp []byte) map[string]any {
	t.Helper()
	var out struct{ Token string }
	if err := json.Unmarshal(resp, &out); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(out.Token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q", out.Token)
	}
	pb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(pb, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRealEvidenceOverHTTP sends the real Azure Milan report with its runtime
// data through the HTTP path: the token carries the runtime keys and the
// report's claims.
func TestRealEvidenceOverHTTP(t *testing.T) {
	att := evidence.Read(t, "snp/milan-azure-constellation/attestation.bin")[:snp.ReportSize]
	vcek := evidence.Read(t, "snp/milan-azure-constellation/vcek.cert")
	runtime := evidence.Read(t, "snp/milan-azure-constellation/runtimedata.bin")
	r := newRig(t, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	code, resp, h := r.do("POST", attestPath, body(att, pemOf(vcek), runtime, "JSON"))
	if code != 200 {
		_, msg := errBody(t, resp, h)
		t.Fatalf("status %d: %s", code, msg)
	}
	c := claimsOf(t, resp)
	if c["x-ms-sevsnpvm-launchmeasurement"] != "5677f1de87289e7ad2c7e99c805d0468b1a9ccd83f0d245afa5242d405da4d5725852f8c6550564870e5f3206dfb1841" {
		t.Errorf("measurement = %v", c["x-ms-sevsnpvm-launchmeasurement"])
	}
	rt, _ := c["x-ms-runtime"].(map[string]any)
	keys, _ := rt["keys"].([]any)
	if len(keys) == 0 || keys[0].(map[string]any)["kid"] != "HCLAkPub" {
		t.Errorf("x-ms-runtime.keys = %v", rt["keys"])
	}
	sum := sha256.Sum256(runtime)
	if !strings.HasPrefix(c["x-ms-sevsnpvm-reportdata"].(string), fmt.Sprintf("%x", sum)) {
		t.Errorf("report data %v does not start with SHA-256(runtime data) %x", c["x-ms-sevsnpvm-reportdata"], sum)
	}
	if c["nonce"] != "n-1" || c["x-ms-attestation-type"] != "sevsnpvm" || c["x-ms-ver"] != "1.0" {
		t.Errorf("common claims: %v %v %v", c["nonce"], c["x-ms-attestation-type"], c["x-ms-ver"])
	}
	if exp, iat := c["exp"].(float64), c["iat"].(float64); exp-iat != 28800 || c["nbf"].(float64) != iat {
		t.Errorf("lifetime exp-iat = %v, want 28800", exp-iat)
	}
}

// TestRefusals: every tampering is a 400 with a precise reason, nothing is a
// 5xx, and nothing panics.
func TestRefusals(t *testing.T) {
	ev := func(p string) []byte { return evidence.Read(t, p) }
	milanRep := ev("snp/milan-trustee/test-report.bin")
	milanVCEK := ev("snp/milan-trustee/test-vcek.der")
	turinRep := ev("snp/turin/turin-report.bin")
	turinVCEK := ev("snp/turin/turin-vcek.der")
	genoaChain := ev("amd-roots/ask_ark_genoa.pem")
	azRep := ev("snp/milan-azure-constellation/attestation.bin")[:snp.ReportSize]
	azVCEK := ev("snp/milan-azure-constellation/vcek.cert")
	azRuntime := ev("snp/milan-azure-constellation/runtimedata.bin")
	vlekRep := ev("snp/vlek-milan-aws-trustee/test-vlek-report.bin")
	vlek := ev("snp/vlek-milan-aws-trustee/test-vlek.der")

	flip := func(b []byte, off int) []byte {
		c := bytes.Clone(b)
		c[off] ^= 0x01
		return c
	}
	type tc struct {
		name   string
		at     time.Time
		body   []byte
		status int
		want   string // substring of the error message
	}
	y2026 := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	var cases []tc
	// A flipped bit in every signed field of the report.
	for _, f := range []struct {
		name string
		off  int
		want string
	}{
		{"guest_svn", 0x04, "signature"}, {"policy", 0x08, "signature"}, {"family_id", 0x10, "signature"},
		{"image_id", 0x20, "signature"}, {"vmpl", 0x30, "signature"}, {"current_tcb", 0x38, "signature"},
		{"platform_info", 0x40, "signature"}, {"signer_info_author", 0x48, "signature"}, {"report_data", 0x50, "signature"},
		{"measurement", 0x90, "signature"}, {"host_data", 0xC0, "signature"}, {"id_key_digest", 0xE0, "signature"},
		{"author_key_digest", 0x110, "signature"}, {"report_id", 0x140, "signature"}, {"report_id_ma", 0x160, "signature"},
		{"reported_tcb", 0x180, "TCB"}, {"chip_id", 0x1A0, "chip"}, {"committed_tcb", 0x1E0, "signature"},
		{"current_version", 0x1E8, "signature"}, {"launch_tcb", 0x1F0, "signature"}, {"launch_mit_vector", 0x1F8, "signature"}, {"reserved", 0x210, "reserved bytes 0x208"},
	} {
		cases = append(cases, tc{"flipped " + f.name, y2026, body(flip(turinRep, f.off), pemOf(turinVCEK), nil, ""), 400, f.want})
	}
	cases = append(cases,
		tc{"wrong signature r", y2026, body(flip(turinRep, 0x2A0), pemOf(turinVCEK), nil, ""), 400, "signature does not verify"},
		tc{"wrong signature s", y2026, body(flip(turinRep, 0x2E8), pemOf(turinVCEK), nil, ""), 400, "signature does not verify"},
		tc{"nonzero signature padding", y2026, body(flip(turinRep, 0x400), pemOf(turinVCEK), nil, ""), 400, "reserved bytes"},
		tc{"chain from another product line", y2026, body(milanRep, append(pemOf(milanVCEK), genoaChain...), nil, ""), 400, "not part of the Milan chain"},
		tc{"Turin VCEK for a Milan report", y2026, body(milanRep, pemOf(turinVCEK), nil, ""), 400, ""},
		tc{"another chip's VCEK", y2026, body(turinRep, pemOf(ev("snp/turin/vcek_turin_other_chip.der")), nil, ""), 400, "issued for chip"},
		tc{"fake VCEK not signed by AMD", y2026, body(milanRep, pemOf(ev("snp/milan-trustee/test-vcek-invalid-new.der")), nil, ""), 400, "not signed by any trusted ASK-Milan"},
		tc{"expired VLEK", time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC), body(vlekRep, pemOf(vlek), nil, ""), 400, "VLEK expired at 2025-12-10T22:14:21Z"},
		tc{"VCEK not yet valid", time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), body(turinRep, pemOf(turinVCEK), nil, ""), 400, "not valid before"},
		tc{"no VCEK and none cached", y2026, body(turinRep, nil, nil, ""), 400, "none was sent and none is cached"},
		tc{"runtimeData does not match report_data", y2026, body(azRep, pemOf(azVCEK), append(bytes.Clone(azRuntime), ' '), "JSON"), 400, "runtimeData"},
		tc{"runtimeData JSON invalid", y2026, body(azRep, pemOf(azVCEK), []byte("{"), "JSON"), 400, "runtimeData"},
		tc{"truncated report", y2026, body(turinRep[:1000], pemOf(turinVCEK), nil, ""), 400, "report is 1000 bytes, want 1184"},
		tc{"oversized report", y2026, body(append(bytes.Clone(turinRep), 0), pemOf(turinVCEK), nil, ""), 400, "want 1184"},
		tc{"empty body", y2026, nil, 400, "empty body"},
		tc{"truncated JSON", y2026, []byte(`{"report":"abc`), 400, "body"},
		tc{"not JSON", y2026, []byte(`report=abc`), 400, "at byte"},
		tc{"report not base64", y2026, []byte(`{"report":"!!!"}`), 400, "report: not base64"},
		tc{"report not a bundle", y2026, []byte(`{"report":"` + b64u([]byte("hello")) + `"}`), 400, "report: report is not the JSON bundle"},
		tc{"bundle with unknown field", y2026, []byte(`{"report":"` + b64u([]byte(`{"SnpReport":"AA","Extra":1}`)) + `"}`), 400, "unknown field"},
		tc{"wrong JSON type", y2026, []byte(`{"report":5}`), 400, "report"},
		tc{"unknown dataType", y2026, []byte(`{"report":"AA","runtimeData":{"data":"AA","dataType":"XML"}}`), 400, "dataType"},
		tc{"nonce object", y2026, []byte(`{"report":"AA","nonce":{}}`), 400, "nonce: must be a string or a number"},
		tc{"oversized body", y2026, bytes.Repeat([]byte("a"), 2<<20), 413, "exceeds the limit"},
		tc{"trailing garbage", y2026, append(body(turinRep, pemOf(turinVCEK), nil, ""), []byte("{}")...), 400, "trailing data"},
		tc{"bad PEM in chain", y2026, body(turinRep, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), nil, ""), 400, "VcekCertChain"},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, c.at)
			code, resp, h := r.do("POST", attestPath, c.body)
			if code != c.status {
				t.Fatalf("status %d, want %d: %s", code, c.status, resp)
			}
			_, msg := errBody(t, resp, h)
			if !strings.Contains(msg, c.want) {
				t.Errorf("message %q does not contain %q", msg, c.want)
			}
		})
	}
}

func TestAPIVersionAndRoutes(t *testing.T) {
	r := newRig(t, time.Now())
	for _, c := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"POST", "/attest/SevSnpVm", 400, "MissingApiVersionParameter"},
		{"POST", "/attest/SevSnpVm?api-version=2019-01-01", 400, "UnsupportedApiVersion"},
		{"POST", "/attest/Martian?api-version=2022-08-01", 400, "InvalidAttestationType"},
		{"POST", "/attest/OpenEnclave?api-version=2022-08-01", 400, "InvalidParameter"}, // served: the body has no report
		{"POST", "/attest/TdxVm?api-version=2022-08-01", 400, "InvalidParameter"},       // served: the body has no quote
		{"GET", "/nothing", 404, "NotFound"},
		{"GET", "/policies/SevSnpVm?api-version=2022-08-01", 401, "Unauthorized"},
	} {
		code, resp, h := r.do(c.method, c.path, []byte(`{}`))
		if code != c.status {
			t.Errorf("%s %s: status %d, want %d", c.method, c.path, code, c.status)
			continue
		}
		if got, _ := errBody(t, resp, h); got != c.code {
			t.Errorf("%s %s: code %q, want %q", c.method, c.path, got, c.code)
		}
	}
	for _, v := range []string{"2020-10-01", "2022-08-01", "2025-06-01"} {
		// Lower-case type too: clients differ in case.
		code, _, _ := r.do("POST", "/attest/sevsnpvm?api-version="+v, []byte(`{}`))
		if code != 400 { // the body is empty evidence: a 400 for the report, not for the version
			t.Errorf("api-version %s: status %d", v, code)
		}
	}
	if code, b, _ := r.do("GET", "/healthz", nil); code != 200 || string(b) != "ok\n" {
		t.Errorf("healthz: %d %q", code, b)
	}
	if code, _, _ := r.do("GET", "/readyz", nil); code != 200 {
		t.Errorf("readyz: %d", code)
	}
	// A root that stops answering (an HSM gone away) makes kura unready.
	// The result is reused for a second, so probes cannot queue work on
	// the HSM; after that the failure shows.
	svc := r.srv.svc.Load()
	good := svc.Sealer
	svc.Sealer = seal.New(failingRoot{})
	if code, _, _ := r.do("GET", "/readyz", nil); code != 200 {
		t.Errorf("readyz within a second of a good probe: %d", code)
	}
	r.srv.probe.mu.Lock()
	r.srv.probe.at = r.srv.probe.at.Add(-rootProbeEvery)
	r.srv.probe.mu.Unlock()
	if code, b, _ := r.do("GET", "/readyz", nil); code != 503 || !strings.Contains(string(b), "root of trust") {
		t.Errorf("readyz with a failing root: %d %q", code, b)
	}
	// A root that hangs (an HSM whose sessions are all busy) is unready
	// after the probe's deadline, not a probe that hangs too.
	block := make(chan struct{})
	svc.Sealer = seal.New(hangingRoot{block})
	r.srv.probe.mu.Lock()
	r.srv.probe.at = time.Time{}
	r.srv.probe.mu.Unlock()
	start := time.Now()
	if code, b, _ := r.do("GET", "/readyz", nil); code != 503 || !strings.Contains(string(b), "root of trust") {
		t.Errorf("readyz with a hanging root: %d %q", code, b)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("readyz took %s", d)
	}
	close(block)
	svc.Sealer = good
}

type hangingRoot struct{ block chan struct{} }

func (h hangingRoot) Wrap(dek, aad []byte) ([]byte, error) {
	<-h.block
	return nil, errors.New("pkcs11: too late")
}

func (h hangingRoot) Unwrap(wrapped, aad []byte) ([]byte, error) {
	<-h.block
	return nil, errors.New("pkcs11: too late")
}

type failingRoot struct{}

func (failingRoot) Wrap(dek, aad []byte) ([]byte, error) {
	return nil, errors.New("pkcs11: CKR_DEVICE_REMOVED")
}

func (failingRoot) Unwrap(wrapped, aad []byte) ([]byte, error) {
	return nil, errors.New("pkcs11: CKR_DEVICE_REMOVED")
}

// TestSimulatorTrust: simulated evidence is accepted by a dev server and
// refused by a production one.
func TestSimulatorTrust(t *testing.T) {
	now := time.Now()
	dev := newRig(t, now)
	a, err := sim.Load(filepath.Join(dev.dir, "sim"))
	if err != nil {
		t.Fatal(err)
	}
	runtime := []byte(`{"keys":[]}`)
	b, err := a.Body(runtime, "JSON", "", sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	code, resp, _ := dev.do("POST", attestPath, b)
	if code != 200 {
		t.Fatalf("dev server: %d %s", code, resp)
	}
	if c := claimsOf(t, resp); c["x-kura-simulated"] != true {
		t.Errorf("x-kura-simulated = %v", c["x-kura-simulated"])
	}

	prod := newRig(t, now, prodConfig(t))
	code, resp, h := prod.do("POST", attestPath, b)
	if code != 400 {
		t.Fatalf("production server: status %d, want 400: %s", code, resp)
	}
	if _, msg := errBody(t, resp, h); !strings.Contains(msg, "not signed by any trusted ASK-Milan") ||
		!strings.Contains(msg, "trusts the simulated TEE only with --dev or trust_simulator") {
		t.Errorf("message %q", msg)
	}
	// Another --dev server trusts its own simulated root, not this one's:
	// the refusal says so rather than only that the chain fails.
	other := newRig(t, now)
	code, resp, h = other.do("POST", attestPath, b)
	if code != 400 {
		t.Fatalf("another dev server: status %d, want 400: %s", code, resp)
	}
	if _, msg := errBody(t, resp, h); !strings.Contains(msg, "simulated evidence from another data directory's test root") ||
		!strings.Contains(msg, filepath.Join(other.dir, "sim")) {
		t.Errorf("another dev server's message %q", msg)
	}
	if _, err := os.Stat(filepath.Join(prod.dir, "sim")); err == nil {
		t.Error("a production server created a simulated root")
	}
	if _, err := os.Stat(filepath.Join(prod.dir, "dev")); err == nil {
		t.Error("a production server wrote dev material")
	}
}

// prodConfig makes a non-dev configuration with its own TLS key and unseal key.
func prodConfig(t *testing.T) rigOpt {
	dir := t.TempDir()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kura.test"}, DNSNames: []string{"kura.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	kd, _ := x509.MarshalECPrivateKey(k)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cert := write("tls.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	key := write("tls-key.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}))
	unseal := make([]byte, 32)
	rand.Read(unseal)
	uf := write("unseal.key", unseal)
	return func(c *config.Config) {
		c.Dev, c.TLSCert, c.TLSKey, c.UnsealKeyFile = false, cert, key, uf
	}
}

// TestTokensVerifyWithJOSE: tokens verify with go-jose from the JWKS alone,
// for each algorithm, and the x5c certificate holds the same key.
func TestTokensVerifyWithJOSE(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256", "ES384"} {
		t.Run(alg, func(t *testing.T) {
			r := newRig(t, time.Now(), func(c *config.Config) { c.TokenAlg = alg })
			a, err := sim.Load(filepath.Join(r.dir, "sim"))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := a.Body([]byte(`{"x":1}`), "JSON", "", sim.Options{})
			code, resp, _ := r.do("POST", attestPath, b)
			if code != 200 {
				t.Fatalf("%d %s", code, resp)
			}
			var out struct{ Token string }
			json.Unmarshal(resp, &out)
			_, jwksBody, _ := r.do("GET", "/certs", nil)
			var set jose.JSONWebKeySet
			if err := json.Unmarshal(jwksBody, &set); err != nil {
				t.Fatalf("JWKS does not parse with go-jose: %v", err)
			}
			sig, err := jose.ParseSignedCompact(out.Token, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
			if err != nil {
				t.Fatal(err)
			}
			h := sig.Signatures[0].Header
			if h.KeyID == "" || h.ExtraHeaders["jku"] != "https://kura.test/certs" || h.ExtraHeaders["typ"] != "JWT" {
				t.Errorf("header %+v", h)
			}
			keys := set.Key(h.KeyID)
			if len(keys) != 1 {
				t.Fatalf("kid %q: %d keys in the JWKS", h.KeyID, len(keys))
			}
			payload, err := sig.Verify(keys[0].Key)
			if err != nil {
				t.Fatalf("token does not verify with the JWKS key: %v", err)
			}
			if !bytes.Contains(payload, []byte(`"x-ms-attestation-type":"sevsnpvm"`)) {
				t.Errorf("payload %s", payload)
			}
			if len(keys[0].Certificates) != 1 {
				t.Fatal("JWK has no x5c")
			}
			if _, err := sig.Verify(keys[0].Certificates[0].PublicKey); err != nil {
				t.Errorf("x5c certificate key does not verify the token: %v", err)
			}
			// A token altered after signing fails.
			parts := strings.Split(out.Token, ".")
			tampered := parts[0] + "." + b64u(bytes.Replace(payload, []byte("sevsnpvm"), []byte("tdxvm"), 1)) + "." + parts[2]
			if ts, err := jose.ParseSignedCompact(tampered, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)}); err == nil {
				if _, err := ts.Verify(keys[0].Key); err == nil {
					t.Error("tampered token verified")
				}
			}
			_, oidc, _ := r.do("GET", "/.well-known/openid-configuration", nil)
			var meta map[string]any
			json.Unmarshal(oidc, &meta)
			if meta["jwks_uri"] != "https://kura.test/certs" || meta["issuer"] != "https://kura.test" {
				t.Errorf("openid-configuration %s", oidc)
			}
		})
	}
}

// TestKeyRotation: after a rotation the old key stays in the JWKS until its
// last token has expired, then leaves it; tokens from both verify meanwhile.
func TestKeyRotation(t *testing.T) {
	r := newRig(t, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), func(c *config.Config) { c.TokenAlg = "ES256" })
	kr := r.srv.Keyring()
	old, err := kr.Issue(map[string]any{"a": 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	newer, _ := kr.Issue(map[string]any{"a": 2})
	jwks := func() jose.JSONWebKeySet {
		_, b, _ := r.do("GET", "/certs", nil)
		var s jose.JSONWebKeySet
		json.Unmarshal(b, &s)
		return s
	}
	verifies := func(tok string, set jose.JSONWebKeySet) bool {
		sig, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			return false
		}
		ks := set.Key(sig.Signatures[0].Header.KeyID)
		if len(ks) == 0 {
			return false
		}
		_, err = sig.Verify(ks[0].Key)
		return err == nil
	}
	if code, _, _ := r.do("POST", "/kura/v1/token-keys:rotate", nil); code != 401 {
		t.Errorf("rotation without the admin token: %d", code)
	}
	s := jwks()
	if len(s.Keys) != 2 || !verifies(old, s) || !verifies(newer, s) {
		t.Fatalf("after rotation: %d keys; old verifies %v, new verifies %v", len(s.Keys), verifies(old, s), verifies(newer, s))
	}
	r.clk.t = r.clk.t.Add(8*time.Hour + time.Minute)
	s = jwks()
	if len(s.Keys) != 1 || verifies(old, s) || !verifies(newer, s) {
		t.Fatalf("after the old key's last token expired: %d keys", len(s.Keys))
	}
	// Rotation through the admin API.
	code, body, _ := r.do("POST", "/kura/v1/token-keys:rotate", nil, "Authorization", "Bearer "+r.admin)
	var after jose.JSONWebKeySet
	if json.Unmarshal(body, &after); code != 200 || len(after.Keys) != 2 || verifies(mustIssue(t, kr), s) {
		t.Fatalf("admin rotation: %d, %d keys", code, len(after.Keys))
	}
	// The keyring survives a restart with the same keys (sealed in the store).
	r.srv.Close()
	cfg := config.Default()
	cfg.DataDir, cfg.Dev, cfg.Issuer, cfg.TokenAlg = r.dir, true, "https://kura.test", "ES256"
	srv2, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler), r.clk.now)
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Close()
	r.srv = srv2
	if !verifies(newer, jwks()) {
		t.Error("after restart the active key is not published")
	}
}

func signedPolicy(t *testing.T, text string, key crypto.Signer, cert *x509.Certificate, alg string) string {
	t.Helper()
	p, _ := json.Marshal(map[string]string{"AttestationPolicy": b64u([]byte(text))})
	return certtest.CompactX5C(t, alg, key, cert, p)
}

func unsigned(text string) string {
	p, _ := json.Marshal(map[string]string{"AttestationPolicy": b64u([]byte(text))})
	return b64u([]byte(`{"alg":"none"}`)) + "." + b64u(p) + "."
}

func TestPolicies(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaCert := certtest.SelfSigned(t, rsaKey, "policy signer")
	ecCert := certtest.SelfSigned(t, ecKey, "policy signer")
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherCert := certtest.SelfSigned(t, otherKey, "policy signer")

	t.Run("unsigned mode", func(t *testing.T) {
		r := newRig(t, time.Now())
		auth := []string{"Authorization", "Bearer " + r.admin}
		path := "/policies/SevSnpVm?api-version=2025-06-01"
		// Defaults first.
		code, resp, _ := r.do("GET", path, nil, auth...)
		if code != 200 {
			t.Fatalf("get: %d %s", code, resp)
		}
		// Wrong token: 401, nothing changes.
		if code, _, _ := r.do("PUT", path, []byte(unsigned("version=1.0; authorizationrules { => deny(); };")), "Authorization", "Bearer nope-nope-nope-nope"); code != 401 {
			t.Fatalf("wrong token: %d", code)
		}
		// A malformed policy: 400 with line and column, nothing changes.
		code, resp, h := r.do("PUT", path, []byte(unsigned("version=1.0;\nauthorizationrules {\n  => permitt();\n};")), auth...)
		if code != 400 {
			t.Fatalf("malformed policy: %d", code)
		}
		if _, msg := errBody(t, resp, h); !strings.Contains(msg, "line 3, column") {
			t.Errorf("message %q lacks line:column", msg)
		}
		for _, bad := range []string{"", "abc", "a.b", "e30.e30.", b64u([]byte(`{"alg":"HS256"}`)) + ".e30.xx", b64u([]byte(`{"alg":"none"}`)) + ".!!!.", b64u([]byte(`{"alg":"none"}`)) + "." + b64u([]byte(`{"AttestationPolicy":5}`)) + "."} {
			code, resp, h := r.do("PUT", path, []byte(bad), auth...)
			if code != 400 {
				t.Errorf("upload %q: %d", bad, code)
				continue
			}
			errBody(t, resp, h)
		}
		a, _ := sim.Load(filepath.Join(r.dir, "sim"))
		good, _ := a.Body([]byte(`{}`), "JSON", "", sim.Options{})
		if code, _, _ := r.do("POST", attestPath, good); code != 200 {
			t.Fatalf("after refused uploads the default policy no longer permits: %d", code)
		}
		// A real policy: deny debuggable guests, issue the measurement.
		pol := "version=1.0;\nauthorizationrules {\n [type==\"x-ms-sevsnpvm-is-debuggable\", value==false] => permit();\n};\nissuancerules {\n c:[type==\"x-ms-sevsnpvm-launchmeasurement\"] => issue(type=\"m\", value=c.value);\n};\n"
		jws := unsigned(pol)
		code, resp, _ = r.do("PUT", path, []byte(jws), auth...)
		if code != 200 {
			t.Fatalf("set: %d %s", code, resp)
		}
		c := claimsOf(t, resp)
		sum := sha256.Sum256([]byte(jws))
		if c["x-ms-policy-result"] != "Updated" || c["x-ms-policy-token-hash"] != b64u(sum[:]) {
			t.Errorf("policy result claims %v", c)
		}
		code, resp, _ = r.do("POST", attestPath, good)
		if code != 200 {
			t.Fatalf("attest under the new policy: %d %s", code, resp)
		}
		tc := claimsOf(t, resp)
		if tc["m"] != tc["x-ms-sevsnpvm-launchmeasurement"] {
			t.Errorf("issued claim m = %v", tc["m"])
		}
		debug, _ := a.Body([]byte(`{}`), "JSON", "", sim.Options{Debug: true})
		code, resp, h = r.do("POST", attestPath, debug)
		if code != 400 {
			t.Fatalf("debuggable guest: %d", code)
		}
		if c, msg := errBody(t, resp, h); c != "PolicyEvaluationError" || !strings.Contains(msg, "no authorization rule permitted") {
			t.Errorf("deny: %s %s", c, msg)
		}
		// Reset returns to the default.
		code, resp, _ = r.do("POST", "/policies/SevSnpVm:reset?api-version=2025-06-01", []byte(b64u([]byte(`{"alg":"none"}`))+".."), auth...)
		if code != 200 || claimsOf(t, resp)["x-ms-policy-result"] != "Removed" {
			t.Fatalf("reset: %d %s", code, resp)
		}
		if code, _, _ := r.do("POST", attestPath, debug); code != 200 {
			t.Errorf("after reset the debuggable guest is refused: %d", code)
		}
		// Without policy_signers (MAA's default mode) a signed upload
		// needs no configured signer; the signer is reported.
		code, resp, _ = r.do("PUT", path, []byte(signedPolicy(t, pol, rsaKey, rsaCert, "RS256")), auth...)
		if code != 200 || claimsOf(t, resp)["x-ms-policy-signer"] == nil {
			t.Errorf("RS256 upload in default mode: %d %s", code, resp)
		}
	})

	t.Run("signed mode", func(t *testing.T) {
		dir := t.TempDir()
		f := filepath.Join(dir, "signers.pem")
		os.WriteFile(f, pemOf(rsaCert.Raw, ecCert.Raw), 0o600)
		r := newRig(t, time.Now(), func(c *config.Config) { c.PolicySigners = []string{f} })
		auth := []string{"Authorization", "Bearer " + r.admin}
		path := "/policies/SevSnpVm?api-version=2025-06-01"
		pol := "version=1.2; authorizationrules { => permit(); }; issuancerules { => issue(type=\"signed\", value=true); };"
		for _, c := range []struct {
			name   string
			jws    string
			status int
		}{
			{"unsigned refused", unsigned(pol), 400},
			{"RS256 by a configured signer", signedPolicy(t, pol, rsaKey, rsaCert, "RS256"), 200},
			{"ES256 by a configured signer", signedPolicy(t, pol, ecKey, ecCert, "ES256"), 200},
			{"unknown signer", signedPolicy(t, pol, otherKey, otherCert, "ES256"), 400},
			{"signature by another key", signedPolicy(t, pol, otherKey, ecCert, "ES256"), 400},
		} {
			code, resp, _ := r.do("PUT", path, []byte(c.jws), auth...)
			if code != c.status {
				t.Errorf("%s: %d, want %d: %s", c.name, code, c.status, resp)
				continue
			}
			if code == 200 {
				if claimsOf(t, resp)["x-ms-policy-signer"] == nil {
					t.Errorf("%s: no x-ms-policy-signer", c.name)
				}
			}
		}
	})
}

// TestServeHTTPS runs the real listener with TLS and graceful shutdown.
func TestServeHTTPS(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir, cfg.Dev, cfg.Addr = dir, true, "127.0.0.1:0"
	srv, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- srv.Serve(ctx, func(a net.Addr) { addrc <- a.String() })
	}()
	addr := <-addrc
	caPEM, err := os.ReadFile(filepath.Join(dir, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for _, host := range []string{addr, strings.Replace(addr, "127.0.0.1", "localhost", 1), strings.Replace(addr, "127.0.0.1", "kura.localhost", 1)} {
		if strings.Contains(host, "kura.localhost") {
			continue // *.localhost does not resolve on every machine; the SAN is checked below
		}
		resp, err := cl.Get("https://" + host + "/healthz")
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "ok\n" || resp.Header.Get("x-ms-request-id") == "" {
			t.Errorf("%s: %d %q", host, resp.StatusCode, b)
		}
	}
	leaf, _ := x509.ParseCertificate(srv.TLSConfig().Certificates[0].Certificate[0])
	if err := leaf.VerifyHostname("kura.localhost"); err != nil {
		t.Errorf("server certificate does not cover *.localhost: %v", err)
	}
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil && resp.StatusCode == 200 {
		t.Error("plain HTTP answered 200; kura must be HTTPS only")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// TestPolicyIntegrity: a policy edited in the database (which kura treats as
// untrusted) is detected at load and nothing is attested under it.
func TestPolicyIntegrity(t *testing.T) {
	r := newRig(t, time.Now())
	auth := []string{"Authorization", "Bearer " + r.admin}
	path := "/policies/SevSnpVm?api-version=2025-06-01"
	strict := "version=1.0; authorizationrules { [type==\"x-ms-sevsnpvm-is-debuggable\", value==false] => permit(); }; issuancerules { };"
	if code, resp, _ := r.do("PUT", path, []byte(unsigned(strict)), auth...); code != 200 {
		t.Fatalf("set: %d %s", code, resp)
	}
	db, err := sql.Open("sqlite", filepath.Join(r.dir, "kura.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE policies SET text = ? WHERE type = 'SevSnpVm'`, "version=1.0; authorizationrules { => permit(); }; issuancerules { };"); err != nil {
		t.Fatal(err)
	}
	r.clk.t = r.clk.t.Add(1100 * time.Millisecond) // past the policy cache
	a, _ := sim.Load(filepath.Join(r.dir, "sim"))
	debug, _ := a.Body([]byte(`{}`), "JSON", "", sim.Options{Debug: true})
	code, resp, h := r.do("POST", attestPath, debug)
	if code != 503 {
		t.Fatalf("attest under an edited policy: %d %s", code, resp)
	}
	if _, msg := errBody(t, resp, h); strings.Contains(msg, "integrity") || strings.Contains(msg, "sqlite") {
		t.Errorf("503 message leaks internals: %q", msg)
	}
	if code, _, _ := r.do("GET", path, nil, auth...); code != 503 {
		t.Errorf("get of an edited policy: %d", code)
	}
}

// TestReservedClaims: a policy cannot issue claims in the service's
// namespaces.
func TestReservedClaims(t *testing.T) {
	r := newRig(t, time.Now())
	auth := []string{"Authorization", "Bearer " + r.admin}
	a, _ := sim.Load(filepath.Join(r.dir, "sim"))
	body, _ := a.Body([]byte{1, 2}, "Binary", "", sim.Options{})
	for _, name := range []string{"x-ms-runtime", "x-kura-simulated", "x-ms-policy-signer", "exp"} {
		pol := fmt.Sprintf("version=1.0; authorizationrules { => permit(); }; issuancerules { => issue(type=%q, value=true); };", name)
		if code, resp, _ := r.do("PUT", "/policies/SevSnpVm?api-version=2025-06-01", []byte(unsigned(pol)), auth...); code != 200 {
			t.Fatalf("set: %d %s", code, resp)
		}
		code, resp, h := r.do("POST", attestPath, body)
		if code != 400 {
			t.Fatalf("%s: status %d", name, code)
		}
		if _, msg := errBody(t, resp, h); !strings.Contains(msg, "reserved for the service") {
			t.Errorf("%s: %q", name, msg)
		}
	}
}

func mustIssue(t *testing.T, kr interface {
	Issue(map[string]any) (string, error)
}) string {
	tok, err := kr.Issue(map[string]any{"x": 1})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestAdminRoutesForbidNonAdministrators: a valid token of a principal
// without the administrator role is answered 403 on administrator routes
// (it is authenticated, just not allowed); no token or a bad one is 401.
func TestAdminRoutesForbidNonAdministrators(t *testing.T) {
	r := newRig(t, time.Now())
	ctx := context.Background()
	id, secret, err := r.srv.Auth().CreatePrincipal(ctx, auth.NewPrincipal{Name: "user", Role: auth.CryptoUser})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := r.srv.Auth().ClientCredentials(ctx, id, secret)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ method, path string }{
		{"POST", "/kura/v1/token-keys:rotate"},
		{"GET", "/policies/SevSnpVm?api-version=2022-08-01"},
		{"POST", "/policies/SevSnpVm:reset?api-version=2022-08-01"},
		{"GET", "/certificates?api-version=2020-10-01"},
		{"POST", "/certificates:add?api-version=2020-10-01"},
		{"POST", "/certificates:remove?api-version=2020-10-01"},
	} {
		code, body, _ := r.do(c.method, c.path, nil, "Authorization", "Bearer "+tok)
		if code != 403 || !strings.Contains(string(body), `principal \"user\" is not an administrator`) {
			t.Errorf("%s %s as a non-administrator: %d %s, want 403 naming the principal", c.method, c.path, code, body)
		}
		if code, _, h := r.do(c.method, c.path, nil, "Authorization", "Bearer not-a-token"); code != 401 || h.Get("WWW-Authenticate") == "" {
			t.Errorf("%s %s with a bad token: %d, want 401 with a challenge", c.method, c.path, code)
		}
	}
}

// TestAccessLogNamesPrincipal: every access-log line names the
// authenticated principal or "anonymous"; a release denial names the
// principal, the key version and the reason class.
func TestAccessLogNamesPrincipal(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir, cfg.Dev, cfg.Issuer = dir, true, "https://kura.test"
	var buf syncBuffer
	srv, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(&buf, nil)), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	b, _ := os.ReadFile(filepath.Join(dir, "dev", "admin-token"))
	r := &rig{t: t, srv: srv, dir: dir, clk: &clock{t: time.Now()}, admin: strings.TrimSpace(string(b))}
	r.do("GET", "/healthz", nil)
	r.do("GET", "/keys?api-version=7.4", nil, "Authorization", "Bearer "+r.admin)
	r.do("POST", "/keys/nope/release?api-version=7.4", []byte(`{"target":"not-a-jws"}`), "Authorization", "Bearer "+r.admin)
	out := buf.String()
	for _, want := range []string{
		`path=/healthz status=200 principal=anonymous`,
		`path=/keys status=200 principal=admin`,
		`msg="key release denied" principal=admin key=nope version="" reason_class=token`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the server's concurrent logging.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
