package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/config"
	"github.com/kura-project/kura/internal/seal"
	"github.com/kura-project/kura/internal/seal/sealtest"
)

// sealedConfig is a production configuration whose software root is
// unsealed with Shamir shares (no unseal key file).
func sealedConfig(t *testing.T, dir string) config.Config {
	cfg := config.Default()
	prodConfig(t)(&cfg)
	cfg.UnsealKeyFile, cfg.DataDir = "", dir
	tok := filepath.Join(t.TempDir(), "admin-token")
	os.WriteFile(tok, []byte("admin-token-0123456789abcdef"), 0o600)
	cfg.AdminTokenFile = tok
	return cfg
}

func openServer(t *testing.T, cfg config.Config) *rig {
	srv, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, srv: srv, dir: cfg.DataDir, admin: "admin-token-0123456789abcdef"}
}

func opPost(r *rig, path string, v any) (int, map[string]any) {
	b, _ := json.Marshal(v)
	code, resp, _ := r.do("POST", path, b, "Authorization", "Bearer "+r.admin)
	var out map[string]any
	json.Unmarshal(resp, &out)
	return code, out
}

func TestSealedServerInitAndUnseal(t *testing.T) {
	dir := t.TempDir()
	cfg := sealedConfig(t, dir)
	r := openServer(t, cfg)
	if r.srv.Unsealed() {
		t.Fatal("a fresh production server is unsealed")
	}
	code, resp, h := r.do("POST", attestPath, []byte(`{}`))
	if code != 503 {
		t.Fatalf("attest while uninitialised: %d", code)
	}
	if _, msg := errBody(t, resp, h); !strings.Contains(msg, "kura operator init") {
		t.Errorf("message %q", msg)
	}
	if code, _, _ := r.do("GET", "/healthz", nil); code != 200 {
		t.Errorf("healthz while sealed: %d", code)
	}
	if code, _, _ := r.do("POST", "/kura/v1/operator/init", []byte(`{"shares":5,"threshold":3}`)); code != 401 {
		t.Errorf("init without the admin token: %d", code)
	}
	if code, _, _ := r.do("POST", "/kura/v1/operator/unseal", []byte(`{"share":"x"}`)); code != 401 {
		t.Errorf("unseal without the admin token: %d", code)
	}
	if code, _ := opPost(r, "/kura/v1/operator/init", map[string]int{"shares": 3, "threshold": 4}); code != 400 {
		t.Errorf("threshold above shares: %d", code)
	}
	adm := []string{"Authorization", "Bearer " + r.admin}
	for _, c := range []struct {
		body string
		code int
	}{
		{`{"shares":5,`, 400}, {`{"shares":5,"threshold":3,"extra":1}`, 400}, {`{"shares":5,"threshold":3}{}`, 400}, {`{"shares":5,"threshold":3}]`, 400},
		{`{"shares":300,"threshold":3}`, 400}, {`{"shares":5,"threshold":1}`, 400}, {`{"shares":"5","threshold":3}`, 400},
		{`{"shares":5,"threshold":3,"pad":"` + strings.Repeat("x", 70<<10) + `"}`, 413},
	} {
		if code, resp, _ := r.do("POST", "/kura/v1/operator/init", []byte(c.body), adm...); code != c.code {
			t.Errorf("init %.60s: %d %s, want %d", c.body, code, resp, c.code)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "seal", "root.sealed")); err == nil {
		t.Fatal("a refused init left a root behind")
	}
	code, out := opPost(r, "/kura/v1/operator/init", map[string]int{"shares": 5, "threshold": 3})
	if code != 200 {
		t.Fatalf("init: %d %v", code, out)
	}
	var shares []string
	for _, s := range out["shares"].([]any) {
		shares = append(shares, s.(string))
	}
	if len(shares) != 5 || !r.srv.Unsealed() {
		t.Fatalf("init gave %d shares, unsealed %v", len(shares), r.srv.Unsealed())
	}
	if code, _ := opPost(r, "/kura/v1/operator/init", map[string]int{"shares": 5, "threshold": 3}); code != 409 {
		t.Errorf("second init: %d", code)
	}
	// The unseal key is nowhere on disk: only the sealed root and the
	// commitment are.
	for _, s := range shares {
		for _, f := range []string{"seal/root.sealed", "seal/unseal.json", "kura.db"} {
			b, _ := os.ReadFile(filepath.Join(dir, f))
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds a share", f)
			}
		}
	}
	// Store a key, then restart: sealed again; the key survives unsealing.
	code, resp, _ = r.do("POST", "/keys/k/create?api-version=2025-07-01", []byte(`{"kty":"EC","crv":"P-256"}`), "Authorization", "Bearer "+r.admin)
	if code != 200 {
		t.Fatalf("create key: %d %s", code, resp)
	}
	r.srv.Close()

	r = openServer(t, cfg)
	defer r.srv.Close()
	code, resp, h = r.do("GET", "/keys/k/?api-version=2025-07-01", nil, "Authorization", "Bearer "+r.admin)
	if code != 503 {
		t.Fatalf("key read while sealed: %d", code)
	}
	if _, msg := errBody(t, resp, h); !strings.Contains(msg, "kura operator unseal") {
		t.Errorf("sealed message %q", msg)
	}
	// Malformed, duplicate and wrong shares are refused.
	if code, _ := opPost(r, "/kura/v1/operator/unseal", map[string]string{"share": "kura-share-v1:AAAA"}); code != 400 {
		t.Errorf("malformed share: %d", code)
	}
	opPost(r, "/kura/v1/operator/unseal", map[string]string{"share": shares[0]})
	if code, _ := opPost(r, "/kura/v1/operator/unseal", map[string]string{"share": shares[0]}); code != 400 {
		t.Errorf("duplicate share: %d", code)
	}
	code, st := opPost(r, "/kura/v1/operator/unseal", map[string]string{"share": shares[1]})
	if code != 200 || st["sealed"] != true || st["progress"].(float64) != 2 {
		t.Fatalf("two of three shares: %d %v", code, st)
	}
	short, _ := seal.Split(bytes.Repeat([]byte{9}, 16), 5, 3)
	if code, resp := opPost(r, "/kura/v1/operator/unseal", map[string]string{"share": short[2].String()}); code != 400 || !strings.Contains(fmt.Sprint(resp), "not the 32") {
		t.Errorf("a share of another length: %d %v", code, resp)
	}
	_, sb, _ := r.do("GET", "/kura/v1/operator/status", nil)
	var stat map[string]any
	json.Unmarshal(sb, &stat)
	if p, _ := stat["progress"].(float64); p != 2 {
		t.Errorf("progress after a refused share: %s", sb)
	}
	foreign, _ := seal.Split(bytes.Repeat([]byte{9}, 32), 5, 3)
	if code, _ := opPost(r, "/kura/v1/operator/unseal", map[string]string{"share": foreign[2].String()}); code != 400 {
		t.Fatalf("a wrong third share: %d", code)
	}
	if r.srv.Unsealed() {
		t.Fatal("unsealed with a wrong share")
	}
	for _, s := range []string{shares[4], shares[2], shares[0]} {
		opPost(r, "/kura/v1/operator/unseal", map[string]string{"share": s})
	}
	if !r.srv.Unsealed() {
		t.Fatal("three right shares did not unseal")
	}
	if code, resp, _ := r.do("GET", "/keys/k/?api-version=2025-07-01", nil, "Authorization", "Bearer "+r.admin); code != 200 {
		t.Fatalf("key after unseal: %d %s", code, resp)
	}

	// The seal files are lost: the server starts sealed and uninitialised,
	// and init refuses to make a new root over the sealed data.
	r.srv.Close()
	if err := os.RemoveAll(filepath.Join(dir, "seal")); err != nil {
		t.Fatal(err)
	}
	r = openServer(t, cfg)
	defer r.srv.Close()
	code, out = opPost(r, "/kura/v1/operator/init", map[string]int{"shares": 5, "threshold": 3})
	if code != 409 || !strings.Contains(fmt.Sprint(out), "restore seal/root.sealed") {
		t.Errorf("init over sealed data without its root: %d %v", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "seal", "root.sealed")); err == nil {
		t.Error("a new root was made over sealed data")
	}
}

// TestRootNotReplacedOverData: with an unseal key file, a missing sealed
// root is an error at start when the database holds sealed data, not a
// fresh root under which nothing opens.
func TestRootNotReplacedOverData(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Dev, cfg.DataDir = true, dir
	srv, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	root := filepath.Join(dir, "seal", "root.sealed")
	if err := os.Remove(root); err != nil {
		t.Fatal(err)
	}
	_, err = New(context.Background(), cfg, slog.New(slog.DiscardHandler), time.Now)
	if err == nil || !strings.Contains(err.Error(), "restore it") {
		t.Fatalf("start without the root over sealed data: %v", err)
	}
	if _, err := os.Stat(root); err == nil {
		t.Error("a new root was made over sealed data")
	}
	// An empty database still gets its root on first start.
	fresh := cfg
	fresh.DataDir = t.TempDir()
	srv, err = New(context.Background(), fresh, slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatalf("first start: %v", err)
	}
	srv.Close()
}

// TestPKCS11Seal: with the root in an HSM (SoftHSM2), kura creates keys,
// restarts, and still uses them.
func TestPKCS11Seal(t *testing.T) {
	module, token, pin := sealtest.SoftHSM(t)
	dir := t.TempDir()
	cfg := sealedConfig(t, dir)
	cfg.Seal, cfg.PKCS11Module, cfg.PKCS11Token, cfg.PKCS11PIN = "pkcs11", module, token, pin
	r := openServer(t, cfg)
	if !r.srv.Unsealed() {
		t.Fatal("an HSM-rooted server did not unseal itself")
	}
	auth := []string{"Authorization", "Bearer " + r.admin}
	code, resp, _ := r.do("POST", "/keys/hsm/create?api-version=2025-07-01", []byte(`{"kty":"RSA","key_size":2048}`), auth...)
	if code != 200 {
		t.Fatalf("create: %d %s", code, resp)
	}
	digest := bytes.Repeat([]byte{1}, 32)
	body, _ := json.Marshal(map[string]string{"alg": "RS256", "value": b64u(digest)})
	code, sig1, _ := r.do("POST", "/keys/hsm/sign?api-version=2025-07-01", body, auth...)
	if code != 200 {
		t.Fatalf("sign: %d %s", code, sig1)
	}
	r.srv.Close()
	if _, err := os.Stat(filepath.Join(dir, "seal", "root.sealed")); err == nil {
		t.Error("an HSM-rooted server wrote a software root")
	}

	r = openServer(t, cfg)
	defer r.srv.Close()
	code, sig2, _ := r.do("POST", "/keys/hsm/sign?api-version=2025-07-01", body, auth...)
	if code != 200 || !bytes.Equal(sig1, sig2) { // RSA PKCS#1 v1.5 signatures are deterministic
		t.Fatalf("sign after restart: %d %s", code, sig2)
	}

	// Another key label on the same token: the root is not there, and
	// kura does not make a new one over sealed data.
	other := cfg
	other.PKCS11KeyLabel = "kura-root-elsewhere"
	r.srv.Close()
	if _, err := New(context.Background(), other, slog.New(slog.DiscardHandler), time.Now); err == nil || !strings.Contains(err.Error(), "no root key labelled") {
		t.Errorf("missing HSM root over sealed data: %v", err)
	}

	// The wrong PIN: the server refuses to start.
	bad := cfg
	bad.PKCS11PIN = "0000"
	r.srv.Close()
	if _, err := New(context.Background(), bad, slog.New(slog.DiscardHandler), time.Now); err == nil || strings.Contains(err.Error(), "0000") {
		t.Errorf("wrong PIN: %v", err)
	}
}

// TestSealedServerChecksConfigAtStart: configuration that is only used once
// unsealed is still checked when a sealed server starts.
func TestSealedServerChecksConfigAtStart(t *testing.T) {
	garbage := filepath.Join(t.TempDir(), "not-a-cert.pem")
	os.WriteFile(garbage, []byte("not PEM"), 0o600)
	for _, c := range []struct {
		name string
		edit func(*config.Config)
		want string
	}{
		{"trust root", func(c *config.Config) { c.TrustRoots = []string{garbage} }, "trust root " + garbage},
		{"missing trust root", func(c *config.Config) { c.TrustRoots = []string{garbage + ".missing"} }, "trust root"},
		{"policy signer", func(c *config.Config) { c.PolicySigners = []string{garbage + ".missing"} }, "policy signer"},
		{"release authority", func(c *config.Config) { c.ReleaseAuthorities = []string{"http://maa.example"} }, "must be an https URL"},
		{"oidc issuer", func(c *config.Config) { c.OIDCIssuers, c.OIDCAudience = []string{"idp.example"}, "kura" }, "must be an https URL"},
		{"oidc CA", func(c *config.Config) { c.OIDCCAFile = garbage }, "holds no PEM certificate"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := sealedConfig(t, t.TempDir())
			c.edit(&cfg)
			_, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler), time.Now)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("start: %v, want an error with %q", err, c.want)
			}
		})
	}
}

// TestOperatorSealAndRekey: an operator seals a running kura (503 until
// unsealed again, the data intact), and rekeys it: new shares for the same
// root, the old ones useless once the new ones are verified.
func TestOperatorSealAndRekey(t *testing.T) {
	r := openServer(t, sealedConfig(t, t.TempDir()))
	code, out := opPost(r, "/kura/v1/operator/init", map[string]int{"shares": 3, "threshold": 2})
	if code != 200 {
		t.Fatalf("init: %d %v", code, out)
	}
	strs := func(v any) []string {
		var s []string
		for _, x := range v.([]any) {
			s = append(s, x.(string))
		}
		return s
	}
	old := strs(out["shares"])
	adm := []string{"Authorization", "Bearer " + r.admin}
	if code, resp, _ := r.do("POST", "/keys/k/create?api-version=2025-07-01", []byte(`{"kty":"EC","crv":"P-256"}`), adm...); code != 200 {
		t.Fatalf("create key: %d %s", code, resp)
	}
	getKey := func() int {
		code, _, _ := r.do("GET", "/keys/k?api-version=2025-07-01", nil, adm...)
		return code
	}
	unseal := func(shares ...string) (int, map[string]any) {
		var code int
		var out map[string]any
		for _, s := range shares {
			code, out = opPost(r, "/kura/v1/operator/unseal", map[string]string{"share": s})
		}
		return code, out
	}

	if code, _, _ := r.do("POST", "/kura/v1/operator/seal", []byte(`{}`)); code != 401 {
		t.Errorf("seal without the admin token: %d", code)
	}
	if code, out := opPost(r, "/kura/v1/operator/seal", map[string]any{}); code != 200 || out["sealed"] != true {
		t.Fatalf("seal: %d %v", code, out)
	}
	if r.srv.Unsealed() || getKey() != 503 {
		t.Fatalf("after seal: unsealed %v, get key %d", r.srv.Unsealed(), getKey())
	}
	if code, _, _ := r.do("GET", "/readyz", nil); code != 503 {
		t.Errorf("readyz while sealed: %d", code)
	}
	// While sealed the admin token reads the metrics (kura_sealed 1); a
	// principal's token cannot be checked without the root: 503, not 401.
	if code, body, _ := r.do("GET", "/metrics", nil, adm...); code != 200 || !strings.Contains(string(body), "kura_sealed 1") {
		t.Errorf("metrics while sealed: %d", code)
	}
	if code, _, _ := r.do("GET", "/metrics", nil, "Authorization", "Bearer kura_at_some-principal"); code != 503 {
		t.Errorf("a principal's metrics scrape while sealed: %d, want 503", code)
	}
	if code, out := unseal(old[2], old[0]); code != 200 || out["sealed"] != false || getKey() != 200 {
		t.Fatalf("unseal after seal: %d %v, get key %d", code, out, getKey())
	}

	// Malformed rekey requests: a 400 each, nothing started or counted.
	for _, c := range []struct{ path, body string }{
		{"/kura/v1/operator/rekey/init", `{"shares":2,"threshold":3}`}, {"/kura/v1/operator/rekey/init", `{"shares":"4"}`},
		{"/kura/v1/operator/rekey/init", `{"shares":4,"threshold":2,"x":1}`}, {"/kura/v1/operator/rekey", `{"share":"not-a-share"}`},
		{"/kura/v1/operator/rekey", `{"share":`},
	} {
		if code, resp, _ := r.do("POST", c.path, []byte(c.body), adm...); code != 400 {
			t.Errorf("%s %s: %d %s", c.path, c.body, code, resp)
		}
	}
	if _, st, _ := r.do("GET", "/kura/v1/operator/status", nil); strings.Contains(string(st), `"rekey"`) {
		t.Errorf("a refused request left a rekey: %s", st)
	}
	// Rekey: two current shares, then two new ones.
	if code, out := opPost(r, "/kura/v1/operator/rekey/init", map[string]int{"shares": 4, "threshold": 2}); code != 200 || out["rekey"] == nil {
		t.Fatalf("rekey init: %d %v", code, out)
	}
	opPost(r, "/kura/v1/operator/rekey", map[string]string{"share": old[1]})
	code, out = opPost(r, "/kura/v1/operator/rekey", map[string]string{"share": old[2]})
	if code != 200 || out["new_shares"] == nil {
		t.Fatalf("rekey step 1: %d %v", code, out)
	}
	fresh := strs(out["new_shares"])
	if len(fresh) != 4 {
		t.Fatalf("%d new shares", len(fresh))
	}
	opPost(r, "/kura/v1/operator/rekey", map[string]string{"share": fresh[3]})
	if code, out := opPost(r, "/kura/v1/operator/rekey", map[string]string{"share": fresh[0]}); code != 200 || out["done"] != true {
		t.Fatalf("rekey step 2: %d %v", code, out)
	}
	if getKey() != 200 {
		t.Error("the running kura lost its keys in the rekey")
	}
	opPost(r, "/kura/v1/operator/seal", map[string]any{})
	if code, out := unseal(old[0], old[1]); code != 400 || r.srv.Unsealed() {
		t.Errorf("old shares after the rekey: %d %v", code, out)
	}
	if code, out := unseal(fresh[1], fresh[2]); code != 200 || !r.srv.Unsealed() || getKey() != 200 {
		t.Fatalf("new shares: %d %v, get key %d", code, out, getKey())
	}
}

// TestSealRefusedForSelfUnsealingRoots: a root that opens itself (here the
// dev key file) cannot be sealed from the API; kura says to stop it.
func TestSealRefusedForSelfUnsealingRoots(t *testing.T) {
	r := newRig(t, time.Now())
	code, resp, _ := r.do("POST", "/kura/v1/operator/seal", []byte(`{}`), r.admin_()...)
	if code != 400 || !strings.Contains(string(resp), "stop kura instead") || !r.srv.Unsealed() {
		t.Errorf("seal of a key-file root: %d %s", code, resp)
	}
}
