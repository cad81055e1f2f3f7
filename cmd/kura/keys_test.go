package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"golang.org/x/mod/sumdb/note"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/config"
	"github.com/kura-project/kura/internal/evidence"
	"github.com/kura-project/kura/internal/server"
)

// devServer runs kura in dev mode on loopback for CLI tests; opts edit
// its configuration.
func devServer(t *testing.T, opts ...func(*config.Config)) (url, data string) {
	t.Helper()
	data = t.TempDir()
	cfg := config.Default()
	cfg.DataDir, cfg.Dev, cfg.Addr = data, true, "127.0.0.1:0"
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := server.New(context.Background(), cfg, slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrc, done := make(chan net.Addr, 1), make(chan error, 1)
	go func() { done <- srv.Serve(ctx, func(a net.Addr) { addrc <- a }) }()
	url = "https://" + (<-addrc).String()
	t.Cleanup(func() { cancel(); <-done; srv.Close() })
	return url, data
}

func TestKeysAndAuthCLI(t *testing.T) {
	url, data := devServer(t)
	k := func(args ...string) map[string]any {
		t.Helper()
		out, err := runKura(t, append(args, "--url", url, "--data", data)...)
		if err != nil {
			t.Fatalf("kura %v: %v", args, err)
		}
		var v map[string]any
		json.Unmarshal([]byte(out), &v)
		return v
	}
	p := k("auth", "create", "--name", "ci-app", "--role", "crypto-user")
	if p["client_secret"] == nil || p["id"] == nil {
		t.Fatalf("auth create: %v", p)
	}
	k("auth", "grant", "--id", p["id"].(string), "--role", "auditor", "--scope", "/keys/k1")
	if got := k("auth", "get", "--id", p["id"].(string)); len(got["roles"].([]any)) != 2 {
		t.Errorf("roles: %v", got["roles"])
	}
	created := k("keys", "create", "--name", "k1", "--kty", "EC", "--crv", "P-256", "--tags", "team=a")
	if created["key"] == nil {
		t.Fatalf("keys create: %v", created)
	}
	d := sha256.Sum256([]byte("hello"))
	dg := base64.RawURLEncoding.EncodeToString(d[:])
	sig := k("keys", "sign", "--name", "k1", "--alg", "ES256", "--value", dg)
	ok := k("keys", "verify", "--name", "k1", "--alg", "ES256", "--digest", dg, "--value", sig["value"].(string))
	if ok["value"] != true {
		t.Errorf("verify: %v", ok)
	}
	backup := filepath.Join(t.TempDir(), "k1.backup")
	if _, err := runKura(t, "keys", "backup", "--name", "k1", "--file", backup, "--url", url, "--data", data); err != nil {
		t.Fatal(err)
	}
	k("keys", "delete", "--name", "k1")
	if _, err := runKura(t, "keys", "purge", "--name", "k1", "--url", url, "--data", data); err != nil {
		t.Fatal(err)
	}
	k("keys", "restore", "--file", backup)
	if got := k("keys", "get", "--name", "k1"); got["key"] == nil {
		t.Errorf("after restore: %v", got)
	}
	_, err := runKura(t, "keys", "get", "--name", "nope", "--url", url, "--data", data)
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("unknown key: %v", err)
	}
	out, err := runKura(t, "operator", "status", "--url", url, "--data", data)
	if err != nil || !strings.Contains(out, "unsealed") {
		t.Errorf("operator status: %v %q", err, out)
	}
}

// TestAttestSend: `attest send --type T` posts a body to /attest/T of a
// running kura and prints the token's claims; `attest snp` is its SevSnpVm
// alias; an unknown type is the server's 400, and no type a usage error.
func TestAttestSend(t *testing.T) {
	url, data := devServer(t)
	dir := t.TempDir()
	rt := filepath.Join(dir, "rt.json")
	os.WriteFile(rt, []byte(`{"keys":[{"kid":"k1","kty":"RSA","e":"AQAB","n":"AQAB"}]}`), 0o600)
	body := filepath.Join(dir, "body.json")
	if _, err := runKura(t, "sim", "snp", "--data", data, "--runtime-data", rt, "--out", body); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"attest", "send", "--type", "sevsnpvm"}, {"attest", "snp"}} {
		out, err := runKura(t, append(args, "--url", url, "--data", data, body)...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if !strings.Contains(out, `"x-ms-attestation-type": "sevsnpvm"`) {
			t.Errorf("%v: claims %s", args, out)
		}
	}
	// KURA_ADDR (host:port) and KURA_CACERT stand in for --url and --ca, as
	// VAULT_ADDR and VAULT_CACERT do; --data is not needed then.
	t.Setenv("KURA_ADDR", strings.TrimPrefix(url, "https://"))
	t.Setenv("KURA_CACERT", filepath.Join(data, "tls", "ca.pem"))
	if out, err := runKura(t, "attest", "send", "--type", "SevSnpVm", "--data", t.TempDir(), body); err != nil || !strings.Contains(out, "x-ms-attestation-type") {
		t.Errorf("with KURA_ADDR and KURA_CACERT: %v %s", err, out)
	}
	t.Setenv("KURA_CACERT", "")
	if _, err := runKura(t, "attest", "send", "--type", "SevSnpVm", "--data", t.TempDir(), body); err == nil {
		t.Error("without the CA the dev server's certificate was trusted")
	}
	if _, err := runKura(t, "attest", "send", "--type", "NoSuchTee", "--url", url, "--data", data, body); err == nil || !strings.Contains(err.Error(), "NoSuchTee") {
		t.Errorf("unknown type: %v", err)
	}
	var ee *exitError
	if _, err := runKura(t, "attest", "send", "--url", url, "--data", data, body); !asExit(err, &ee) || ee.code != 2 {
		t.Errorf("no type: %v, want a usage error", err)
	}
}

// TestCollateralImportThroughAPI: with --url, `kura collateral import`
// sends each file to the running server (administrator role), which files
// it as an offline import would; a file that is no collateral is refused with the reason.
func TestCollateralImportThroughAPI(t *testing.T) {
	url, data := devServer(t)
	t.Setenv("KURA_ADDR", "")
	t.Setenv("KURA_DATA", "")
	t.Setenv("KURA_TOKEN", "")
	common := []string{"--url", url, "--ca", filepath.Join(data, "tls", "ca.pem"), "--token-file", filepath.Join(data, "dev", "admin-token")}
	roots := filepath.Join(evidence.Dir(t), "amd-roots", "ask_ark_milan.pem")
	out, err := runKura(t, append(append([]string{"collateral", "import"}, common...), roots)...)
	if err != nil || !strings.Contains(out, "imported 1 item(s) into "+url) {
		t.Fatalf("import through the API: %v\n%s", err, out)
	}
	junk := filepath.Join(t.TempDir(), "junk.pem")
	os.WriteFile(junk, []byte("not collateral"), 0o600)
	_, err = runKura(t, append(append([]string{"collateral", "import"}, common...), junk)...)
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "junk.pem") || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "neither an X.509 certificate nor a CRL") {
		t.Errorf("junk through the API: %v", err)
	}
	// Without the administrator's token: refused.
	empty := filepath.Join(t.TempDir(), "tok")
	os.WriteFile(empty, []byte("kura_at_not-a-token"), 0o600)
	_, err = runKura(t, "collateral", "import", "--url", url, "--ca", filepath.Join(data, "tls", "ca.pem"), "--token-file", empty, roots)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("import without an administrator: %v", err)
	}
}

// TestLedgerCLI: the entry of a change, fetched with `kura ledger get`,
// verifies offline with the key `kura ledger key` printed; an edited entry
// does not.
func TestLedgerCLI(t *testing.T) {
	url, data := devServer(t)
	t.Setenv("KURA_ADDR", url)
	t.Setenv("KURA_DATA", data)
	t.Setenv("KURA_TOKEN", "")
	if _, err := runKura(t, "keys", "create", "--name", "k", "--kty", "EC", "--crv", "P-256"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	key, err := runKura(t, "ledger", "key")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "ledger.key")
	os.WriteFile(keyFile, []byte(key), 0o600)
	cp, err := runKura(t, "ledger", "checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	var size int64
	fmt.Sscanf(strings.Split(cp, "\n")[1], "%d", &size)
	entry, err := runKura(t, "ledger", "get", "--seq", fmt.Sprint(size-1))
	if err != nil {
		t.Fatal(err)
	}
	entryFile := filepath.Join(dir, "entry.json")
	os.WriteFile(entryFile, []byte(entry), 0o600)
	out, err := runKura(t, "ledger", "verify", "--key-file", keyFile, entryFile)
	if err != nil || !strings.Contains(out, "verified: entry") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	var e map[string]any
	json.Unmarshal([]byte(entry), &e)
	e["contents"] = base64.StdEncoding.EncodeToString([]byte(`{"action":"key.delete"}`))
	edited, _ := json.Marshal(e)
	os.WriteFile(entryFile, edited, 0o600)
	if _, err := runKura(t, "ledger", "verify", "--key-file", keyFile, entryFile); exitCode(err) != 1 {
		t.Errorf("an edited entry: %v", err)
	}
	cpFile := filepath.Join(dir, "checkpoint")
	os.WriteFile(cpFile, []byte(cp), 0o600)
	if out, err := runKura(t, "ledger", "verify", "--key-file", keyFile, cpFile); err != nil || !strings.Contains(out, "verified: checkpoint") {
		t.Errorf("verify a checkpoint: %v %s", err, out)
	}
	os.WriteFile(cpFile, []byte(strings.Replace(cp, fmt.Sprint(size), fmt.Sprint(size+1), 1)), 0o600)
	if _, err := runKura(t, "ledger", "verify", "--key-file", keyFile, cpFile); exitCode(err) != 1 {
		t.Errorf("an edited checkpoint: %v", err)
	}

	// append, list, receipt (the ACL API), tail (the tiles).
	var ids []string
	for i := range 3 {
		id, err := runKura(t, "ledger", "append", "--collection", "cli", fmt.Sprintf("entry %d", i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, strings.TrimSpace(id))
	}
	list, err := runKura(t, "ledger", "list", "--collection", "cli")
	if err != nil || strings.Count(list, "\n") != 3 || !strings.Contains(list, `"contents":"entry 2"`) || !strings.Contains(list, ids[2]) {
		t.Errorf("list: %v\n%s", err, list)
	}
	if list, err := runKura(t, "ledger", "list", "--collection", "cli", "--from", ids[1]); err != nil || strings.Count(list, "\n") != 2 {
		t.Errorf("list --from: %v\n%s", err, list)
	}
	rc, err := runKura(t, "ledger", "receipt", "--id", ids[0])
	if err != nil || !strings.Contains(rc, `"writeSetDigest"`) {
		t.Errorf("receipt: %v %s", err, rc)
	}
	if _, err := runKura(t, "ledger", "receipt", "--id", "x"); exitCode(err) != 2 {
		t.Errorf("receipt of a bad id: %v", err)
	}
	if _, err := runKura(t, "ledger", "append", "--collection", "kura-audit", "x"); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("append to kura's own collection: %v", err)
	}
	tail, err := runKura(t, "ledger", "tail", "--key-file", keyFile, "--count", "1")
	if err != nil || !strings.Contains(tail, "checkpoint ") || !strings.Contains(tail, `"collection":"cli"`) {
		t.Errorf("tail: %v\n%s", err, tail)
	}
	// A key that is not the log's: the first checkpoint is refused.
	other := filepath.Join(dir, "other.key")
	_, vk, _ := note.GenerateKey(nil, "kura.test/other")
	os.WriteFile(other, []byte(vk), 0o600)
	if _, err := runKura(t, "ledger", "tail", "--key-file", other, "--count", "1"); err == nil {
		t.Error("tail with another log's key")
	}
}
