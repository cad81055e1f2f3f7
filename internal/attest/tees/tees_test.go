package tees

import "testing"

// TestRegistry: the built-in modules register without conflict and are
// found without regard to case.
func TestRegistry(t *testing.T) {
	r := Registry()
	if len(r.Modules()) == 0 {
		t.Fatal("no TEE registered")
	}
	for _, m := range r.Modules() {
		for _, typ := range []string{m.Type, "x" + m.Type} {
			_, ok := r.Lookup(typ)
			if ok != (typ == m.Type) {
				t.Errorf("Lookup(%q) = %v", typ, ok)
			}
		}
		if _, ok := r.Lookup(swapCase(m.Type)); !ok {
			t.Errorf("Lookup is case-sensitive for %s", m.Type)
		}
	}
}

func swapCase(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			b[i] = c - 32
		case c >= 'A' && c <= 'Z':
			b[i] = c + 32
		}
	}
	return string(b)
}
