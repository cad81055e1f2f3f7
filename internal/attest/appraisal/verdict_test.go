package appraisal

import (
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
		{errors.New("chain does not verify"), RefusedEvidence},
	} {
		if got := VerdictOf(c.err); got != c.want {
			t.Errorf("VerdictOf(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}
