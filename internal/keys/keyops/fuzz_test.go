package keyops

import (
	"bytes"
	"encoding/json"
	"errors"
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
