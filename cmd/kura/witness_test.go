package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/kura-project/kura/internal/config"
)

// TestLedgerLitewitness: kura's ledger witnessed by litewitness (Filippo
// Valsorda's C2SP tlog-witness implementation, torchwood v0.6.1, built
// from interop/litewitness): once the witness knows the log, the
// published checkpoint carries its cosignature, `kura ledger verify
// --witness` checks it (and refuses another witness's key), later
// checkpoints reach the witness with consistency proofs it accepts, and
// with the witness gone kura keeps appending and keeps publishing the
// last cosigned checkpoint.
//
// It needs ssh-agent (the witness's key lives there) and the module
// cache or proxy for torchwood; without them it skips, unless
// KURA_REQUIRE_LITEWITNESS=1.
func TestLedgerLitewitness(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds litewitness")
	}
	dir := t.TempDir()
	bin := buildLitewitness(t, dir)
	// The witness's Ed25519 key, in a dedicated ssh-agent.
	key := filepath.Join(dir, "witness-key")
	mustRun(t, exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kura-test-witness", "-f", key))
	sock := filepath.Join(dir, "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	waitFor(t, "ssh-agent's socket", func() bool { _, err := os.Stat(sock); return err == nil })
	add := exec.Command("ssh-add", key)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	mustRun(t, add)
	fp := strings.Fields(mustRun(t, exec.Command("ssh-keygen", "-l", "-E", "sha256", "-f", key+".pub")))
	if len(fp) < 2 || !strings.HasPrefix(fp[1], "SHA256:") {
		t.Fatalf("fingerprint: %q", fp)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	waddr := l.Addr().String()
	l.Close()
	db := filepath.Join(dir, "witness.db")
	lw := exec.Command(filepath.Join(bin, "litewitness"), "-name", "witness.kura.test/w1", "-db", db,
		"-ssh-agent", sock, "-key", fp[1], "-listen", waddr)
	stderr, err := lw.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := lw.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			lw.Process.Kill()
			lw.Wait()
		}
	})
	vkeyc := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`vkey="?([^" ]+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				vkeyc <- m[1]
			}
		}
	}()
	var wkey string
	select {
	case wkey = <-vkeyc:
	case <-time.After(30 * time.Second):
		t.Fatal("litewitness printed no verifier key")
	}
	waitFor(t, "litewitness listening", func() bool {
		c, err := net.Dial("tcp", waddr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	url, data := devServer(t, func(c *config.Config) {
		c.LedgerWitnesses = []string{"http://" + waddr + " " + wkey}
		c.LedgerWitnessInterval = config.Duration(200 * time.Millisecond)
	})
	t.Setenv("KURA_ADDR", url)
	t.Setenv("KURA_DATA", data)
	t.Setenv("KURA_TOKEN", "")
	logKey, err := runKura(t, "ledger", "key")
	if err != nil {
		t.Fatal(err)
	}
	logKey = strings.TrimSpace(logKey)
	keyFile := filepath.Join(dir, "ledger.key")
	os.WriteFile(keyFile, []byte(logKey), 0o600)
	origin, _, _ := strings.Cut(logKey, "+")
	ctl := filepath.Join(bin, "witnessctl")
	mustRun(t, exec.Command(ctl, "add-log", "-db", db, "-origin", origin))
	mustRun(t, exec.Command(ctl, "add-key", "-db", db, "-origin", origin, "-key", logKey))

	// Writes, and the published checkpoint is cosigned.
	if _, err := runKura(t, "keys", "create", "--name", "k1", "--kty", "EC", "--crv", "P-256"); err != nil {
		t.Fatal(err)
	}
	cosig := "— witness.kura.test/w1 "
	cp := waitCheckpoint(t, func(cp string, size int64) bool { return strings.Contains(cp, cosig) })
	cpFile := filepath.Join(dir, "checkpoint")
	os.WriteFile(cpFile, []byte(cp), 0o600)
	out, err := runKura(t, "ledger", "verify", "--key-file", keyFile, "--witness", wkey, cpFile)
	if err != nil || !strings.Contains(out, "cosigned by witness.kura.test/w1") {
		t.Fatalf("verify the cosigned checkpoint: %v\n%s", err, out)
	}
	// Another witness's key: refused.
	_, other, err := note.GenerateKey(rand.Reader, "witness.kura.test/w1")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := runKura(t, "ledger", "verify", "--key-file", keyFile, "--witness", other, cpFile); exitCode(err) != 1 {
		t.Errorf("a checkpoint verified against another witness key: %v %s", err, out)
	}
	// An entry in the cosigned tree: its receipt carries the cosignature.
	entry, err := runKura(t, "ledger", "get", "--seq", "0")
	if err != nil {
		t.Fatal(err)
	}
	entryFile := filepath.Join(dir, "entry.json")
	os.WriteFile(entryFile, []byte(entry), 0o600)
	if out, err := runKura(t, "ledger", "verify", "--key-file", keyFile, "--witness", wkey, entryFile); err != nil || !strings.Contains(out, "cosigned by") {
		t.Errorf("verify a cosigned receipt: %v\n%s", err, out)
	}

	// More writes: litewitness takes the next checkpoint with a
	// consistency proof, and its own record of the log is kura's tree.
	first := checkpointSize(cp)
	if _, err := runKura(t, "keys", "create", "--name", "k2", "--kty", "EC", "--crv", "P-256"); err != nil {
		t.Fatal(err)
	}
	cp = waitCheckpoint(t, func(cp string, size int64) bool { return size > first && strings.Contains(cp, cosig) })
	var logs struct {
		Origin string `json:"origin"`
		Size   int64  `json:"size"`
		Root   string `json:"root_hash"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, exec.Command(ctl, "list-logs", "-db", db))), &logs); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(cp, "\n"); logs.Origin != origin || logs.Size != checkpointSize(cp) || logs.Root != lines[2] {
		t.Errorf("the witness holds %+v; kura published\n%s", logs, cp)
	}

	// The witness gone: writes go on, the last cosigned checkpoint stays
	// published.
	lw.Process.Kill()
	lw.Wait()
	stopped = true
	if _, err := runKura(t, "keys", "create", "--name", "k3", "--kty", "EC", "--crv", "P-256"); err != nil {
		t.Fatalf("a write with the witness down: %v", err)
	}
	time.Sleep(600 * time.Millisecond) // three witnessing rounds
	if got, err := runKura(t, "ledger", "checkpoint"); err != nil || got != cp {
		t.Errorf("published with the witness down: %v\n%s\nwant\n%s", err, got, cp)
	}
}

// buildLitewitness builds litewitness and witnessctl into dir/bin.
func buildLitewitness(t *testing.T, dir string) string {
	t.Helper()
	need := func(what string, err error) {
		if err == nil {
			return
		}
		if os.Getenv("KURA_REQUIRE_LITEWITNESS") == "1" {
			t.Fatalf("%s: %v", what, err)
		}
		t.Skipf("%s: %v (KURA_REQUIRE_LITEWITNESS=1 makes this a failure)", what, err)
	}
	for _, tool := range []string{"ssh-agent", "ssh-add", "ssh-keygen"} {
		_, err := exec.LookPath(tool)
		need(tool+" (openssh-client)", err)
	}
	bin := filepath.Join(dir, "bin")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin+string(os.PathSeparator), "filippo.io/torchwood/cmd/litewitness", "filippo.io/torchwood/cmd/witnessctl")
	cmd.Dir = filepath.Join("..", "..", "interop", "litewitness")
	out, err := cmd.CombinedOutput()
	if err != nil {
		err = fmt.Errorf("%v\n%s", err, out)
	}
	need("building litewitness (interop/litewitness)", err)
	return bin
}

func mustRun(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("%s: %v\n%s%s", strings.Join(cmd.Args, " "), err, out, stderr)
	}
	return string(out)
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !ok(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitCheckpoint polls `kura ledger checkpoint` until ok holds.
func waitCheckpoint(t *testing.T, ok func(cp string, size int64) bool) string {
	t.Helper()
	var cp string
	waitFor(t, "a cosigned checkpoint", func() bool {
		var err error
		cp, err = runKura(t, "ledger", "checkpoint")
		return err == nil && ok(cp, checkpointSize(cp))
	})
	return cp
}

func checkpointSize(cp string) int64 {
	var n int64
	if lines := strings.Split(cp, "\n"); len(lines) > 1 {
		fmt.Sscanf(lines[1], "%d", &n)
	}
	return n
}
