package maa

import (
	"fmt"

	"github.com/kura-project/kura/internal/fault"
)

// ParseError locates a syntax error in a policy text.
type ParseError struct {
	Line   int // 1-based
	Column int // 1-based, in Unicode code points; a tab is one column
	Msg    string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Msg)
}

// EvalError reports a runtime fault in one rule: a function given an argument
// of the wrong type, malformed JSON, or an exceeded limit. Callers treat it as
// deny; it says which rule failed so that a policy author can fix it.
type EvalError struct {
	Section string // "configurationrules", "authorizationrules" or "issuancerules"
	Rule    int    // 1-based position within the section
	Line    int    // line where the rule starts
	Err     error
}

func (e *EvalError) Error() string {
	return fmt.Sprintf("%s rule %d (line %d): %v", e.Section, e.Rule, e.Line, e.Err)
}

func (e *EvalError) Unwrap() error { return e.Err }

// LimitError reports that an evaluation bound was exceeded. It is a distinct
// type so that callers can tell resource exhaustion (possibly an attack, or a
// policy that needs restructuring) from an ordinary policy fault.
type LimitError struct {
	What  string // e.g. "evaluation steps", "claims in the incoming set"
	Limit int
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("evaluation limit exceeded: more than %d %s", e.Limit, e.What)
}

// FaultKind places ParseError in the domain's error vocabulary.
func (*ParseError) FaultKind() fault.Kind { return fault.BadInput }

// FaultKind places EvalError in the domain's error vocabulary.
func (*EvalError) FaultKind() fault.Kind { return fault.Denied }

// FaultKind places LimitError in the domain's error vocabulary.
func (*LimitError) FaultKind() fault.Kind { return fault.BadInput }
