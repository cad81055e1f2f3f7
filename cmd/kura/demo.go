package main

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kura-project/kura/internal/agent"
	"github.com/kura-project/kura/internal/agent/simsource"
	"github.com/kura-project/kura/internal/attest/sim"
	"github.com/kura-project/kura/internal/config"
	"github.com/kura-project/kura/internal/server"
)

// demo runs the whole secure-key-release path on one machine: kura in dev
// mode on a temporary data directory, an exportable key with a release
// policy, the agent on the simulated TEE, a released key decrypting a
// secret, and a denied release with its explanation.
func demo(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	keep := fs.Bool("keep", false, "keep the temporary data directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	step := func(n int, format string, a ...any) {
		fmt.Fprintf(stdout, "\n[%d] %s\n", n, fmt.Sprintf(format, a...))
	}
	dir, err := os.MkdirTemp("", "kura-demo-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}

	step(1, "Starting kura in development mode (data in %s)", dir)
	// The token issuer names the address, so pick a free port first.
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := probe.Addr().(*net.TCPAddr).Port
	probe.Close()
	cfg := config.Default()
	cfg.DataDir, cfg.Dev, cfg.Addr = dir, true, fmt.Sprintf("127.0.0.1:%d", port)
	srv, err := server.New(ctx, cfg, slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		return err
	}
	defer srv.Close()
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	addrc, done := make(chan net.Addr, 1), make(chan error, 1)
	go func() { done <- srv.Serve(sctx, func(a net.Addr) { addrc <- a }) }()
	var addr string
	select {
	case a := <-addrc:
		addr = a.String()
	case err := <-done:
		return err
	}
	defer func() { stop(); <-done }()
	url := "https://" + addr
	fmt.Fprintf(stdout, "    kura listens on %s (TLS by a generated dev CA, simulated TEE trusted)\n", url)

	c, err := clientFor(url, dir)
	if err != nil {
		return err
	}
	call := func(method, path string, body any) (map[string]any, error) {
		var raw []byte
		if body != nil {
			raw, _ = json.Marshal(body)
		}
		resp, err := c.do(ctx, method, path, "application/json", raw)
		if err != nil {
			return nil, err
		}
		var out map[string]any
		json.Unmarshal(resp, &out)
		return out, nil
	}

	step(2, "Creating an exportable AES-256 key with a release policy")
	policy := map[string]any{"version": "1.0.0", "anyOf": []any{map[string]any{
		"authority": url,
		"allOf": []any{
			map[string]any{"claim": "x-ms-attestation-type", "equals": "sevsnpvm"},
			map[string]any{"claim": "x-ms-sevsnpvm-is-debuggable", "equals": false},
			map[string]any{"claim": "x-ms-sevsnpvm-vmpl", "equals": 0},
		},
	}}}
	pj, _ := json.MarshalIndent(policy, "    ", "  ")
	fmt.Fprintf(stdout, "    policy: %s\n", pj)
	if _, err := call("POST", "/keys/demo-key/create?api-version=2025-07-01", map[string]any{
		"kty": "oct-HSM", "key_size": 256, "attributes": map[string]any{"exportable": true},
		"release_policy": map[string]any{"data": base64.RawURLEncoding.EncodeToString(mustJSON(policy))},
	}); err != nil {
		return fmt.Errorf("create key: %w", err)
	}

	step(3, "Encrypting a secret with the key inside kura (A256GCM)")
	secret := []byte("the launch code is 0000")
	enc, err := call("POST", "/keys/demo-key/encrypt?api-version=2025-07-01", map[string]string{
		"alg": "A256GCM", "value": base64.RawURLEncoding.EncodeToString(secret)})
	if err != nil {
		return fmt.Errorf("encrypt: %w", err)
	}
	ctText, _ := enc["value"].(string)
	if len(ctText) < 24 {
		return fmt.Errorf("encrypt: unexpected answer %v", enc)
	}
	fmt.Fprintf(stdout, "    ciphertext: %s…\n", ctText[:24])

	step(4, "Creating the agent's identity (role release-user: it may release keys, nothing else)")
	p, err := call("POST", "/kura/v1/principals", map[string]string{"name": "demo-agent", "role": "release-user"})
	if err != nil {
		return fmt.Errorf("principal: %w", err)
	}
	agentID, _ := p["id"].(string)
	agentSecret, _ := p["client_secret"].(string)
	if agentID == "" || agentSecret == "" {
		return errors.New("principal: the answer has no id or client_secret")
	}

	step(5, "Running the agent in the simulated TEE: ephemeral key → evidence → token → release → unwrap")
	authority, err := sim.Load(filepath.Join(dir, "sim"))
	if err != nil {
		return err
	}
	out := filepath.Join(dir, "released")
	ag, err := agent.New(agent.Config{URL: url, HTTP: c.http, ClientID: agentID, ClientSecret: agentSecret,
		Keys: []agent.KeyRef{{Name: "demo-key"}}, Source: simsource.Source{Authority: authority}, OutDir: out})
	if err != nil {
		return err
	}
	if err := ag.Run(ctx, true); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	k, ok := ag.Key("demo-key")
	if !ok {
		return errors.New("agent: demo-key was not released")
	}
	fmt.Fprintf(stdout, "    released demo-key version %s to %s (mode 0600)\n", k.Version, filepath.Join(out, "demo-key"))

	step(6, "Decrypting the secret in the TEE with the released key")
	plain, err := openGCM(k.Material, enc)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "    plaintext: %q\n", plain)
	if !bytes.Equal(plain, secret) {
		return errors.New("the released key did not decrypt the secret")
	}

	step(7, "A debuggable guest asks for the same key: denied, with the reason")
	bad, err := agent.New(agent.Config{URL: url, HTTP: c.http, ClientID: agentID, ClientSecret: agentSecret,
		Keys: []agent.KeyRef{{Name: "demo-key"}}, Source: simsource.Source{Authority: authority, Debug: true}, OutDir: filepath.Join(dir, "denied")})
	if err != nil {
		return err
	}
	err = bad.Run(ctx, true)
	var se *agent.ServerError
	if !errors.As(err, &se) || se.Status != http.StatusForbidden {
		return fmt.Errorf("the debuggable guest was not refused: %v", err)
	}
	fmt.Fprintf(stdout, "    %d %s: %s\n", se.Status, se.Code, se.Message)
	fmt.Fprintf(stdout, "\nDone. Run `kura serve --dev` to keep a kura running; see README.md for the agent, keys and policies.\n")
	return nil
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// clientFor is an HTTPS client trusting the dev CA of dir, with its admin token.
func clientFor(url, dir string) (*client, error) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	mk := clientFlags(fs)
	if err := fs.Parse([]string{"--url", url, "--data", dir}); err != nil {
		return nil, err
	}
	return mk()
}

func openGCM(key []byte, enc map[string]any) ([]byte, error) {
	dec := func(k string) []byte {
		s, _ := enc[k].(string)
		b, _ := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
		return b
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return g.Open(nil, dec("iv"), append(dec("value"), dec("tag")...), nil)
}
