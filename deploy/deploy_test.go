// Package deploy_test checks the deployment files under deploy/: the
// systemd unit keeps its hardening and passes systemd-analyze, the example
// configuration loads and matches the unit's credentials and state
// directory, and the container image builds, serves /healthz, runs as a
// non-root user and holds no shell.
//
// What needs a tool the machine may lack (systemd-analyze, a Docker daemon,
// root for chroot) skips with the reason; the checks on the files
// themselves always run.
package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/config"
)

const (
	unitFile   = "systemd/kura.service"
	configFile = "systemd/kura.json"
	dockerfile = "container/Dockerfile"
	credDir    = "/run/credentials/kura.service/"
	imageUID   = 65532
)

// unit is a parsed systemd unit: section → key → every assignment, in order.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, file string) unit {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	u := unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, `\`) {
				t.Fatalf("%s:%d: not a key=value line in a section (continuation lines are not supported here): %q", file, n, line)
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

// last is the effective value of a single-valued setting; ok is false when
// it is not set.
func (u unit) last(section, key string) (string, bool) {
	vs := u[section][key]
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

// credentials are the IDs of the unit's LoadCredential= lines.
func (u unit) credentials() map[string]bool {
	ids := map[string]bool{}
	for _, v := range u["Service"]["LoadCredential"] {
		id, _, _ := strings.Cut(v, ":")
		ids[id] = true
	}
	return ids
}

func TestSystemdUnit(t *testing.T) {
	u := parseUnit(t, unitFile)

	t.Run("hardening", func(t *testing.T) {
		// Each of these is load-bearing (README.md, "Running in
		// production"); dropping one must be a decision, not an accident.
		want := map[string]string{
			"Type":                    "exec",
			"DynamicUser":             "yes",
			"StateDirectory":          "kura",
			"ConfigurationDirectory":  "kura",
			"UMask":                   "0077",
			"NoNewPrivileges":         "yes",
			"CapabilityBoundingSet":   "", // empty: no capability at all
			"AmbientCapabilities":     "",
			"ProtectSystem":           "strict",
			"ProtectHome":             "yes",
			"PrivateTmp":              "yes",
			"PrivateDevices":          "yes",
			"ProtectKernelTunables":   "yes",
			"ProtectKernelModules":    "yes",
			"ProtectControlGroups":    "yes",
			"MemoryDenyWriteExecute":  "yes",
			"LockPersonality":         "yes",
			"RestrictNamespaces":      "yes",
			"RestrictRealtime":        "yes",
			"RestrictSUIDSGID":        "yes",
			"SystemCallArchitectures": "native",
			"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
			"LimitCORE":               "0",
		}
		for k, v := range want {
			got, ok := u.last("Service", k)
			if !ok {
				t.Errorf("[Service] %s= is missing (want %q)", k, v)
			} else if got != v {
				t.Errorf("[Service] %s=%s, want %q", k, got, v)
			}
		}
		filters := u["Service"]["SystemCallFilter"]
		if len(filters) == 0 || filters[0] != "@system-service" {
			t.Errorf("[Service] the first SystemCallFilter= is %q, want the allow list @system-service", filters)
		}
		for _, id := range []string{"tls.key", "admin-token"} {
			if !u.credentials()[id] {
				t.Errorf("[Service] no LoadCredential=%s:...; secrets reach kura as systemd credentials", id)
			}
		}
		execStart, _ := u.last("Service", "ExecStart")
		if !strings.HasPrefix(execStart, "/usr/local/bin/kura serve --config /etc/kura/kura.json") {
			t.Errorf("[Service] ExecStart=%s, want kura serve with /etc/kura/kura.json", execStart)
		}
	})

	t.Run("config", func(t *testing.T) {
		cfg, err := config.Load([]string{"--config", configFile}, func(string) string { return "" }, nil)
		if err != nil {
			t.Fatalf("%s does not load as a kura serve configuration: %v", configFile, err)
		}
		if cfg.Dev || cfg.TrustSimulator {
			t.Errorf("%s: a production example must not set dev or trust_simulator", configFile)
		}
		state, _ := u.last("Service", "StateDirectory")
		if cfg.DataDir != "/var/lib/"+state {
			t.Errorf("data_dir %q is not the unit's StateDirectory /var/lib/%s", cfg.DataDir, state)
		}
		// Every credential path the configuration names must be one the
		// unit loads, or kura would not start.
		creds := u.credentials()
		for name, path := range map[string]string{
			"tls_key": cfg.TLSKey, "admin_token_file": cfg.AdminTokenFile, "release_ca_key": cfg.ReleaseCAKey,
			"unseal_key_file": cfg.UnsealKeyFile, "pkcs11_pin_file": cfg.PKCS11PINFile,
		} {
			if id, ok := strings.CutPrefix(path, credDir); ok && !creds[id] {
				t.Errorf("%s %s: the unit has no LoadCredential=%s:...", name, path, id)
			}
		}
		for name, path := range map[string]string{"tls_key": cfg.TLSKey, "admin_token_file": cfg.AdminTokenFile} {
			if !strings.HasPrefix(path, credDir) {
				t.Errorf("%s %q: a secret should come from %s (LoadCredential=)", name, path, credDir)
			}
		}
	})

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (it comes with systemd): the unit was checked for its directives only, not verified by systemd")
	}
	// systemd-analyze verify insists that ExecStart's binary exists: check
	// a copy of the unit whose ExecStart names this test binary instead.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	copyFile := filepath.Join(dir, "kura.service")
	rewritten := strings.Replace(string(b), "\nExecStart=/usr/local/bin/kura ", "\nExecStart="+self+" ", 1)
	if rewritten == string(b) {
		t.Fatal("ExecStart=/usr/local/bin/kura not found in the unit")
	}
	if err := os.WriteFile(copyFile, []byte(rewritten), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("verify", func(t *testing.T) {
		out, err := run(t, 30*time.Second, "", analyze, "verify", "--man=no", copyFile)
		// verify exits 0 on unknown keys and unparsable values, which it
		// only prints: any line about the unit is a failure.
		var bad []string
		for line := range strings.Lines(out) {
			if strings.Contains(line, "kura.service") || strings.Contains(line, dir) {
				bad = append(bad, strings.TrimSpace(line))
			}
		}
		switch {
		case err != nil:
			t.Errorf("systemd-analyze verify %s: %v\n%s", unitFile, err, out)
		case len(bad) > 0:
			t.Errorf("systemd-analyze verify %s warns about the unit:\n%s", unitFile, strings.Join(bad, "\n"))
		case out != "":
			t.Logf("systemd-analyze verify printed, about other units:\n%s", out)
		}
	})

	t.Run("security", func(t *testing.T) {
		if v := systemdVersion(t, analyze); v < 250 {
			t.Skipf("systemd %d: security --offline and --threshold need systemd 250 or later", v)
		}
		// Exposure is scored 0 (locked down) to 10 (unprotected); the
		// threshold is in tenths. The unit scores 1.4 with systemd 252.
		out, err := run(t, 30*time.Second, "", analyze, "security", "--offline=yes", "--threshold=20", copyFile)
		if err != nil {
			t.Errorf("systemd-analyze security: exposure above 2.0 (%v):\n%s", err, out)
		}
		if i := strings.LastIndex(out, "Overall exposure level"); i >= 0 {
			t.Log(strings.TrimSpace(out[i:]))
		}
	})
}

func systemdVersion(t *testing.T, analyze string) int {
	out, err := run(t, 10*time.Second, "", analyze, "--version")
	if err != nil {
		t.Fatalf("systemd-analyze --version: %v", err)
	}
	m := regexp.MustCompile(`^systemd (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze --version: cannot read %q", out)
	}
	v, _ := strconv.Atoi(m[1])
	return v
}

// TestContainer builds the image the way deploy/container/build.sh does,
// starts it in development mode and checks /healthz, the user and that
// there is no shell.
func TestContainer(t *testing.T) {
	b, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nFROM scratch\n", "\nUSER 65532:65532\n", "\nVOLUME [\"/data\"]\n", "\nEXPOSE 8443\n", "\nENTRYPOINT [\"/kura\", \"serve\"]\n"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("%s lacks %q", dockerfile, strings.TrimSpace(want))
		}
	}
	if n := bytes.Count(b, []byte("\nFROM ")); n != 1 {
		t.Errorf("%s has %d FROM lines: the image is one stage, FROM scratch, so that nothing is pulled", dockerfile, n)
	}

	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("docker is not installed: the image was not built or run")
	}
	if h := os.Getenv("DOCKER_HOST"); h != "" && !strings.HasPrefix(h, "unix://") {
		t.Skipf("DOCKER_HOST=%s is not this machine's daemon: the container's published port would not be on 127.0.0.1 here", h)
	}
	if out, err := run(t, 20*time.Second, "", docker, "info", "--format", "{{.ServerVersion}}"); err != nil {
		t.Skipf("docker is installed but its daemon is not reachable (docker info: %v: %s): the image was not built or run", err, firstLine(out))
	}

	ctx := t.TempDir()
	buildStatic(t, filepath.Join(ctx, "kura"))
	if err := os.Mkdir(filepath.Join(ctx, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	image := fmt.Sprintf("kura-deploy-test:%d", time.Now().UnixNano())
	if out, err := run(t, 120*time.Second, "", docker, "build", "-q", "-t", image, "-f", dockerfile, ctx); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	t.Cleanup(func() { run(t, 30*time.Second, "", docker, "rmi", "-f", image) })

	out, err := run(t, 30*time.Second, "", docker, "run", "-d", "--read-only", "-p", "127.0.0.1:0:8443",
		image, "--dev", "--addr", "0.0.0.0:8443", "--data", "/data")
	if err != nil {
		t.Fatalf("docker run: %v\n%s", err, out)
	}
	id := firstLine(out)
	t.Cleanup(func() { run(t, 30*time.Second, "", docker, "rm", "-f", "-v", id) })

	out, err = run(t, 10*time.Second, "", docker, "port", id, "8443/tcp")
	if err != nil {
		t.Fatalf("docker port: %v\n%s", err, out)
	}
	addr := firstLine(out)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	ca := func() ([]byte, error) {
		if out, err := run(t, 10*time.Second, "", docker, "cp", id+":/data/tls/ca.pem", caFile); err != nil {
			return nil, fmt.Errorf("docker cp: %v: %s", err, firstLine(out))
		}
		return os.ReadFile(caFile)
	}
	if err := waitHealthz(addr, ca, 30*time.Second); err != nil {
		logs, _ := run(t, 10*time.Second, "", docker, "logs", id)
		t.Fatalf("%v\ncontainer log:\n%s", err, logs)
	}

	out, err = run(t, 10*time.Second, "", docker, "inspect", "--format", "{{.Config.User}}", image)
	if err != nil {
		t.Fatalf("docker inspect: %v\n%s", err, out)
	}
	if user := firstLine(out); user != "65532:65532" {
		t.Errorf("image user %q, want 65532:65532 (non-root)", user)
	}
	if out, err := run(t, 30*time.Second, "", docker, "run", "--rm", "--entrypoint", "/bin/sh", image, "-c", "true"); err == nil {
		t.Errorf("the image ran /bin/sh: it should hold no shell\n%s", out)
	}
}

// TestScratchRootfs runs the static binary the way the image does — in a
// root holding only /kura and an empty /data owned by 65532, as that user,
// with no environment — so the claim that kura needs nothing else from the
// image (no /tmp, /etc, CA bundle or libc) is checked where Docker is not.
func TestScratchRootfs(t *testing.T) {
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("needs root on Linux (chroot and a switch to uid 65532): the image's file system was not emulated")
	}
	root := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	buildStatic(t, filepath.Join(root, "kura"))
	data := filepath.Join(root, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(data, imageUID, imageUID); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	var log bytes.Buffer
	cmd := exec.Command("/kura", "serve", "--dev", "--addr", addr, "--data", "/data")
	cmd.Env = []string{}
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     root,
		Credential: &syscall.Credential{Uid: imageUID, Gid: imageUID, Groups: []uint32{}},
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
			t.Skipf("root here may not chroot or switch to uid %d (%v; a user namespace or a noexec temporary directory?): the image's file system was not emulated", imageUID, err)
		}
		t.Fatalf("start kura in %s: %v", root, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	ca := func() ([]byte, error) { return os.ReadFile(filepath.Join(data, "tls", "ca.pem")) }
	if err := waitHealthz(addr, ca, 30*time.Second); err != nil {
		t.Fatalf("%v\nkura's log:\n%s", err, log.String())
	}
}

// buildStatic builds kura as build.sh does: CGO_ENABLED=0, static.
func buildStatic(t *testing.T, out string) {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go tool is not on PATH: cannot build the static kura binary")
	}
	env := append(os.Environ(), "CGO_ENABLED=0")
	cmd := exec.Command(goTool, "build", "-trimpath", "-ldflags=-s", "-o", out, "./cmd/kura")
	cmd.Dir = ".."
	cmd.Env = env
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build ./cmd/kura: %v\n%s", err, b)
	}
}

// waitHealthz polls https://addr/healthz, trusting the CA that ca returns
// once kura has written it, until it answers 200 "ok" or timeout passes.
func waitHealthz(addr string, ca func() ([]byte, error), timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		last = probe(addr, ca)
		if last == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("https://%s/healthz did not answer 200 ok within %v: %v", addr, timeout, last)
}

func probe(addr string, ca func() ([]byte, error)) error {
	pem, err := ca()
	if err != nil {
		return fmt.Errorf("dev CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("dev CA: no PEM certificate yet")
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
	}}
	resp, err := c.Get("https://" + addr + "/healthz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
		return fmt.Errorf("status %d, body %q", resp.StatusCode, body)
	}
	return nil
}

// run runs a command with a deadline and returns its combined output.
func run(t *testing.T, timeout time.Duration, dir, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s timed out after %v", name, timeout)
	}
	return string(out), err
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(line)
}
