package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kura-project/kura/internal/attest/snp"
	"github.com/kura-project/kura/internal/evidence"
)

func runKura(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	return out.String(), err
}

// recordedBody writes a SevSnpVm request for real evidence to a file.
func recordedBody(t *testing.T, dir, report, vcek string, runtime []byte) string {
	rep := evidence.Read(t, report)[:snp.ReportSize]
	bundle := snp.Bundle{SnpReport: base64.RawURLEncoding.EncodeToString(rep)}
	if vcek != "" {
		p := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: evidence.Read(t, vcek)})
		bundle.VcekCertChain = base64.StdEncoding.EncodeToString(p)
	}
	bb, _ := json.Marshal(bundle)
	req := map[string]any{"report": base64.RawURLEncoding.EncodeToString(bb)}
	if runtime != nil {
		req["runtimeData"] = map[string]string{"data": base64.RawURLEncoding.EncodeToString(runtime), "dataType": "JSON"}
	}
	b, _ := json.Marshal(req)
	f := filepath.Join(dir, filepath.Base(report)+".json")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestAttestVerifyOffline: an auditor re-checks recorded evidence at its own
// date, with and without collateral in the data directory.
func TestAttestVerifyOffline(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	runtime := evidence.Read(t, "snp/milan-azure-constellation/runtimedata.bin")
	body := recordedBody(t, dir, "snp/milan-azure-constellation/attestation.bin", "snp/milan-azure-constellation/vcek.cert", runtime)
	out, err := runKura(t, "attest", "verify", "--type", "SevSnpVm", "--at", "2026-01-01T00:00:00Z", "--data", data, body)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal([]byte(out), &claims); err != nil {
		t.Fatalf("output is not JSON claims: %v\n%s", err, out)
	}
	if claims["x-ms-sevsnpvm-idkeydigest"] != "57e229e0ffe5fa92d0faddff6cae0e61c926fc9ef9afd20a8b8cfcf7129db9338cbe5bf3f6987733a2bf65d06dc38fc1" {
		t.Errorf("claims: %v", claims["x-ms-sevsnpvm-idkeydigest"])
	}

	// VLEK: verifies inside its year, refused after it with the reason.
	vlek := recordedBody(t, dir, "snp/vlek-milan-aws-openanolis/test-vlek-report.bin", "snp/vlek-milan-aws-openanolis/test-vlek.der", nil)
	if _, err := runKura(t, "attest", "verify", "--at", "2024-12-01T00:00:00Z", "--data", data, vlek); err != nil {
		t.Errorf("VLEK inside its validity: %v", err)
	}
	_, err = runKura(t, "attest", "verify", "--at", "2025-06-01T00:00:00Z", "--data", data, vlek)
	if err == nil || !strings.Contains(err.Error(), "VLEK expired at 2025-05-05T21:14:27Z") {
		t.Errorf("expired VLEK: %v", err)
	}
	var ee *exitError
	if !asExit(err, &ee) || ee.code != 1 {
		t.Errorf("exit code: %v", err)
	}

	// Without a VCEK in the body it fails until the VCEK is imported.
	bare := recordedBody(t, dir, "snp/turin/turin-report.bin", "", nil)
	if _, err := runKura(t, "attest", "verify", "--at", "2026-09-01T00:00:00Z", "--data", data, bare); err == nil || !strings.Contains(err.Error(), "kura collateral import") {
		t.Fatalf("before import: %v", err)
	}
	vcekFile := filepath.Join(evidence.Dir(t), "snp/turin/turin-vcek.der")
	if out, err := runKura(t, "collateral", "import", "--data", data, vcekFile); err != nil || !strings.Contains(out, "imported 1") {
		t.Fatalf("import: %v %s", err, out)
	}
	if _, err := runKura(t, "attest", "verify", "--at", "2026-09-01T00:00:00Z", "--data", data, bare); err != nil {
		t.Errorf("after import: %v", err)
	}
	// --store names the database both commands use: an import into another
	// database is not seen through the data directory's, and is through --store.
	other := "sqlite:" + filepath.Join(dir, "other.db")
	bare2 := recordedBody(t, dir, "snp/turin/turin-report.bin", "", nil)
	if _, err := runKura(t, "attest", "verify", "--at", "2026-09-01T00:00:00Z", "--data", data, "--store", other, bare2); err == nil {
		t.Errorf("verify against an empty --store database found the VCEK")
	}
	if _, err := runKura(t, "collateral", "import", "--data", data, "--store", other, vcekFile); err != nil {
		t.Fatal(err)
	}
	if _, err := runKura(t, "attest", "verify", "--at", "2026-09-01T00:00:00Z", "--data", data, "--store", other, bare2); err != nil {
		t.Errorf("after import into --store: %v", err)
	}
	if _, err := runKura(t, "collateral", "import", "--data", data, filepath.Join(evidence.Dir(t), "amd-roots/ask_ark_milan.pem")); err != nil {
		t.Errorf("AMD's pinned ASK/ARK: %v", err)
	}
	// An ARK that is not pinned is never learned from collateral.
	rt := filepath.Join(dir, "rt")
	os.WriteFile(rt, []byte("x"), 0o600)
	if _, err := runKura(t, "sim", "snp", "--data", data, "--runtime-data", rt, "--out", filepath.Join(dir, "b.json")); err != nil {
		t.Fatal(err)
	}
	_, err = runKura(t, "collateral", "import", "--data", data, filepath.Join(data, "sim", "ark.pem"))
	if err == nil || !strings.Contains(err.Error(), "trust anchor") {
		t.Errorf("unpinned ARK import: %v", err)
	}
}

func asExit(err error, ee **exitError) bool {
	e, ok := err.(*exitError)
	if ok {
		*ee = e
	}
	return ok
}

// TestSimAndVerify: `kura sim snp` evidence verifies offline only when the
// simulator is trusted explicitly.
func TestSimAndVerify(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	rt := filepath.Join(dir, "rt.json")
	os.WriteFile(rt, []byte(`{"keys":[{"kid":"k1","kty":"RSA","e":"AQAB","n":"AQAB"}]}`), 0o600)
	body := filepath.Join(dir, "body.json")
	if _, err := runKura(t, "sim", "snp", "--data", data, "--runtime-data", rt, "--out", body, "--nonce", "abc"); err != nil {
		t.Fatal(err)
	}
	if _, err := runKura(t, "attest", "verify", "--data", data, body); err == nil || !strings.Contains(err.Error(), "not signed by any trusted ASK-Milan") {
		t.Errorf("untrusted simulator: %v", err)
	}
	out, err := runKura(t, "attest", "verify", "--trust-simulator", "--data", data, body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"kid": "k1"`) || !strings.Contains(out, `"x-kura-simulated": true`) || !strings.Contains(out, `"nonce": "abc"`) {
		t.Errorf("claims: %s", out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"attest"}, {"attest", "x"}, {"sim", "tdx"}, {"attest", "verify"}, {"sim", "snp"}, {"serve", "--token-alg", "none"},
		{"bench", "attest", "-clients", "0"}, {"bench", "keys", "-duration", "-1s"}, {"bench", "release", "-clients", "5000"}, {"bench", "attest", "-alg", "HS256"}, {"bench", "attest", "-tee", "cca"}, {"bench", "nope"},
		{"keys", "update", "--name", "k", "--enabled", "yes"}} {
		_, err := runKura(t, args...)
		var ee *exitError
		if !asExit(err, &ee) || ee.code != 2 {
			t.Errorf("%v: %v, want a usage error (exit 2)", args, err)
		}
	}
}

// TestDemo runs `kura demo`: the released key decrypts the secret and the
// debuggable guest is refused with the failing claim named.
func TestDemo(t *testing.T) {
	out, err := runKura(t, "demo")
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	for _, want := range []string{`plaintext: "the launch code is 0000"`, "403 Forbidden", "x-ms-sevsnpvm-is-debuggable equals false, actual true", "mode 0600"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}

// TestBenchPrintsFloors runs the attestation and release benchmarks briefly:
// each figure must come with the floor and kura's own crypto, measured in
// the same run. (No timing is asserted; the numbers are the product.)
func TestBenchPrintsFloors(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers and measures for a second")
	}
	out, err := runKura(t, "bench", "attest", "-alg", "ES256", "-duration", "200ms", "-clients", "2")
	if err != nil {
		t.Fatalf("bench attest: %v\n%s", err, out)
	}
	for _, want := range []string{"floor: crypto/ecdsa P-384 verify + ES256 sign", "kura's crypto: cached-VCEK table verify", "attestations/s", "% of the crypto/ecdsa floor (issue #2's aim: >= 80%)", "% of kura's own crypto"} {
		if !strings.Contains(out, want) {
			t.Errorf("bench attest output lacks %q:\n%s", want, out)
		}
	}
	for _, tee := range []string{"tdx", "sgx"} {
		out, err = runKura(t, "bench", "attest", "-tee", tee, "-alg", "ES256", "-duration", "200ms", "-clients", "2")
		if err != nil {
			t.Fatalf("bench attest -tee %s: %v\n%s", tee, err, out)
		}
		for _, want := range []string{"floor: quote + QE report P-256 verify", "without caches:", "attestations/s", "% of the floor", "the uncached cost"} {
			if !strings.Contains(out, want) {
				t.Errorf("bench attest -tee %s output lacks %q:\n%s", tee, want, out)
			}
		}
	}
	out, err = runKura(t, "bench", "release", "-duration", "200ms", "-clients", "2")
	if err != nil {
		t.Fatalf("bench release: %v\n%s", err, out)
	}
	for _, want := range []string{"floor: crypto/ecdsa P-384 verify", "kura's crypto:", "attest + release over HTTPS", "% of the crypto/ecdsa floor", "% of kura's own crypto"} {
		if !strings.Contains(out, want) {
			t.Errorf("bench release output lacks %q:\n%s", want, out)
		}
	}
}

// TestHelpAndVersion: -h on a command or a command group is help asked for
// (exit 0) and lists that group's subcommands; version prints kura's build.
func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"serve", "-h"}, {"keys", "-h"}, {"auth", "--help"}, {"operator", "help"}, {"attest", "-h"}} {
		var out, errb bytes.Buffer
		err := run(context.Background(), args, &out, &errb)
		if code := exitCode(err); code != 0 {
			t.Errorf("%v: exit %d (%v)", args, code, err)
		}
		if args[0] != "serve" && !strings.Contains(out.String(), "kura "+args[0]+" ") {
			t.Errorf("%v: help does not list the group's subcommands:\n%s", args, out.String())
		}
		if args[0] == "keys" && strings.Contains(out.String(), "kura auth") {
			t.Errorf("keys -h lists other groups:\n%s", out.String())
		}
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := runKura(t, args...)
		if err != nil || !strings.HasPrefix(out, "kura ") || !strings.Contains(out, "go1.") {
			t.Errorf("%v: %q, %v", args, out, err)
		}
	}
	if code := exitCode(&exitError{2, errors.New("usage")}); code != 2 {
		t.Errorf("usage error exit %d", code)
	}
}

// TestDataDirLikeServe: a command that reads the data directory finds it
// as kura serve does: --data, else KURA_DATA, else the config file's
// data_dir (--config or KURA_CONFIG), else ./kura-data.
func TestDataDirLikeServe(t *testing.T) {
	dir := t.TempDir()
	rt := filepath.Join(dir, "rt.json")
	os.WriteFile(rt, []byte(`{"keys":[]}`), 0o600)
	fromFile, fromEnv, fromFlag := filepath.Join(dir, "file-data"), filepath.Join(dir, "env-data"), filepath.Join(dir, "flag-data")
	cfgFile := filepath.Join(dir, "kura.json")
	os.WriteFile(cfgFile, []byte(`{"data_dir":"`+fromFile+`","dev":true}`), 0o600)
	simIn := func(t *testing.T, want string, args ...string) {
		t.Helper()
		args = append([]string{"sim", "snp", "--runtime-data", rt, "--out", filepath.Join(dir, "b.json")}, args...)
		out, err := runKura(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, filepath.Join(want, "sim")) {
			t.Errorf("%v: %s", args, out)
		}
		if _, err := os.Stat(filepath.Join(want, "sim")); err != nil {
			t.Errorf("no simulated root in %s", want)
		}
	}
	t.Setenv("KURA_DATA", "")
	t.Setenv("KURA_CONFIG", "")
	t.Run("--config", func(t *testing.T) { simIn(t, fromFile, "--config", cfgFile) })
	t.Run("KURA_CONFIG", func(t *testing.T) {
		t.Setenv("KURA_CONFIG", cfgFile)
		simIn(t, fromFile)
	})
	t.Run("KURA_DATA over the file", func(t *testing.T) {
		t.Setenv("KURA_CONFIG", cfgFile)
		t.Setenv("KURA_DATA", fromEnv)
		simIn(t, fromEnv)
	})
	t.Run("--data over everything", func(t *testing.T) {
		t.Setenv("KURA_CONFIG", cfgFile)
		t.Setenv("KURA_DATA", fromEnv)
		simIn(t, fromFlag, "--data", fromFlag)
	})
	t.Run("the config file's store", func(t *testing.T) {
		db := filepath.Join(dir, "elsewhere.db")
		cf := filepath.Join(dir, "store.json")
		os.WriteFile(cf, []byte(`{"data_dir":"`+fromFile+`","store":"sqlite:`+db+`"}`), 0o600)
		roots := filepath.Join(evidence.Dir(t), "amd-roots", "ask_ark_milan.pem")
		if _, err := runKura(t, "collateral", "import", "--config", cf, roots); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(db); err != nil {
			t.Errorf("collateral import did not use the config file's store: %v", err)
		}
	})
	t.Run("a config file that is not JSON", func(t *testing.T) {
		bad := filepath.Join(dir, "bad.json")
		os.WriteFile(bad, []byte("data_dir = x"), 0o600)
		if _, err := runKura(t, "sim", "snp", "--runtime-data", rt, "--out", filepath.Join(dir, "b.json"), "--config", bad); err == nil || !strings.Contains(err.Error(), "bad.json") {
			t.Errorf("bad config file: %v", err)
		}
	})
}

// TestSubcommandFlags: `-h` on a subcommand lists only its own flags (and
// the client flags) and exits 0; a flag of another subcommand is refused.
func TestSubcommandFlags(t *testing.T) {
	for _, c := range []struct {
		args      []string
		has, hasn []string
	}{
		{[]string{"keys", "create", "-h"}, []string{"-kty", "-crv", "-release-policy", "-url", "-api-version"}, []string{"-digest", "-jwk", "-count", "-iv"}},
		{[]string{"keys", "verify", "-h"}, []string{"-digest", "-alg", "-value"}, []string{"-kty", "-tags"}},
		{[]string{"auth", "grant", "-h"}, []string{"-id", "-role", "-scope"}, []string{"-name", "-oidc-subject", "-api-version"}},
	} {
		var out, errb bytes.Buffer
		err := run(context.Background(), c.args, &out, &errb)
		if code := exitCode(err); code != 0 {
			t.Errorf("%v: exit %d", c.args, code)
		}
		text := out.String() + errb.String()
		for _, f := range c.has {
			if !strings.Contains(text, "  "+f+" ") && !strings.Contains(text, "  "+f+"\n") {
				t.Errorf("%v does not list %s:\n%s", c.args, f, text)
			}
		}
		for _, f := range c.hasn {
			if strings.Contains(text, "  "+f+" ") || strings.Contains(text, "  "+f+"\n") {
				t.Errorf("%v lists %s, which it does not take", c.args, f)
			}
		}
	}
	_, err := runKura(t, "keys", "get", "--name", "k", "--kty", "EC")
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "keys get does not take --kty") {
		t.Errorf("a flag of another subcommand: %v", err)
	}
}

// TestSimIntelAndVerify: `kura sim tdx` (v4 and v5) and `kura sim sgx`
// evidence verifies offline, runtime data bound, only when the simulator
// is trusted explicitly.
func TestSimIntelAndVerify(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	rt := filepath.Join(dir, "rt.json")
	os.WriteFile(rt, []byte(`{"keys":[{"kid":"k1","kty":"RSA","e":"AQAB","n":"AQAB"}]}`), 0o600)
	for _, c := range []struct {
		sim, typ, claim string
		extra           []string
	}{
		{"tdx", "TdxVm", `"x-ms-attestation-type": "tdxvm"`, nil},
		{"tdx", "TdxVm", `"tdx_mrservicetd"`, []string{"--v5"}},
		{"sgx", "SgxEnclave", `"x-ms-attestation-type": "sgx"`, nil},
	} {
		body := filepath.Join(dir, c.sim+".json")
		args := append([]string{"sim", c.sim, "--data", data, "--runtime-data", rt, "--out", body, "--nonce", "abc"}, c.extra...)
		if _, err := runKura(t, args...); err != nil {
			t.Fatal(err)
		}
		if _, err := runKura(t, "attest", "verify", "--type", c.typ, "--data", data, body); err == nil || !strings.Contains(err.Error(), "only with --dev or trust_simulator") {
			t.Errorf("%s: untrusted simulator: %v", c.typ, err)
		}
		out, err := runKura(t, "attest", "verify", "--type", c.typ, "--trust-simulator", "--data", data, body)
		if err != nil {
			t.Fatalf("%s %v: %v", c.typ, c.extra, err)
		}
		for _, want := range []string{`"kid": "k1"`, `"x-kura-simulated": true`, `"nonce": "abc"`, `"attester_tcb_status": "UpToDate"`, c.claim} {
			if !strings.Contains(out, want) {
				t.Errorf("%s %v: claims lack %s: %s", c.typ, c.extra, want, out)
			}
		}
	}
	if _, err := runKura(t, "sim", "sgx", "--v5", "--runtime-data", rt, "--out", filepath.Join(dir, "x")); err == nil {
		t.Error("sim sgx --v5 accepted")
	}
}
