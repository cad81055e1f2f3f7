package main

import (
	"bytes"
	"context"
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

// tryItCommands returns the kura command lines of the README's "Try it"
// block, continuation lines joined and comments dropped. Every line must
// be a kura command, so that this test can run all of them.
func tryItCommands(t *testing.T, readme string) [][]string {
	t.Helper()
	_, rest, ok := strings.Cut(readme, "## Try it")
	if !ok {
		t.Fatal("README has no Try it section")
	}
	_, rest, ok = strings.Cut(rest, "```sh\n")
	if !ok {
		t.Fatal("Try it has no sh block")
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("unterminated sh block")
	}
	block = strings.ReplaceAll(block, "\\\n", " ")
	var cmds [][]string
	for _, line := range strings.Split(block, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.Index(line, " # "); i >= 0 {
			line = line[:i]
		}
		if strings.ContainsAny(line, `'"$|<>;&*`+"`") {
			t.Errorf("Try it line needs a shell to run, so it cannot be checked: %s", line)
			continue
		}
		args, ok := strings.CutPrefix(line, "go run ./cmd/kura ")
		if !ok {
			t.Errorf("Try it line is not a kura command: %s", line)
			continue
		}
		cmds = append(cmds, strings.Fields(args))
	}
	return cmds
}

// TestReadmeTryIt runs the README's "Try it" commands, as written, against
// a --dev kura whose data directory is ./kura-data, from a directory that
// holds the repository's examples/ (the benchmarks are left out: they take
// minutes and have their own test). The only change to a line is the
// server's URL, since the test's kura listens on a free port.
func TestReadmeTryIt(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	cmds := tryItCommands(t, string(readme))
	work := t.TempDir()
	if err := os.CopyFS(filepath.Join(work, "examples"), os.DirFS("../../examples")); err != nil {
		t.Fatal(err)
	}
	t.Chdir(work)
	for _, k := range []string{"KURA_ADDR", "KURA_CACERT", "KURA_DATA", "KURA_TOKEN", "KURA_CONFIG", "KURA_CLIENT_ID", "KURA_CLIENT_SECRET"} {
		t.Setenv(k, "")
	}
	cfg := config.Default()
	cfg.DataDir, cfg.Dev, cfg.Addr, cfg.Issuer = "kura-data", true, "127.0.0.1:0", "https://127.0.0.1:8443"
	srv, err := server.New(context.Background(), cfg, slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrc, done := make(chan net.Addr, 1), make(chan error, 1)
	go func() { done <- srv.Serve(ctx, func(a net.Addr) { addrc <- a }) }()
	url := "https://" + (<-addrc).String()
	t.Cleanup(func() { cancel(); <-done; srv.Close() })
	t.Setenv("KURA_ADDR", url) // the README's server is at the default address

	ran := 0
	var outputs []string
	for _, args := range cmds {
		if args[0] == "bench" {
			continue
		}
		for i, a := range args {
			args[i] = strings.ReplaceAll(a, "https://127.0.0.1:8443", url)
		}
		var out, errb bytes.Buffer
		if err := run(context.Background(), args, &out, &errb); err != nil {
			t.Fatalf("kura %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
		}
		outputs = append(outputs, strings.Join(args, " ")+"\n"+out.String())
		ran++
	}
	// The second attestation ran under examples/appraisal-policy.txt.
	vmpl := false
	for _, o := range outputs {
		if strings.HasPrefix(o, "attest send") && strings.Contains(o, `"vmpl"`) {
			vmpl = true
		}
	}
	if !vmpl {
		t.Error("no attestation issued the example policy's vmpl claim")
	}
	if ran < 15 {
		t.Errorf("only %d Try it commands ran", ran)
	}
	// What the lines promise: the key released to the simulated guest, and
	// secrets in files only their owner reads.
	if st, err := os.Stat(filepath.Join("released", "secret")); err != nil || st.Mode().Perm() != 0o600 || st.Size() != 32 {
		t.Errorf("released key: %v %v", st, err)
	}
	for _, f := range []string{"my-app.secret", "tee-agent.secret"} {
		if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, st, err)
		}
	}
}
