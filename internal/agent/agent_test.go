package agent_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/agent"
	"github.com/kura-project/kura/internal/agent/simsource"
	"github.com/kura-project/kura/internal/attest/intelsim"
	"github.com/kura-project/kura/internal/attest/sim"
	"github.com/kura-project/kura/internal/config"
	"github.com/kura-project/kura/internal/server"
)

type env struct {
	url, dir, admin string
	http            *http.Client
}

func start(t *testing.T) *env {
	t.Helper()
	probe, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := probe.Addr().String()
	probe.Close()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir, cfg.Dev, cfg.Addr = dir, true, addr
	srv, err := server.New(context.Background(), cfg, slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan net.Addr, 1), make(chan error, 1)
	go func() { done <- srv.Serve(ctx, func(a net.Addr) { ready <- a }) }()
	<-ready
	ca, _ := os.ReadFile(filepath.Join(dir, "tls", "ca.pem"))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	admin, _ := os.ReadFile(filepath.Join(dir, "dev", "admin-token"))
	e := &env{url: "https://" + addr, dir: dir, admin: strings.TrimSpace(string(admin)),
		http: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
	t.Cleanup(func() { e.http.CloseIdleConnections(); cancel(); <-done; srv.Close() })
	return e
}

func (e *env) call(t *testing.T, method, path string, body any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, e.url+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+e.admin)
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	var out map[string]any
	json.Unmarshal(raw, &out)
	return out
}

// TestAgentReleasesToFilesAndSocket runs the agent on the simulated TEE
// against a dev kura: an AES key and an EC key are released, written with
// mode 0600, and served on the Unix socket.
func TestAgentReleasesToFilesAndSocket(t *testing.T) {
	e := start(t)
	policy, _ := json.Marshal(map[string]any{"version": "1.0.0", "anyOf": []any{map[string]any{"authority": e.url,
		"allOf": []any{map[string]any{"claim": "x-ms-sevsnpvm-is-debuggable", "equals": false}}}}})
	rp := map[string]any{"data": base64.RawURLEncoding.EncodeToString(policy)}
	e.call(t, "POST", "/keys/aes/create?api-version=2025-07-01", map[string]any{"kty": "oct-HSM", "key_size": 256, "attributes": map[string]bool{"exportable": true}, "release_policy": rp})
	e.call(t, "POST", "/keys/ec/create?api-version=2025-07-01", map[string]any{"kty": "EC-HSM", "crv": "P-384", "attributes": map[string]bool{"exportable": true}, "release_policy": rp})
	p := e.call(t, "POST", "/kura/v1/principals", map[string]string{"name": "agent", "role": "release-user"})
	a, err := sim.Load(filepath.Join(e.dir, "sim"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "keys")
	sock := filepath.Join(t.TempDir(), "kura.sock")
	ag, err := agent.New(agent.Config{URL: e.url, HTTP: e.http, ClientID: p["id"].(string), ClientSecret: p["client_secret"].(string),
		Keys: []agent.KeyRef{{Name: "aes"}, {Name: "ec"}}, Enc: "RSA_AES_KEY_WRAP_384", Source: simsource.Source{Authority: a}, OutDir: out, Socket: sock})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx, false) }() // long-running: keeps the socket up
	var k *agent.Released
	for i := 0; i < 100; i++ {
		if k, _ = ag.Key("ec"); k != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if k == nil {
		t.Fatal("keys were not released")
	}
	if _, err := k.PrivateKey(); err != nil {
		t.Errorf("released EC key does not parse: %v", err)
	}
	aes, _ := ag.Key("aes")
	if len(aes.Material) != 32 {
		t.Errorf("AES key is %d bytes", len(aes.Material))
	}
	for _, name := range []string{"aes", "ec"} {
		st, err := os.Stat(filepath.Join(out, name))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s file: %v %v", name, err, st)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(out, "aes")); !bytes.Equal(b, aes.Material) {
		t.Error("AES file content differs")
	}
	uc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := uc.Get("http://agent/keys/ec")
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(pemBytes), "BEGIN PRIVATE KEY") {
		t.Errorf("socket: %d", resp.StatusCode)
	}
	if resp, _ := uc.Get("http://agent/keys/nope"); resp.StatusCode != 404 {
		t.Errorf("unknown key on the socket: %d", resp.StatusCode)
	}
	if st, _ := os.Stat(sock); st.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v", st.Mode().Perm())
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("agent run: %v", err)
	}

	// A debuggable guest is refused with the reason.
	bad, _ := agent.New(agent.Config{URL: e.url, HTTP: e.http, ClientID: p["id"].(string), ClientSecret: p["client_secret"].(string),
		Keys: []agent.KeyRef{{Name: "aes"}}, Source: simsource.Source{Authority: a, Debug: true}, OutDir: t.TempDir()})
	err = bad.Run(context.Background(), true)
	var se *agent.ServerError
	if !errorsAs(err, &se) || se.Status != 403 || !strings.Contains(se.Message, "is-debuggable") {
		t.Errorf("debuggable guest: %v", err)
	}

	// An existing output directory must already be private: the agent does
	// not change its mode or write into it.
	shared := t.TempDir()
	os.Chmod(shared, 0o755)
	ag2, _ := agent.New(agent.Config{URL: e.url, HTTP: e.http, ClientID: p["id"].(string), ClientSecret: p["client_secret"].(string),
		Keys: []agent.KeyRef{{Name: "aes"}}, Source: simsource.Source{Authority: a}, OutDir: shared})
	if err := ag2.Run(context.Background(), true); err == nil || !strings.Contains(err.Error(), "not a private directory") {
		t.Errorf("a 0755 output directory: %v", err)
	}
	if st, _ := os.Stat(shared); st.Mode().Perm() != 0o755 {
		t.Errorf("the agent changed the directory's mode to %v", st.Mode().Perm())
	}
	if entries, _ := os.ReadDir(shared); len(entries) != 0 {
		t.Errorf("the agent wrote %d files into a shared directory", len(entries))
	}
}

func errorsAs(err error, target **agent.ServerError) bool {
	for err != nil {
		if e, ok := err.(*agent.ServerError); ok {
			*target = e
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

func TestParseKeyRefAndRenew(t *testing.T) {
	for _, c := range []struct {
		in   string
		want agent.KeyRef
		ok   bool
	}{{"k", agent.KeyRef{Name: "k"}, true}, {"k/0123456789abcdef0123456789abcdef", agent.KeyRef{Name: "k", Version: "0123456789abcdef0123456789abcdef"}, true}, {"k/abc", agent.KeyRef{}, false}, {"..", agent.KeyRef{}, false}, {"a b", agent.KeyRef{}, false}, {"k/../x", agent.KeyRef{}, false}, {"", agent.KeyRef{}, false}, {"/v", agent.KeyRef{}, false}, {"a/b/c", agent.KeyRef{}, false}} {
		got, err := agent.ParseKeyRef(c.in)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("%q: %v %v", c.in, got, err)
		}
	}
	now := time.Unix(1000, 0)
	if d := agent.RenewAfter(now, now.Add(8*time.Hour)); d != 384*time.Minute {
		t.Errorf("renew after %v for an 8 h token", d)
	}
	if d := agent.RenewAfter(now, now.Add(time.Second)); d != 30*time.Second {
		t.Errorf("renew floor: %v", d)
	}
}

func TestVerifyReleaseJWSRefusesTampering(t *testing.T) {
	for _, bad := range []string{"", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30.AAAA"} {
		if _, err := agent.VerifyReleaseJWS(bad, nil); err == nil {
			t.Errorf("%q verified", bad)
		}
	}
}

// TestNewRefusesBadConfig: a misconfigured agent stops before it attests.
func TestNewRefusesBadConfig(t *testing.T) {
	src := simsource.Source{}
	keys := []agent.KeyRef{{Name: "k"}}
	for name, c := range map[string]agent.Config{
		"no url":    {Source: src, Keys: keys, OutDir: t.TempDir()},
		"no source": {URL: "https://kura", Keys: keys, OutDir: t.TempDir()},
		"no keys":   {URL: "https://kura", Source: src, OutDir: t.TempDir()},
		"no output": {URL: "https://kura", Source: src, Keys: keys},
		"bad enc":   {URL: "https://kura", Source: src, Keys: keys, OutDir: t.TempDir(), Enc: "RSA-OAEP"},
	} {
		if _, err := agent.New(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// failingTransport fails every request while fail is set (kura restarting).
type failingTransport struct {
	next http.RoundTripper
	fail atomic.Bool
}

func (f *failingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if f.fail.Load() {
		return nil, errors.New("connection refused (test)")
	}
	return f.next.RoundTrip(r)
}

// TestAgentRenewalRetries: a long-running agent renews before its token
// expires; when a renewal fails it keeps serving the keys it has and retries
// with a doubling backoff, back to the renewal schedule once kura answers.
func TestAgentRenewalRetries(t *testing.T) {
	e := start(t)
	p, a := releasable(t, e)
	tr := &failingTransport{next: e.http.Transport}
	out := filepath.Join(t.TempDir(), "keys")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var waits []time.Duration
	var during [][]byte // the key file as the workload sees it during each wait
	ag, err := agent.New(agent.Config{URL: e.url, HTTP: &http.Client{Transport: tr}, ClientID: p["id"].(string), ClientSecret: p["client_secret"].(string),
		Keys: []agent.KeyRef{{Name: "aes"}}, Source: simsource.Source{Authority: a}, OutDir: out,
		Wait: func(_ context.Context, d time.Duration) bool {
			waits = append(waits, d)
			b, _ := os.ReadFile(filepath.Join(out, "aes"))
			during = append(during, b)
			switch len(waits) {
			case 1: // after the first release: kura goes away for two rounds
				tr.fail.Store(true)
			case 3: // kura is back
				tr.fail.Store(false)
			case 4:
				cancel()
				return false
			}
			return true
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ag.Run(ctx, false); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(waits) != 4 {
		t.Fatalf("waits %v", waits)
	}
	// A dev kura issues 8 h tokens: renew at 80 % of that.
	renew := func(d time.Duration) bool { return d > 6*time.Hour && d <= 8*time.Hour*4/5 }
	if !renew(waits[0]) || waits[1] != 5*time.Second || waits[2] != 10*time.Second || !renew(waits[3]) {
		t.Errorf("waits %v, want [~6h24m 5s 10s ~6h24m]", waits)
	}
	for i, b := range during {
		if len(b) != 32 {
			t.Errorf("during wait %d the key file holds %d bytes", i, len(b))
		}
	}
	if k, _ := ag.Key("aes"); k == nil || !bytes.Equal(k.Material, during[0]) {
		t.Error("the renewed key differs from the first release")
	}
}

// TestAgentFirstRoundFailsLoudly: without a first release, a long-running
// agent stops with the error instead of retrying quietly.
func TestAgentFirstRoundFailsLoudly(t *testing.T) {
	e := start(t)
	a, err := sim.Load(filepath.Join(e.dir, "sim"))
	if err != nil {
		t.Fatal(err)
	}
	tr := &failingTransport{next: e.http.Transport}
	tr.fail.Store(true)
	waited := false
	ag, err := agent.New(agent.Config{URL: e.url, HTTP: &http.Client{Transport: tr}, ClientID: "x", ClientSecret: "y",
		Keys: []agent.KeyRef{{Name: "aes"}}, Source: simsource.Source{Authority: a}, OutDir: t.TempDir(),
		Wait: func(context.Context, time.Duration) bool { waited = true; return true }})
	if err != nil {
		t.Fatal(err)
	}
	if err := ag.Run(context.Background(), false); err == nil || !strings.Contains(err.Error(), "connection refused (test)") {
		t.Errorf("Run: %v", err)
	}
	if waited {
		t.Error("the agent retried a first round")
	}
}

// releasable makes an exportable AES key "aes" released to a
// non-debuggable guest, and a release-user principal "agent"; it returns
// the principal and the simulated TEE.
func releasable(t *testing.T, e *env) (map[string]any, *sim.Authority) {
	t.Helper()
	policy, _ := json.Marshal(map[string]any{"version": "1.0.0", "anyOf": []any{map[string]any{"authority": e.url,
		"allOf": []any{map[string]any{"claim": "x-ms-sevsnpvm-is-debuggable", "equals": false}}}}})
	e.call(t, "POST", "/keys/aes/create?api-version=2025-07-01", map[string]any{"kty": "oct-HSM", "key_size": 256,
		"attributes": map[string]bool{"exportable": true}, "release_policy": map[string]any{"data": base64.RawURLEncoding.EncodeToString(policy)}})
	p := e.call(t, "POST", "/kura/v1/principals", map[string]string{"name": "agent", "role": "release-user"})
	a, err := sim.Load(filepath.Join(e.dir, "sim"))
	if err != nil {
		t.Fatal(err)
	}
	return p, a
}

// TestAgentReleasesOnTDX runs the agent on the simulated Intel TDX guest
// against a dev kura, under a release policy on TDX claims: the key is
// released; a debuggable TD is refused with the rule.
func TestAgentReleasesOnTDX(t *testing.T) {
	e := start(t)
	policy, _ := json.Marshal(map[string]any{"version": "1.0.0", "anyOf": []any{map[string]any{"authority": e.url,
		"allOf": []any{map[string]any{"claim": "x-ms-attestation-type", "equals": "tdxvm"}, map[string]any{"claim": "tdx_td_attributes_debug", "equals": false}}}}})
	rp := map[string]any{"data": base64.RawURLEncoding.EncodeToString(policy)}
	e.call(t, "POST", "/keys/td/create?api-version=2025-07-01", map[string]any{"kty": "oct-HSM", "key_size": 256, "attributes": map[string]bool{"exportable": true}, "release_policy": rp})
	p := e.call(t, "POST", "/kura/v1/principals", map[string]string{"name": "agent", "role": "release-user"})
	a, err := intelsim.Load(filepath.Join(e.dir, "sim"))
	if err != nil {
		t.Fatal(err)
	}
	for _, debug := range []bool{false, true} {
		ag, err := agent.New(agent.Config{URL: e.url, HTTP: e.http, ClientID: p["id"].(string), ClientSecret: p["client_secret"].(string),
			Keys: []agent.KeyRef{{Name: "td"}}, Source: simsource.TDX{Authority: a, Debug: debug}, OutDir: filepath.Join(t.TempDir(), "keys")})
		if err != nil {
			t.Fatal(err)
		}
		err = ag.Run(context.Background(), true)
		if !debug {
			if k, _ := ag.Key("td"); err != nil || k == nil || len(k.Material) != 32 {
				t.Fatalf("TD release: %v", err)
			}
			continue
		}
		var se *agent.ServerError
		if !errorsAs(err, &se) || se.Status != 403 || !strings.Contains(se.Message, "tdx_td_attributes_debug") {
			t.Errorf("debuggable TD: %v", err)
		}
	}
}
