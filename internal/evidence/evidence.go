// Package evidence locates the shared set of real attestation evidence
// (../shared/evidence beside the repository) for tests. The files stay there
// under their own licences and are never copied into this repository.
package evidence

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Dir returns the evidence directory. When it is absent the test is skipped,
// unless KURA_REQUIRE_EVIDENCE=1 (as .ci/run sets), in which case it fails.
// KURA_EVIDENCE overrides the location.
func Dir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("KURA_EVIDENCE")
	if dir == "" {
		dir = find()
	}
	if dir != "" {
		if st, err := os.Stat(filepath.Join(dir, "MANIFEST.md")); err == nil && !st.IsDir() {
			return dir
		}
	}
	if os.Getenv("KURA_REQUIRE_EVIDENCE") == "1" {
		t.Fatalf("evidence directory not found (looked for ../shared/evidence beside the repository; set KURA_EVIDENCE)")
	}
	t.Skip("evidence directory ../shared/evidence not found; skipping tests on real evidence")
	return ""
}

// find walks up from the working directory to the module root and returns
// the shared/evidence directory beside it.
func find() string {
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(filepath.Dir(d), "shared", "evidence")
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// Read returns the contents of a file of the evidence set.
func Read(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(Dir(t), rel))
	if err != nil {
		t.Fatalf("read evidence %s: %v", rel, err)
	}
	return b
}

// Check is one entry of expected.json.
type Check struct {
	ID       string         `json:"id"`
	TEE      string         `json:"tee"`
	Files    []string       `json:"files"`
	Uses     []string       `json:"uses"`
	VerifyAt time.Time      `json:"verify_at"`
	Expect   string         `json:"expect"`
	Reason   string         `json:"reason"`
	Claims   map[string]any `json:"claims"`
}

// Checks returns the checks of expected.json for one TEE kind ("sev-snp", ...).
func Checks(t testing.TB, tee string) []Check {
	t.Helper()
	var doc struct {
		Checks []Check `json:"checks"`
	}
	if err := json.Unmarshal(Read(t, "expected.json"), &doc); err != nil {
		t.Fatalf("parse expected.json: %v", err)
	}
	var out []Check
	for _, c := range doc.Checks {
		if c.TEE == tee {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		t.Fatalf("expected.json has no %q checks", tee)
	}
	return out
}
