package app_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestArrowsPointDown checks the layering (cmd → server → api/* → domain →
// store/seal): no domain package links an api package, the server, the
// assembly or the configuration, and no api package links the server or the
// assembly. It reads go list -deps of each package's non-test imports.
func TestArrowsPointDown(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH")
	}
	const mod = "github.com/kura-project/kura/"
	above := map[string][]string{
		"domain": {"internal/api", "internal/server", "internal/app", "internal/config", "cmd"},
		"api":    {"internal/server", "internal/app", "internal/config", "cmd"},
	}
	layer := func(pkg string) string {
		switch {
		case strings.HasPrefix(pkg, "internal/api/"):
			return "api"
		case pkg == "internal/server", pkg == "internal/app", pkg == "internal/config", pkg == "internal/bench",
			strings.HasPrefix(pkg, "internal/agent"), strings.HasPrefix(pkg, "internal/certtest"), strings.HasPrefix(pkg, "internal/evidence"):
			return "" // the top, the agent (checked by its own test) and test helpers
		}
		return "domain"
	}
	out, err := exec.Command(goBin, "list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, mod+"internal/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 20 {
		t.Fatalf("go list listed %d packages", len(lines))
	}
	checked := map[string]int{}
	for _, line := range lines {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], mod)
		l := layer(pkg)
		if l == "" {
			continue
		}
		checked[l]++
		for _, d := range f[1:] {
			d, ok := strings.CutPrefix(d, mod)
			if !ok {
				continue
			}
			for _, up := range above[l] {
				if d == up || strings.HasPrefix(d, up+"/") {
					t.Errorf("%s package %s depends on %s", l, pkg, d)
				}
			}
		}
	}
	if checked["domain"] < 15 || checked["api"] < 4 {
		t.Errorf("checked %v: the layer table no longer matches the tree", checked)
	}
}
