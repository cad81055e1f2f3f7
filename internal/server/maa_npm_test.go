package server

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/attest/appraisal"
	"github.com/kura-project/kura/internal/certtest"
	"github.com/kura-project/kura/internal/config"
)

// TestMAAWithNpmClient drives every MAA route that Microsoft's
// @azure/attestation npm client (1.0.0, API 2020-10-01) calls, with the
// client's own token validation on and the issuer checked: the metadata,
// the signers, policy get/set (unsigned and signed)/reset, and the policy
// management certificates, in the default mode and in isolated mode.
//
// It needs node and npm, and the npm registry for the first install into
// testdata/npm/node_modules (kept for later runs). Without them it skips,
// unless KURA_REQUIRE_NPM=1.
func TestMAAWithNpmClient(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the npm interop test starts node")
	}
	dir := npmInstall(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert1, cert2 := certtest.SelfSigned(t, rsaKey, "kura npm interop signer 1"), certtest.SelfSigned(t, ecKey, "kura npm interop signer 2")
	b64 := func(c *x509.Certificate) string { return base64.StdEncoding.EncodeToString(c.Raw) }
	const policy = "version=1.0;\nauthorizationrules {\n [type==\"x-ms-sevsnpvm-is-debuggable\", value==false] => permit();\n};\nissuancerules {\n c:[type==\"x-ms-sevsnpvm-launchmeasurement\"] => issue(type=\"measurement\", value=c.value);\n};\n"
	env := []string{
		"KURA_ISSUER=" + kuraIssuer, "KURA_POLICY=" + policy,
		"KURA_KEY1_PEM=" + keyPEM(t, rsaKey), "KURA_CERT1_PEM=" + string(pemOf(cert1.Raw)),
		"KURA_KEY2_PEM=" + keyPEM(t, ecKey), "KURA_CERT2_PEM=" + string(pemOf(cert2.Raw)),
	}

	common := func(t *testing.T, out map[string]npmStep) {
		t.Helper()
		var md struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		out["getOpenIdMetadata"].must(t, &md)
		if md.Issuer != kuraIssuer || md.JWKSURI != kuraIssuer+"/certs" {
			t.Errorf("getOpenIdMetadata: %+v", md)
		}
		var signers []struct {
			KeyID        string
			Certificates int
		}
		out["getAttestationSigners"].must(t, &signers)
		if len(signers) == 0 || signers[0].KeyID == "" || signers[0].Certificates == 0 {
			t.Errorf("getAttestationSigners: %+v", signers)
		}
		var got struct {
			Length int
			Issuer string
		}
		out["getPolicy"].must(t, &got)
		if got.Length == 0 || got.Issuer != kuraIssuer {
			t.Errorf("getPolicy: %+v", got)
		}
	}
	type result struct {
		Resolution       string
		TokenHashMatches bool
		Signer           []string
		Issuer           string
	}
	checkSet := func(t *testing.T, s npmStep, name string, signer *x509.Certificate) {
		t.Helper()
		var r result
		s.must(t, &r)
		if r.Resolution != "Updated" || !r.TokenHashMatches || r.Issuer != kuraIssuer {
			t.Errorf("%s: %+v", name, r)
		}
		if signer == nil && r.Signer != nil || signer != nil && (len(r.Signer) != 1 || r.Signer[0] != b64(signer)) {
			t.Errorf("%s: x-ms-policy-signer %v, want %v", name, r.Signer, signer != nil)
		}
	}

	t.Run("default mode", func(t *testing.T) {
		l := startLive(t, issuerOpt)
		out := runNpm(t, dir, l, append(env, "KURA_MODE=default"))
		common(t, out)
		checkSet(t, out["setPolicyUnsigned"], "setPolicy unsigned", nil)
		var same bool
		out["getPolicyAfterUnsigned"].must(t, &same)
		if !same {
			t.Error("getPolicy after setPolicy did not return the policy set")
		}
		checkSet(t, out["setPolicySigned"], "setPolicy RS256", cert1)
		var reset result
		out["resetPolicy"].must(t, &reset)
		if reset.Resolution != "Removed" {
			t.Errorf("resetPolicy: %+v", reset)
		}
		var certs [][]string
		out["getPolicyManagementCertificates"].must(t, &certs)
		if len(certs) != 0 {
			t.Errorf("default mode lists policy management certificates: %v", certs)
		}
		out["addPolicyManagementCertificate"].refused(t, 409, "not in isolated mode")
	})

	t.Run("isolated mode", func(t *testing.T) {
		signers := filepath.Join(t.TempDir(), "signers.pem")
		if err := os.WriteFile(signers, pemOf(cert1.Raw), 0o600); err != nil {
			t.Fatal(err)
		}
		l := startLive(t, issuerOpt, func(c *config.Config) { c.PolicySigners = []string{signers} })
		out := runNpm(t, dir, l, append(env, "KURA_MODE=isolated"))
		common(t, out)
		set := func(name string, want ...*x509.Certificate) {
			t.Helper()
			var got [][]string
			out[name].must(t, &got)
			var w [][]string
			for _, c := range want {
				w = append(w, []string{b64(c)})
			}
			if a, b := mustJSON(got), mustJSON(w); a != b {
				t.Errorf("%s: %s, want %s", name, a, b)
			}
		}
		set("getPolicyManagementCertificates", cert1)
		out["setPolicyUnsigned"].refused(t, 400, "isolated mode")
		checkSet(t, out["setPolicySigned"], "setPolicy signed by the configured certificate", cert1)
		out["setPolicyByNonMember"].refused(t, 400, "not a policy management certificate")
		type modification struct{ Thumbprint, Result string }
		var add, remove modification
		out["addPolicyManagementCertificate"].must(t, &add)
		if add.Result != "IsPresent" || add.Thumbprint != appraisal.Thumbprint(cert2) {
			t.Errorf("addPolicyManagementCertificate: %+v", add)
		}
		set("getPolicyManagementCertificatesAfterAdd", cert1, cert2)
		checkSet(t, out["setPolicySignedByAdded"], "setPolicy ES256 by the added certificate", cert2)
		out["removePolicyManagementCertificate"].must(t, &remove)
		if remove.Result != "IsAbsent" || remove.Thumbprint != appraisal.Thumbprint(cert2) {
			t.Errorf("removePolicyManagementCertificate: %+v", remove)
		}
		out["removeLastPolicyManagementCertificate"].refused(t, 409, "last policy management certificate")
		set("getPolicyManagementCertificatesAfterRemove", cert1)
		var reset result
		out["resetPolicy"].must(t, &reset)
		if reset.Resolution != "Removed" {
			t.Errorf("resetPolicy: %+v", reset)
		}
	})
}

// npmStep is one call of the script: its value, or the error it threw.
type npmStep struct {
	OK     bool            `json:"ok"`
	Value  json.RawMessage `json:"value"`
	Error  string          `json:"error"`
	Status int             `json:"status"`
}

func (s npmStep) must(t *testing.T, v any) {
	t.Helper()
	if !s.OK {
		t.Fatalf("the client call failed: %s (status %d)", s.Error, s.Status)
	}
	if err := json.Unmarshal(s.Value, v); err != nil {
		t.Fatalf("value %s: %v", s.Value, err)
	}
}

// refused checks that the call failed with the server's status and a
// message naming the reason, not with a client-side validation problem.
func (s npmStep) refused(t *testing.T, status int, msg string) {
	t.Helper()
	if s.OK || s.Status != status || !strings.Contains(s.Error, msg) {
		t.Errorf("call: ok=%v status %d %q, want a %d naming %q", s.OK, s.Status, s.Error, status, msg)
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func keyPEM(t *testing.T, k crypto.Signer) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// npmUnavailable skips the test, or fails it under KURA_REQUIRE_NPM=1.
func npmUnavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("KURA_REQUIRE_NPM") == "1" {
		t.Fatalf("KURA_REQUIRE_NPM=1: "+format, args...)
	}
	t.Skipf(format+" (set KURA_REQUIRE_NPM=1 to fail instead)", args...)
}

// npmNetwork matches npm's errors for a registry it cannot reach.
var npmNetwork = regexp.MustCompile(`ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|network|socket hang up`)

// npmInstall installs the script's pinned dependencies (package-lock.json)
// into testdata/npm/node_modules, once, and returns the script's directory.
func npmInstall(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			npmUnavailable(t, "%s is not on PATH: the npm interop test needs Node.js and npm", tool)
		}
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "npm"))
	if err != nil {
		t.Fatal(err)
	}
	installed := func() bool {
		for _, pkg := range []string{"@azure/attestation", "@azure-rest/confidential-ledger"} {
			b, err := os.ReadFile(filepath.Join(dir, "node_modules", pkg, "package.json"))
			var p struct{ Version string }
			if err != nil || json.Unmarshal(b, &p) != nil || p.Version != "1.0.0" {
				return false
			}
		}
		return true
	}
	if installed() {
		return dir
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// npm ci installs exactly the lock file and never rewrites it.
	cmd := exec.CommandContext(ctx, "npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--fetch-timeout=30000", "--fetch-retries=1")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil || npmNetwork.Match(out) {
			npmUnavailable(t, "npm ci could not reach the npm registry: %v\n%s", err, out)
		}
		t.Fatalf("npm ci: %v\n%s", err, out)
	}
	if !installed() {
		t.Fatalf("npm ci did not install @azure/attestation 1.0.0 and @azure-rest/confidential-ledger 1.0.0:\n%s", out)
	}
	return dir
}

// runNpm runs the MAA script against l and returns its results by call.
func runNpm(t *testing.T, dir string, l *live, env []string) map[string]npmStep {
	t.Helper()
	return runScript(t, dir, "interop.mjs", l, append(env, "NODE_EXTRA_CA_CERTS="+filepath.Join(l.dir, "tls", "ca.pem")))
}

// runScript runs a node script of dir against l (with env, which says
// whether the dev CA is trusted) and returns its results by call.
func runScript(t *testing.T, dir, script string, l *live, env []string) map[string]npmStep {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", script)
	cmd.Dir = dir
	// The script talks only to kura: no proxy, and no CA but env's.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.Contains(strings.ToLower(k), "proxy") && !strings.HasPrefix(k, "NODE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Env = append(cmd.Env,
		"KURA_ENDPOINT=https://127.0.0.1:"+l.port,
		"KURA_ADMIN_TOKEN="+l.admin,
		"NO_PROXY=*",
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) || ctx.Err() != nil {
			t.Fatalf("node %s: %v\nstdout: %s\nstderr: %s", script, err, stdout.Bytes(), stderr.Bytes())
		}
		t.Fatal(err)
	}
	var out map[string]npmStep
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("script output is not JSON: %v\n%s\nstderr: %s", err, stdout.Bytes(), stderr.Bytes())
	}
	t.Logf("npm client results: %s", stdout.Bytes())
	return out
}
