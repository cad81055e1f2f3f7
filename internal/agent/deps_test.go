package agent_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestAgentStandsAlone checks that the in-TEE agent does not link kura's
// key domain (the key manager, the PKCS#11 seal, the store, the release
// service) nor any attestation verifier or the simulator: go list -deps of
// the agent package (its non-test imports) must name none of them.
func TestAgentStandsAlone(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH")
	}
	const mod = "github.com/kura-project/kura/"
	forbidden := []string{
		"internal/keys", // but not the pure internal/keys/keyops, below
		"internal/seal",
		"internal/store",
		"internal/keyrelease",
		"internal/attest", // snp (the verifier), sim (the simulator) and the rest
		"internal/server",
		"internal/config",
		"internal/api",
	}
	allowed := map[string]bool{mod + "internal/keys/keyops": true}
	for _, pkg := range []string{".", "./evidence"} {
		out, err := exec.Command(goBin, "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		deps := strings.Fields(string(out))
		if len(deps) == 0 {
			t.Fatalf("go list -deps %s listed nothing", pkg)
		}
		for _, d := range deps {
			if allowed[d] {
				continue
			}
			for _, f := range forbidden {
				if d == mod+f || strings.HasPrefix(d, mod+f+"/") {
					t.Errorf("%s depends on %s", pkg, d)
				}
			}
		}
	}
}
