package keyops

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzFromJWK feeds arbitrary JSON through the import path. It must never
// panic; every refusal must be an *InputError on a key.* field; and every
// key it accepts must work: its public view and private encoding round-trip.
// Seeds: testdata/fuzz/FuzzFromJWK (valid RSA, EC and oct keys and
// near-misses of each).
func FuzzFromJWK(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var j JWK
		if err := json.Unmarshal(data, &j); err != nil {
			return
		}
		m, err := FromJWK(j)
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) || len(ie.Field) < 5 || ie.Field[:4] != "key." {
				t.Fatalf("refusal is not an InputError on a key.* field: %v (%T)", err, err)
			}
			return
		}
		if _, err := json.Marshal(m.PublicJWK()); err != nil {
			t.Fatalf("PublicJWK does not marshal: %v", err)
		}
		b, err := m.MarshalPrivate()
		if err != nil {
			t.Fatalf("accepted key does not marshal: %v", err)
		}
		back, err := UnmarshalPrivate(m.Kind, b)
		if err != nil {
			t.Fatalf("accepted key does not unmarshal: %v", err)
		}
		if b2, _ := back.MarshalPrivate(); !bytes.Equal(b, b2) {
			t.Fatal("private encoding does not round-trip")
		}
	})
}

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
		{"FuzzFromJWK/rsa2048-valid", fromJSON},
		{"FuzzFromJWK/ec-p256-valid", fromJSON},
		{"FuzzFromJWK/ec-p521-no-xy", fromJSON},
		{"FuzzFromJWK/oct256-valid", fromJSON},
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

func fromJSON(b []byte) error {
	var j JWK
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	_, err := FromJWK(j)
	return err
}
