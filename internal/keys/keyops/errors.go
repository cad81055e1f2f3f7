package keyops

import (
	"fmt"

	"github.com/kura-project/kura/internal/fault"
)

// AlgorithmError reports an algorithm that does not exist, is known but not
// supported by kura, belongs to another operation, or does not fit the key
// (another key family, curve or AES key size). The API answers 400
// BadParameter.
type AlgorithmError struct {
	Alg    string // the algorithm as the caller spelled it
	Kind   string // the key family when the refusal is about fit; "" otherwise
	Reason string // what is wrong, e.g. "needs an RSA key"
}

func (e *AlgorithmError) Error() string {
	if e.Kind == "" {
		return fmt.Sprintf("alg %q: %s", clip(e.Alg), e.Reason)
	}
	// "an" reads correctly before RSA, EC and oct alike.
	return fmt.Sprintf("alg %q does not fit an %s key: %s", clip(e.Alg), e.Kind, e.Reason)
}

// InputError reports malformed input: an operation argument of the wrong
// length or missing, a creation parameter out of range, or an imported JWK
// member that is missing, badly encoded or inconsistent. Field is the JSON
// name of the offending request member ("value", "iv", "tag", "digest",
// "key_size", "key.d", ...). The API answers 400 BadParameter.
type InputError struct {
	Field  string
	Reason string
}

func (e *InputError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// DecryptError reports that authentication, unpadding or unwrapping failed.
// It carries no detail on purpose: telling a caller which check failed (tag,
// padding, integrity value) is what makes padding-oracle attacks work.
type DecryptError struct{}

func (*DecryptError) Error() string {
	return "decryption failed: the input is not authentic for this key, algorithm and parameters"
}

func inputErr(field, format string, args ...any) error {
	return &InputError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// clip bounds caller-chosen strings echoed in errors, so that a request
// cannot make its own error message arbitrarily large.
func clip(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "…"
}

// FaultKind places AlgorithmError in the domain's error vocabulary.
func (*AlgorithmError) FaultKind() fault.Kind { return fault.BadInput }

// FaultKind places InputError in the domain's error vocabulary.
func (*InputError) FaultKind() fault.Kind { return fault.BadInput }

// FaultKind places DecryptError in the domain's error vocabulary.
func (*DecryptError) FaultKind() fault.Kind { return fault.BadInput }
