// Package fault is the domain's one error vocabulary. A domain package says
// what went wrong in these kinds; each api package maps a kind to its
// surface's status and body (Key Vault's codes, MAA's, the ledger's), so a
// client sees its own API's error shape whatever part of kura refused it.
package fault

import (
	"errors"
	"fmt"
	"strings"
)

// Kind says what kind of refusal an error is.
type Kind int

const (
	// Internal is an error of no known kind: a bug, answered as 500.
	Internal Kind = iota
	// BadInput is a request that is malformed or out of range (400).
	BadInput
	// NotFound is a named object that does not exist (404).
	NotFound
	// Conflict is a request at odds with the current state (409).
	Conflict
	// Denied is a well-formed request that a rule refuses (403).
	Denied
	// Unavailable is a dependency that cannot answer now: the store, the
	// root, the audit log, a remote issuer (503). The request may be
	// retried.
	Unavailable
)

var kindNames = [...]string{"Internal", "BadInput", "NotFound", "Conflict", "Denied", "Unavailable"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Error is a domain error of a Kind. Msg names what was wrong for the
// client; Err, if set, is the cause for the log (it may say more than a
// client should see, so api packages do not answer with it for
// Unavailable and Internal).
type Error struct {
	Kind    Kind
	Field   string   // BadInput: the member or parameter at fault, if one
	Msg     string   // what was wrong, for the client
	Reasons []string // Denied: every rule that refused, in order
	// Code, if set, is a surface-independent refinement that an api package
	// may map to a code of its own (for example "KeyDisabled").
	Code string
	Err  error
}

func (e *Error) Error() string {
	msg := e.Msg
	if e.Field != "" && !strings.HasPrefix(msg, e.Field) {
		msg = e.Field + ": " + msg
	}
	if e.Err != nil {
		if msg == "" {
			return e.Err.Error()
		}
		return msg + ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Public is the message a client may see: for Unavailable and Internal it
// leaves out the cause.
func (e *Error) Public() string {
	msg := e.Msg
	if e.Field != "" && !strings.HasPrefix(msg, e.Field) {
		msg = e.Field + ": " + msg
	}
	if msg == "" {
		msg = e.Kind.String()
	}
	return msg
}

// Kinded is an error of a package's own type (a parse error with its line
// and column, an evidence error with its field) that says its kind, so it
// keeps its detail and still speaks the one vocabulary.
type Kinded interface {
	error
	FaultKind() Kind
}

// Of returns the kind of err: that of the first *Error or Kinded in its
// chain, or Internal.
func Of(err error) Kind {
	for err != nil {
		switch e := err.(type) {
		case *Error:
			return e.Kind
		case Kinded:
			return e.FaultKind()
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, inner := range u.Unwrap() {
				if k := Of(inner); k != Internal {
					return k
				}
			}
			return Internal
		default:
			return Internal
		}
	}
	return Internal
}

// As returns the first *Error in err's chain, if there is one.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// Bad is a BadInput error about field (empty: the request as a whole).
func Bad(field, format string, args ...any) *Error {
	return &Error{Kind: BadInput, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Missing is a NotFound error.
func Missing(format string, args ...any) *Error {
	return &Error{Kind: NotFound, Msg: fmt.Sprintf(format, args...)}
}

// Conflicting is a Conflict error.
func Conflicting(format string, args ...any) *Error {
	return &Error{Kind: Conflict, Msg: fmt.Sprintf(format, args...)}
}

// Deny is a Denied error listing the rules that refused.
func Deny(msg string, reasons ...string) *Error {
	return &Error{Kind: Denied, Msg: msg, Reasons: reasons}
}

// Down is an Unavailable error: msg for the client, err for the log.
func Down(msg string, err error) *Error {
	return &Error{Kind: Unavailable, Msg: msg, Err: err}
}
