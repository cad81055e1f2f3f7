// Package attest holds what every TEE verifier shares: the evidence error
// types the API layer maps to 4xx answers, and the normalized claim set that
// policies and tokens are built from.
//
// Each TEE lives in its own subpackage with the same three steps, named the
// same way everywhere: Parse turns bytes into structures and trusts nothing;
// Verify checks signatures and certificate chains against pinned roots at an
// injected time; Claims turns verified structures into claims. Judging
// (policy) happens once, in internal/policy, on the claims.
package attest

import (
	"errors"
	"fmt"

	"github.com/kura-project/kura/internal/fault"
)

// EvidenceError reports evidence that is malformed, unverifiable or does not
// match its bindings. It is always the client's fault: the API answers 400.
// Field names the part of the evidence at fault (for example "report.SnpReport"
// or "vcek"); Reason says what was wrong with it.
type EvidenceError struct {
	Field  string
	Reason string
	Err    error
}

func (e *EvidenceError) Error() string {
	msg := e.Reason
	if e.Field != "" {
		msg = e.Field + ": " + msg
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *EvidenceError) Unwrap() error { return e.Err }

// Bad returns an *EvidenceError for field with a formatted reason.
func Bad(field, format string, args ...any) error {
	return &EvidenceError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// BadWrap is Bad with an underlying cause.
func BadWrap(field string, err error, format string, args ...any) error {
	return &EvidenceError{Field: field, Reason: fmt.Sprintf(format, args...), Err: err}
}

// UnavailableError reports that verification could not be completed because a
// dependency (collateral service, store) failed. The API answers 503; the
// evidence is not judged either way.
type UnavailableError struct{ Err error }

func (e *UnavailableError) Error() string {
	return "attestation dependency unavailable: " + e.Err.Error()
}
func (e *UnavailableError) Unwrap() error { return e.Err }

// PolicyDeniedError reports that verified evidence was refused by the
// appraisal policy. Reason names the rule that decided.
type PolicyDeniedError struct{ Reason string }

func (e *PolicyDeniedError) Error() string {
	return "attestation policy denied the evidence: " + e.Reason
}

// IsEvidence reports whether err is (or wraps) an *EvidenceError.
func IsEvidence(err error) bool {
	var e *EvidenceError
	return errors.As(err, &e)
}

// Claim is one service-generated claim: its MAA name and its JSON value
// (string, int64, bool, or a JSON object/array for runtime data).
type Claim struct {
	Type  string
	Value any
}

// Claims is an ordered claim set; order is kept so tokens are stable.
type Claims []Claim

// Get returns the value of the first claim named typ.
func (c Claims) Get(typ string) (any, bool) {
	for _, cl := range c {
		if cl.Type == typ {
			return cl.Value, true
		}
	}
	return nil, false
}

// FaultKind places EvidenceError in the domain's error vocabulary.
func (*EvidenceError) FaultKind() fault.Kind { return fault.BadInput }

// FaultKind places UnavailableError in the domain's error vocabulary.
func (*UnavailableError) FaultKind() fault.Kind { return fault.Unavailable }

// FaultKind places PolicyDeniedError in the domain's error vocabulary.
func (*PolicyDeniedError) FaultKind() fault.Kind { return fault.Denied }
