package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net"
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
