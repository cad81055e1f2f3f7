// Package sealtest gives tests a real HSM: a fresh SoftHSM2 token in a
// temporary directory.
package sealtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// DefaultModule is where Debian's softhsm2 package installs the library;
// KURA_SOFTHSM_MODULE overrides it for other layouts.
const DefaultModule = "/usr/lib/softhsm/libsofthsm2.so"

// SoftHSM creates a SoftHSM2 token labelled kura-test (user PIN 1234) in a
// temporary directory and points this test process at it through
// SOFTHSM2_CONF, which SoftHSM reads at C_Initialize. It skips the test when
// SoftHSM2 is not installed, unless KURA_REQUIRE_SOFTHSM=1 (as in CI), where
// that fails.
//
// t.Setenv makes the callers non-parallel, which they must be anyway: a
// PKCS#11 module is initialised once per process.
func SoftHSM(t testing.TB) (module, token, pin string) {
	t.Helper()
	missing := func(what string, err error) {
		t.Helper()
		if os.Getenv("KURA_REQUIRE_SOFTHSM") == "1" {
			t.Fatalf("SoftHSM2 not available (%s: %v), and KURA_REQUIRE_SOFTHSM=1 requires it", what, err)
		}
		t.Skipf("SoftHSM2 not available (%s: %v): install softhsm2 to run this test; KURA_REQUIRE_SOFTHSM=1 turns this skip into a failure", what, err)
	}
	module = DefaultModule
	if m := os.Getenv("KURA_SOFTHSM_MODULE"); m != "" {
		module = m
	}
	if _, err := os.Stat(module); err != nil {
		missing("module", err)
	}
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		missing("softhsm2-util", err)
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	cfg := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	out, err := exec.Command(util, "--init-token", "--free", "--label", "kura-test", "--pin", "1234", "--so-pin", "5678").CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	return module, "kura-test", "1234"
}
