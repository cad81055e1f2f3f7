package keyops

import (
	"errors"
	"testing"
)

// TestGenerateRefusalsAreInputErrors: every refusal of Generate's
// parameters is an *InputError naming the field, which the key manager turns
// into a 400; any other error is the system's and becomes a 503.
func TestGenerateRefusalsAreInputErrors(t *testing.T) {
	for _, c := range []struct {
		kty, crv, field string
		size, e         int
	}{
		{kty: "XYZ", field: "kty"},
		{kty: "RSA", size: 1000, field: "key_size"},
		{kty: "RSA", e: 5, field: "public_exponent"},
		{kty: "RSA", crv: "P-256", field: "crv"},
		{kty: "EC", size: 300, field: "key_size"},
		{kty: "EC", crv: "P-999", field: "crv"},
		{kty: "EC", crv: "P-256", size: 384, field: "key_size"},
		{kty: "EC", e: 3, field: "public_exponent"},
		{kty: "oct", size: 100, field: "key_size"},
	} {
		_, err := Generate(c.kty, c.size, c.crv, c.e)
		var ie *InputError
		if !errors.As(err, &ie) || ie.Field != c.field {
			t.Errorf("Generate(%q, %d, %q, %d) = %v, want an input error on %s", c.kty, c.size, c.crv, c.e, err, c.field)
		}
	}
}
