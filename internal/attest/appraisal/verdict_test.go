package appraisal

import (
	"crypto/x509"
	"errors"
	"fmt"
	"testing"

	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/fault"
)

func TestVerdictOf(t *testing.T) {
	for _, c := range []struct {
		err  error
		want Verdict
	}{
		{nil, Accepted},
		{&attest.PolicyDeniedError{Reason: "no"}, RefusedPolicy},
		{fmt.Errorf("wrapped: %w", &attest.PolicyDeniedError{Reason: "no"}), RefusedPolicy},
		{&attest.UnavailableError{Err: errors.New("kds down")}, Failed},
		{fault.Down("store down", nil), Failed},
		{attest.Bad("report", "signature does not verify"), RefusedEvidence},
		{fmt.Errorf("wrapped: %w", attest.Bad("report", "bad")), RefusedEvidence},
		{errors.New("signing the token failed"), Failed},
	} {
		if got := VerdictOf(c.err); got != c.want {
			t.Errorf("VerdictOf(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}

func TestSetDigestIgnoresOrderAndRepeats(t *testing.T) {
	a, b := &x509.Certificate{Raw: []byte("a")}, &x509.Certificate{Raw: []byte("b")}
	if setDigest([]*x509.Certificate{a, b}) != setDigest([]*x509.Certificate{b, a, b}) {
		t.Error("the order or a repeat of the configured signers changes the set's digest")
	}
	if setDigest([]*x509.Certificate{a}) == setDigest([]*x509.Certificate{a, b}) {
		t.Error("another set has the same digest")
	}
}
