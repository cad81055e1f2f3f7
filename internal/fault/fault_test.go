package fault_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/audit"
	"github.com/kura-project/kura/internal/fault"
	"github.com/kura-project/kura/internal/keyrelease"
	"github.com/kura-project/kura/internal/keys/keyops"
	"github.com/kura-project/kura/internal/oidc"
	policymaa "github.com/kura-project/kura/internal/policy/maa"
	"github.com/kura-project/kura/internal/policy/release"
)

// TestOf: every package's own error types report their kind through any
// wrapping (fmt.Errorf %w, errors.Join); errors of no kind are Internal.
func TestOf(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want fault.Kind
	}{
		{"nil", nil, fault.Internal},
		{"plain", errors.New("boom"), fault.Internal},
		{"bad", fault.Bad("name", "too long"), fault.BadInput},
		{"missing", fault.Missing("no key"), fault.NotFound},
		{"conflict", fault.Conflicting("exists"), fault.Conflict},
		{"deny", fault.Deny("no", "rule 1"), fault.Denied},
		{"down", fault.Down("store down", errors.New("eof")), fault.Unavailable},
		{"evidence", attest.Bad("report", "short"), fault.BadInput},
		{"attest unavailable", &attest.UnavailableError{Err: errors.New("x")}, fault.Unavailable},
		{"policy denied", &attest.PolicyDeniedError{Reason: "r"}, fault.Denied},
		{"token refused", &oidc.Error{Reason: "expired"}, fault.Denied},
		{"issuer down", &oidc.UnavailableError{Issuer: "https://i", Err: errors.New("x")}, fault.Unavailable},
		{"key input", &keyops.InputError{Field: "key.n", Reason: "bad"}, fault.BadInput},
		{"maa parse", &policymaa.ParseError{Line: 1, Column: 2, Msg: "x"}, fault.BadInput},
		{"release parse", &release.ParseError{Path: "anyOf", Msg: "x"}, fault.BadInput},
		{"release denied", &keyrelease.Denied{Reason: "r"}, fault.Denied},
		{"release bad", &keyrelease.BadRequest{Reason: "r"}, fault.BadInput},
		{"audit", &audit.Error{Err: errors.New("x")}, fault.Unavailable},
		{"wrapped", fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", attest.Bad("f", "r"))), fault.BadInput},
		{"outer kind wins", &fault.Error{Kind: fault.Unavailable, Err: attest.Bad("f", "r")}, fault.Unavailable},
		{"joined", errors.Join(errors.New("plain"), &oidc.Error{Reason: "r"}), fault.Denied},
	} {
		if got := fault.Of(c.err); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// TestErrorMessages: the field prefixes the message once, Public leaves the
// cause out, and Error keeps it for the log.
func TestErrorMessages(t *testing.T) {
	e := fault.Bad("scope", "scope %q is not one", "x")
	if e.Error() != `scope "x" is not one` {
		t.Errorf("field named twice or not at all: %q", e.Error())
	}
	if e := fault.Bad("share", "holds 3 bytes"); e.Error() != "share: holds 3 bytes" {
		t.Errorf("field prefix: %q", e.Error())
	}
	d := fault.Down("the key store is unavailable", errors.New("disk I/O error at /var/lib/kura"))
	if d.Public() != "the key store is unavailable" {
		t.Errorf("public message leaks the cause: %q", d.Public())
	}
	if !errors.Is(fmt.Errorf("x: %w", d), d.Err) {
		t.Error("the cause is not unwrapped")
	}
}
