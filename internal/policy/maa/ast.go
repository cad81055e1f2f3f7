package maa

import "strings"

// Policy is a parsed MAA attestation policy.
type Policy struct {
	version string
	present [numSections]bool
	rules   [numSections][]*rule
}

// Version returns the policy's declared language version: "1.0", "1.1" or "1.2".
func (p *Policy) Version() string { return p.version }

type section uint8

const (
	secConfiguration section = iota
	secAuthorization
	secIssuance
	numSections
)

func (s section) String() string {
	switch s {
	case secConfiguration:
		return "configurationrules"
	case secAuthorization:
		return "authorizationrules"
	default:
		return "issuancerules"
	}
}

func lookupSection(name string) (section, bool) {
	switch strings.ToLower(name) {
	case "configurationrules":
		return secConfiguration, true
	case "authorizationrules":
		return secAuthorization, true
	case "issuancerules":
		return secIssuance, true
	}
	return 0, false
}

// allowedActions lists, for error messages, the actions a section accepts.
func (s section) allowedActions() string {
	switch s {
	case secConfiguration:
		return "issueproperty"
	case secAuthorization:
		return "permit, deny, add"
	default:
		return "add, issue, issueproperty"
	}
}

type rule struct {
	sec   section
	index int // 1-based within the section
	pos   position
	conds []condition
	act   action
	slots int // number of identifiers the conditions bind
}

type condition struct {
	negated bool
	slot    int // slot of the identifier this condition binds, or -1
	props   []propCond
}

type propCond struct {
	prop claimProp
	op   compareOp
	rhs  expr
}

// matches reports whether claim c satisfies pc, given the already evaluated
// right-hand side.
func (pc *propCond) matches(c *claimRec, rhs any) bool {
	switch pc.prop {
	case propType:
		return compareString(c.typ, pc.op, rhs)
	case propIssuer:
		return compareString(c.issuer, pc.op, rhs)
	case propValueType:
		return compareString(valueTypeOf(c.val), pc.op, rhs)
	default:
		return compareValues(c.val, pc.op, rhs)
	}
}

type claimProp uint8

const (
	propType claimProp = iota
	propValue
	propValueType
	propIssuer
)

func (p claimProp) String() string {
	switch p {
	case propType:
		return "type"
	case propValue:
		return "value"
	case propValueType:
		return "valueType"
	default:
		return "issuer"
	}
}

func lookupProp(name string) (claimProp, bool) {
	switch strings.ToLower(name) {
	case "type":
		return propType, true
	case "value":
		return propValue, true
	case "valuetype":
		return propValueType, true
	case "issuer":
		return propIssuer, true
	}
	return 0, false
}

type actionKind uint8

const (
	actPermit actionKind = iota
	actDeny
	actAdd
	actIssue
	actIssueProperty
)

func (a actionKind) String() string {
	switch a {
	case actPermit:
		return "permit"
	case actDeny:
		return "deny"
	case actAdd:
		return "add"
	case actIssue:
		return "issue"
	default:
		return "issueproperty"
	}
}

func lookupAction(name string) (actionKind, bool) {
	switch strings.ToLower(name) {
	case "permit":
		return actPermit, true
	case "deny":
		return actDeny, true
	case "add":
		return actAdd, true
	case "issue":
		return actIssue, true
	case "issueproperty":
		return actIssueProperty, true
	}
	return 0, false
}

func (a actionKind) allowedIn(s section) bool {
	switch a {
	case actPermit, actDeny:
		return s == secAuthorization
	case actAdd:
		return s == secAuthorization || s == secIssuance
	case actIssue:
		return s == secIssuance
	default:
		return s == secConfiguration || s == secIssuance
	}
}

type action struct {
	kind      actionKind
	claimSlot int    // slot of claim=ident, or -1
	typ       string // type=, when claimSlot < 0 and the action creates a claim
	val       expr   // value=, likewise
}

// kind is an expression's type as far as the parser can know it.
type kind uint8

const (
	kindAny kind = iota // known only at run time (claim values, JsonToClaimValue)
	kindString
	kindInt
	kindBool
)

func (k kind) String() string {
	switch k {
	case kindString:
		return "a string"
	case kindInt:
		return "an integer"
	case kindBool:
		return "a Boolean"
	default:
		return "a value"
	}
}

// expr is a value expression: a literal, a claim property or a function call.
type expr interface {
	// eval computes the value for the claims bound so far (b is indexed by
	// slot). The result is string, int64, bool, jsonValue, set or noValue.
	eval(ev *evaluator, b []*claimRec) (any, error)
	kind() kind
}

type literal struct{ v any } // string, int64 or bool

func (l literal) eval(*evaluator, []*claimRec) (any, error) { return l.v, nil }

func (l literal) kind() kind {
	switch l.v.(type) {
	case string:
		return kindString
	case int64:
		return kindInt
	default:
		return kindBool
	}
}

// claimRef is ident.prop.
type claimRef struct {
	slot int
	prop claimProp
}

func (r claimRef) eval(_ *evaluator, b []*claimRec) (any, error) {
	c := b[r.slot]
	switch r.prop {
	case propType:
		return c.typ, nil
	case propIssuer:
		return c.issuer, nil
	case propValueType:
		return valueTypeOf(c.val), nil
	default:
		return c.val, nil
	}
}

func (r claimRef) kind() kind {
	if r.prop == propValue {
		return kindAny
	}
	return kindString
}
