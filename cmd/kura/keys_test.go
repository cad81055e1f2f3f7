package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/config"
	"github.com/kura-project/kura/internal/server"
)

// devServer runs kura in dev mode on loopback for CLI tests.
func devServer(t *testing.T) (url, data string) {
	t.Helper()
	data = t.TempDir()
	cfg := config.Default()
	cfg.DataDir, cfg.Dev, cfg.Addr = data, true, "127.0.0.1:0"
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
