package release

import "strings"

// Limits on a policy; see the package comment.
const (
	MaxPolicySize = 64 << 10 // bytes of policy JSON
	MaxNodes      = 1000     // authority entries plus conditions
	MaxDepth      = 16       // nested allOf/anyOf arrays, the top-level anyOf included
)

// Version is the only policy language version: the grammar's "1.0.0".
const Version = "1.0.0"

// RequireNonceMember is kura's extension member; see Policy.RequireNonce.
const RequireNonceMember = "x-kura-require-nonce"

// Policy is a parsed release policy.
type Policy struct {
	authorities  []authority
	requireNonce bool
}

type authority struct {
	written string // as in the policy, for explanations
	name    string // normalised, for matching
	group   *condition
}

// condition is a claim condition (op != opNone) or an allOf/anyOf group.
type condition struct {
	group    string // "allOf" or "anyOf" for a group
	children []*condition

	claim   string   // as written
	path    []string // claim split on "."
	op      operator
	operand scalar // for every operator but exists
	exists  bool   // for exists
}

type operator uint8

const (
	opNone operator = iota
	opEquals
	opNotEquals
	opLess
	opLessOrEquals
	opGreater
	opGreaterOrEquals
	opExists
)

// operatorNames is indexed by operator; the order is the grammar's.
var operatorNames = [...]string{
	opEquals:          "equals",
	opNotEquals:       "notEquals",
	opLess:            "less",
	opLessOrEquals:    "lessOrEquals",
	opGreater:         "greater",
	opGreaterOrEquals: "greaterOrEquals",
	opExists:          "exists",
}

func (o operator) String() string { return operatorNames[o] }

func lookupOperator(name string) operator {
	for o := opEquals; o <= opExists; o++ {
		if operatorNames[o] == name {
			return o
		}
	}
	return opNone
}

const operatorList = "equals, notEquals, less, lessOrEquals, greater, greaterOrEquals, exists"

// knownMembers lists every member name of the language, to suggest the right
// spelling for a member that differs only in case.
var knownMembers = [...]string{
	"version", "anyOf", "allOf", "authority", "claim", "condition", "value", RequireNonceMember,
	"equals", "notEquals", "less", "lessOrEquals", "greater", "greaterOrEquals", "exists",
}

// Parse parses a policy document: the JSON bytes of release_policy.data,
// already base64url-decoded. Every error is a *ParseError.
func Parse(data []byte) (*Policy, error) {
	if len(data) > MaxPolicySize {
		return nil, errAt(rootPath, "policy is %d bytes; the limit is %d", len(data), MaxPolicySize)
	}
	root, perr := readJSON(data)
	if perr != nil {
		return nil, perr
	}
	var p parser
	pol, perr := p.policy(root)
	if perr != nil {
		return nil, perr
	}
	return pol, nil
}

// Authorities returns the policy's authorities, normalised (one trailing "/"
// removed), in policy order, each once. A caller can use it to fetch the
// issuers' signing keys before any token arrives.
func (p *Policy) Authorities() []string {
	out := make([]string, 0, len(p.authorities))
	for _, a := range p.authorities {
		dup := false
		for _, s := range out {
			dup = dup || s == a.name
		}
		if !dup {
			out = append(out, a.name)
		}
	}
	return out
}

// RequireNonce reports whether the policy sets kura's "x-kura-require-nonce":
// true. The policy language cannot see the release request, so the caller
// enforces it: a release under such a policy must carry a nonce and the
// token must echo it (x-ms-runtime.client-payload.nonce), binding the token to
// this request rather than to any request in its 8-hour lifetime.
func (p *Policy) RequireNonce() bool { return p.requireNonce }

// normalizeAuthority removes trailing "/"s, as oidc.NormalizeIssuer does
// with a token's iss: the two must agree for an authority to match.
func normalizeAuthority(s string) string { return strings.TrimRight(s, "/") }

type parser struct{ nodes int }

func (p *parser) count(path string) *ParseError {
	p.nodes++
	if p.nodes > MaxNodes {
		return errAt(path, "policy has more than %d authority entries and conditions", MaxNodes)
	}
	return nil
}

func (p *parser) policy(v *jsonValue) (*Policy, *ParseError) {
	if v.typ != jsonObject {
		return nil, errAt(rootPath, "a policy must be a JSON object, not %v", v.typ)
	}
	pol := &Policy{}
	var anyOf *jsonValue
	for _, m := range v.members {
		mp := memberPath("", m.name)
		switch m.name {
		case "version":
			if m.val.typ != jsonString {
				return nil, errAt(mp, "version must be the string %q, not %v", Version, m.val.typ)
			}
			if m.val.str != Version {
				return nil, errAt(mp, "unsupported version %s; the only release policy version is %q", quote(m.val.str), Version)
			}
		case "anyOf":
			anyOf = m.val
		case RequireNonceMember:
			if m.val.typ != jsonBool {
				return nil, errAt(mp, "%s must be true or false, not %v", RequireNonceMember, m.val.typ)
			}
			pol.requireNonce = m.val.b
		case "allOf":
			return nil, errAt(mp, "the top level must be anyOf over authorities, not allOf "+
				"(Microsoft's VM-ID sample policy has this mistake; a single authority is written anyOf:[{authority, allOf}])")
		case "authority", "claim":
			return nil, errAt(mp, "the top level must be anyOf over authorities; %s belongs inside an entry of anyOf", m.name)
		default:
			return nil, unknownMember(mp, m.name)
		}
	}
	if anyOf == nil {
		return nil, errAt(rootPath, "missing anyOf: the top level must be anyOf over authorities")
	}
	if perr := checkArray(anyOf, "anyOf", "anyOf"); perr != nil {
		return nil, perr
	}
	for i, el := range anyOf.elems {
		a, perr := p.authority(el, elemPath("anyOf", i))
		if perr != nil {
			return nil, perr
		}
		pol.authorities = append(pol.authorities, a)
	}
	return pol, nil
}

func (p *parser) authority(v *jsonValue, path string) (authority, *ParseError) {
	var a authority
	if perr := p.count(path); perr != nil {
		return a, perr
	}
	if v.typ != jsonObject {
		return a, errAt(path, "an entry of the top-level anyOf must be an authority object, not %v", v.typ)
	}
	var group *jsonMember
	seenAuthority := false
	for i := range v.members {
		m := &v.members[i]
		mp := memberPath(path, m.name)
		switch {
		case m.name == "authority":
			if m.val.typ != jsonString {
				return a, errAt(mp, "authority must be a string, not %v", m.val.typ)
			}
			if normalizeAuthority(m.val.str) == "" {
				return a, errAt(mp, "authority must not be empty")
			}
			a.written, a.name, seenAuthority = m.val.str, normalizeAuthority(m.val.str), true
		case m.name == "allOf" || m.name == "anyOf":
			if group != nil {
				return a, errAt(mp, "an authority entry has allOf or anyOf, not both")
			}
			group = m
		case m.name == "claim" || m.name == "condition" || m.name == "value" || lookupOperator(m.name) != opNone:
			return a, errAt(mp, "a claim condition cannot stand directly in an authority entry; put it inside the entry's allOf or anyOf")
		default:
			return a, unknownMember(mp, m.name)
		}
	}
	if !seenAuthority {
		return a, errAt(path, `authority entry has no "authority" member`)
	}
	if group == nil {
		return a, errAt(path, "authority entry %s has neither allOf nor anyOf", quote(a.written))
	}
	g, perr := p.group(group.name, group.val, memberPath(path, group.name), 2)
	a.group = g
	return a, perr
}

// group parses the array of an allOf or anyOf member at nesting level level.
func (p *parser) group(kind string, v *jsonValue, path string, level int) (*condition, *ParseError) {
	if level > MaxDepth {
		return nil, errAt(path, "allOf/anyOf nested deeper than %d levels", MaxDepth)
	}
	if perr := checkArray(v, kind, path); perr != nil {
		return nil, perr
	}
	g := &condition{group: kind, children: make([]*condition, 0, len(v.elems))}
	for i, el := range v.elems {
		c, perr := p.condition(el, elemPath(path, i), level)
		if perr != nil {
			return nil, perr
		}
		g.children = append(g.children, c)
	}
	return g, nil
}

func checkArray(v *jsonValue, kind, path string) *ParseError {
	if v.typ != jsonArray {
		return errAt(path, "%s must be an array, not %v", kind, v.typ)
	}
	if len(v.elems) == 0 {
		return errAt(path, "%s must not be empty", kind)
	}
	return nil
}

// condition parses one element of a group at level level.
func (p *parser) condition(v *jsonValue, path string, level int) (*condition, *ParseError) {
	if perr := p.count(path); perr != nil {
		return nil, perr
	}
	if v.typ != jsonObject {
		return nil, errAt(path, "a condition must be an object, not %v", v.typ)
	}
	var claim, group, legacyCond, legacyValue, op *jsonMember
	for i := range v.members {
		m := &v.members[i]
		mp := memberPath(path, m.name)
		switch {
		case m.name == "claim":
			claim = m
		case m.name == "allOf" || m.name == "anyOf":
			if group != nil {
				return nil, errAt(mp, "a condition has allOf or anyOf, not both")
			}
			group = m
		case lookupOperator(m.name) != opNone:
			if op != nil {
				return nil, errAt(mp, "a claim condition has exactly one operator, and this one already has %s", op.name)
			}
			op = m
		case m.name == "condition":
			legacyCond = m
		case m.name == "value":
			legacyValue = m
		case m.name == "authority":
			return nil, errAt(mp, "authority is allowed only in the entries of the top-level anyOf")
		default:
			return nil, unknownMember(mp, m.name)
		}
	}
	if group != nil {
		for _, m := range []*jsonMember{claim, op, legacyCond, legacyValue} {
			if m != nil {
				return nil, errAt(memberPath(path, group.name),
					"a condition is either a claim condition or an allOf/anyOf group, and this one also has %s", m.name)
			}
		}
		return p.group(group.name, group.val, memberPath(path, group.name), level+1)
	}
	if claim == nil {
		if op == nil && legacyCond == nil && legacyValue == nil {
			return nil, errAt(path, `empty condition: expected "claim" and an operator, or allOf/anyOf`)
		}
		return nil, errAt(path, `claim condition has no "claim" member`)
	}
	c := &condition{}
	cp := memberPath(path, "claim")
	if claim.val.typ != jsonString {
		return nil, errAt(cp, "claim must be a string, not %v", claim.val.typ)
	}
	c.claim = claim.val.str
	if c.claim == "" {
		return nil, errAt(cp, "claim must not be empty")
	}
	c.path = strings.Split(c.claim, ".")
	for _, seg := range c.path {
		if seg == "" {
			return nil, errAt(cp, "claim %s has an empty segment; a claim is a dot path such as x-ms-isolation-tee.x-ms-attestation-type", quote(c.claim))
		}
	}

	var operand *jsonValue
	var operandPath string
	switch {
	case op != nil && (legacyCond != nil || legacyValue != nil):
		legacy := legacyCond
		if legacy == nil {
			legacy = legacyValue
		}
		return nil, errAt(memberPath(path, legacy.name),
			"mixes the legacy condition/value form with the %s operator; use one form", op.name)
	case op != nil:
		c.op, operand, operandPath = lookupOperator(op.name), op.val, memberPath(path, op.name)
	case legacyCond != nil:
		lp := memberPath(path, "condition")
		if legacyCond.val.typ != jsonString {
			return nil, errAt(lp, "condition must be a string naming an operator, not %v", legacyCond.val.typ)
		}
		if c.op = lookupOperator(legacyCond.val.str); c.op == opNone {
			return nil, errAt(lp, "unknown condition %s; expected one of %s", quote(legacyCond.val.str), operatorList)
		}
		if legacyValue == nil {
			return nil, errAt(path, `legacy condition %s has no "value"`, quote(legacyCond.val.str))
		}
		operand, operandPath = legacyValue.val, memberPath(path, "value")
	case legacyValue != nil:
		return nil, errAt(memberPath(path, "value"), `"value" without "condition"`)
	default:
		return nil, errAt(path, "claim condition on %s has no operator; expected one of %s", quote(c.claim), operatorList)
	}
	if perr := c.setOperand(operand, operandPath); perr != nil {
		return nil, perr
	}
	return c, nil
}

// setOperand checks and stores the value an operator compares with.
func (c *condition) setOperand(v *jsonValue, path string) *ParseError {
	switch c.op {
	case opExists:
		if v.typ != jsonBool {
			return errAt(path, "exists takes true or false, not %v", v.typ)
		}
		c.exists = v.b
		return nil
	case opLess, opLessOrEquals, opGreater, opGreaterOrEquals:
		if v.typ != jsonNumber {
			return errAt(path, "%v compares numbers, so its value must be a number, not %v", c.op, v.typ)
		}
	}
	switch v.typ {
	case jsonString:
		c.operand = scalar{kind: kindString, str: v.str}
	case jsonBool:
		c.operand = scalar{kind: kindBool, b: v.b}
	case jsonNumber:
		d, ok := parseDecimal(v.str)
		if !ok {
			return errAt(path, "number %s is out of range", v.str)
		}
		c.operand = scalar{kind: kindNumber, num: d}
	default:
		return errAt(path, "%v takes a string, number or boolean, not %v", c.op, v.typ)
	}
	return nil
}

func unknownMember(path, name string) *ParseError {
	for _, k := range knownMembers {
		if strings.EqualFold(k, name) {
			return errAt(path, "unknown member %s (member names are case-sensitive: did you mean %q?)", quote(name), k)
		}
	}
	return errAt(path, "unknown member %s", quote(name))
}
