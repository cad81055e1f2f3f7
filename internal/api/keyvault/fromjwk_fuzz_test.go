package keyvault

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kura-project/kura/internal/keys/keyops"
)

// FuzzFromJWK feeds arbitrary JSON through the import path as a Key Vault
// request carries it: the wire JWK, then keyops.FromJWK. It must never
// panic; every refusal must be an *keyops.InputError on a key.* field; and
// every key it accepts must work: its private encoding round-trips.
// Seeds: testdata/fuzz/FuzzFromJWK (valid RSA, EC and oct keys and
// near-misses of each).
func FuzzFromJWK(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var j JWK
		if err := json.Unmarshal(data, &j); err != nil {
			var ie *keyops.InputError
			if errors.As(err, &ie) && !strings.HasPrefix(ie.Field, "key.") {
				t.Fatalf("a member error not on a key.* field: %v", err)
			}
			return
		}
		m, err := keyops.FromJWK(j.domain())
		if err != nil {
			var ie *keyops.InputError
			if !errors.As(err, &ie) || len(ie.Field) < 5 || ie.Field[:4] != "key." {
				t.Fatalf("refusal is not an InputError on a key.* field: %v (%T)", err, err)
			}
			return
		}
		if _, err := json.Marshal(wireJWK(m.PublicJWK())); err != nil {
			t.Fatalf("the public JWK does not marshal: %v", err)
		}
		b, err := m.MarshalPrivate()
		if err != nil {
			t.Fatalf("accepted key does not marshal: %v", err)
		}
		back, err := keyops.UnmarshalPrivate(m.Kind, b)
		if err != nil {
			t.Fatalf("accepted key does not unmarshal: %v", err)
		}
		if b2, _ := back.MarshalPrivate(); !bytes.Equal(b, b2) {
			t.Fatal("private encoding does not round-trip")
		}
	})
}

// TestFromJWKSeedsAreValid keeps the corpus honest: the seeds named
// "*-valid" must take the success path, or the fuzzer would only ever
// explore refusals.
func TestFromJWKSeedsAreValid(t *testing.T) {
	for _, name := range []string{"rsa2048-valid", "ec-p256-valid", "ec-p521-no-xy", "oct256-valid"} {
		raw, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzFromJWK", name))
		if err != nil {
			t.Fatal(err)
		}
		lit, ok := strings.CutPrefix(strings.TrimSpace(string(raw)), "go test fuzz v1\n[]byte(")
		if !ok || !strings.HasSuffix(lit, ")") {
			t.Fatalf("%s: not a one-[]byte corpus file", name)
		}
		s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var j JWK
		if err := json.Unmarshal([]byte(s), &j); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := keyops.FromJWK(j.domain()); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
