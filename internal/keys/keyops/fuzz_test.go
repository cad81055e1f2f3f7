package keyops

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fuzzKEK is the RFC 5649 §6 KEK, so that the RFC's wrapped values in the
// seed corpus are valid inputs and the fuzzer starts on the success path.
const fuzzKEK = "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8"

// FuzzUnwrapPad: AESKeyUnwrapPad never panics, refuses only with
// *InputError (length) or *DecryptError (integrity), and whatever it
// accepts re-wraps to exactly the input (RFC 5649 is deterministic, so any
// other result would mean two inputs unwrap to the same key).
// Seeds: testdata/fuzz/FuzzUnwrapPad.
func FuzzUnwrapPad(f *testing.F) {
	kek := unhex(f, fuzzKEK)
	f.Fuzz(func(t *testing.T, wrapped []byte) {
		p, err := AESKeyUnwrapPad(kek, wrapped)
		if err != nil {
			if !errors.As(err, new(*InputError)) && !errors.As(err, new(*DecryptError)) {
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			return
		}
		w, err := AESKeyWrapPad(kek, p)
		if err != nil || !bytes.Equal(w, wrapped) {
			t.Fatalf("re-wrap = %x, %v; want the input %x", w, err, wrapped)
		}
	})
}

// TestFuzzSeedsAreValid keeps the checked-in corpus honest: the seeds named
// "*-valid" (and the RFC vectors) must take the success path, or the
// fuzzers would only ever explore refusals.
func TestFuzzSeedsAreValid(t *testing.T) {
	kek := unhex(t, fuzzKEK)
	for _, c := range []struct {
		path string
		ok   func([]byte) error
	}{
		{"FuzzUnwrapPad/rfc5649-20-octets", func(b []byte) error { _, err := AESKeyUnwrapPad(kek, b); return err }},
		{"FuzzUnwrapPad/rfc5649-7-octets", func(b []byte) error { _, err := AESKeyUnwrapPad(kek, b); return err }},
		{"FuzzUnwrapPad/wrapped-32-bytes", func(b []byte) error { _, err := AESKeyUnwrapPad(kek, b); return err }},
	} {
		raw, err := os.ReadFile(filepath.Join("testdata", "fuzz", c.path))
		if err != nil {
			t.Fatal(err)
		}
		lit, ok := strings.CutPrefix(strings.TrimSpace(string(raw)), "go test fuzz v1\n[]byte(")
		if !ok || !strings.HasSuffix(lit, ")") {
			t.Fatalf("%s: not a one-[]byte corpus file", c.path)
		}
		s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
		if err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		if err := c.ok([]byte(s)); err != nil {
			t.Errorf("%s: %v", c.path, err)
		}
	}
}
