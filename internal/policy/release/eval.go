package release

import (
	"strconv"
	"strings"
)

// Decision is the outcome of evaluating a policy against a token's claims.
type Decision struct {
	Allowed     bool  `json:"allowed"`
	Explanation *Node `json:"explanation"`
	// Coerced lists the conditions met only by comparing a string with a
	// boolean or number as text (Key Vault's leniency; see the package
	// comment), e.g. `claim sdk-test equals "true", actual true`.
	Coerced []string `json:"coerced,omitempty"`
}

// Options change how a policy is evaluated.
type Options struct {
	// StrictTypes compares values of the same JSON type only: a string
	// never equals a boolean or a number, so {"equals": "true"} is not met
	// by the boolean true.
	StrictTypes bool
}

// String summarises the decision: "allowed: " or "denied: " followed by the
// explanation's summary.
func (d *Decision) String() string {
	verdict := "denied: "
	if d.Allowed {
		verdict = "allowed: "
	}
	return verdict + d.Explanation.String()
}

// Node kinds.
const (
	KindAnyOf     = "anyOf"
	KindAllOf     = "allOf"
	KindAuthority = "authority"
	KindClaim     = "claim"
)

// Node is one element of the explanation tree, which mirrors the policy. The
// root is the top-level anyOf; its children are the authority entries, each
// with a single child, its allOf or anyOf; below are claim conditions and
// nested groups.
type Node struct {
	Kind string `json:"kind"` // KindAnyOf, KindAllOf, KindAuthority or KindClaim

	// Authority is the authority as written in the policy (authority nodes).
	Authority string `json:"authority,omitempty"`

	// Claim conditions: the claim path, the operator (the modern name, also
	// for the legacy form), the expected and actual values written as JSON
	// (Actual is "<missing>" for an absent claim).
	Claim    string `json:"claim,omitempty"`
	Operator string `json:"operator,omitempty"`
	Expected string `json:"expected,omitempty"`
	Actual   string `json:"actual,omitempty"`

	Met bool `json:"met"`

	// Skipped marks an authority entry that was not evaluated because its
	// authority is not the token's issuer.
	Skipped bool `json:"skipped,omitempty"`

	// Note says why, when Met alone does not: an incomparable value, a
	// skipped authority, no matching authority at all.
	Note string `json:"note,omitempty"`

	Children []*Node `json:"children,omitempty"`
}

// missing is the Actual of a claim that is not in the token.
const missing = "<missing>"

// Evaluate judges the claims of a verified token that came from issuer. The
// claims are the token's decoded JSON payload; numbers may be json.Number or
// float64. See the package comment for the semantics.
func (p *Policy) Evaluate(issuer string, claims map[string]any) *Decision {
	return p.EvaluateOptions(issuer, claims, Options{})
}

// EvaluateOptions is Evaluate under o.
func (p *Policy) EvaluateOptions(issuer string, claims map[string]any, o Options) *Decision {
	root := &Node{Kind: KindAnyOf}
	if p == nil || len(p.authorities) == 0 {
		root.Note = "no release policy"
		return &Decision{Explanation: root}
	}
	iss := normalizeAuthority(issuer)
	root.Children = make([]*Node, len(p.authorities))
	matched := false
	for i, a := range p.authorities {
		n := &Node{Kind: KindAuthority, Authority: a.written}
		if a.name != iss {
			n.Skipped, n.Note = true, "not the token's issuer"
		} else {
			matched = true
			g := evaluate(a.group, claims, o)
			n.Children, n.Met = []*Node{g}, g.Met
			root.Met = root.Met || g.Met
		}
		root.Children[i] = n
	}
	if !matched {
		root.Note = "the token's issuer " + quote(issuer) + " is not an authority of this policy"
	}
	d := &Decision{Allowed: root.Met, Explanation: root}
	d.Coerced = coerced(root, nil)
	return d
}

// coercedNote marks a claim node whose comparison coerced types.
const coercedNote = "compared as text: a string with "

// coerced collects the met claim nodes under n that were met by coercion.
func coerced(n *Node, out []string) []string {
	if n.Kind == KindClaim {
		if n.Met && strings.HasPrefix(n.Note, coercedNote) {
			out = append(out, "claim "+n.Claim+" "+n.Operator+" "+n.Expected+", actual "+n.Actual)
		}
		return out
	}
	for _, c := range n.Children {
		if !c.Skipped {
			out = coerced(c, out)
		}
	}
	return out
}

func evaluate(c *condition, claims map[string]any, o Options) *Node {
	if c.group != "" {
		n := &Node{Kind: c.group, Children: make([]*Node, len(c.children))}
		all, some := true, false
		for i, child := range c.children { // no short-circuit: see package comment
			cn := evaluate(child, claims, o)
			n.Children[i] = cn
			all = all && cn.Met
			some = some || cn.Met
		}
		n.Met = some
		if c.group == KindAllOf {
			n.Met = all
		}
		return n
	}

	n := &Node{Kind: KindClaim, Claim: c.claim, Operator: c.op.String(), Actual: missing}
	v, present := lookup(claims, c.path)
	if present {
		n.Actual = renderClaim(v)
	}
	if c.op == opExists {
		n.Expected = strconv.FormatBool(c.exists)
		n.Met = present == c.exists
		return n
	}
	n.Expected = c.operand.render()
	if !present {
		return n
	}
	got, why := claimScalar(v)
	if why != "" {
		n.Note = why
		return n
	}
	switch c.op {
	case opEquals, opNotEquals:
		if o.StrictTypes && got.kind != c.operand.kind {
			n.Note = "release_policy_strict_types: " + got.kind.String() + " is not compared with " + c.operand.kind.String()
			return n
		}
		eq, comparable := equal(c.operand, got)
		if !comparable {
			n.Note = "cannot compare " + got.kind.String() + " with " + c.operand.kind.String()
			return n
		}
		n.Met = eq == (c.op == opEquals)
		if got.kind != c.operand.kind {
			other := got.kind
			if other == kindString {
				other = c.operand.kind
			}
			n.Note = coercedNote + other.String() + ", as Key Vault does; release_policy_strict_types refuses it"
		}
	default:
		if got.kind != kindNumber {
			n.Note = "not a number"
			return n
		}
		cmp := cmpDecimal(got.num, c.operand.num)
		switch c.op {
		case opLess:
			n.Met = cmp < 0
		case opLessOrEquals:
			n.Met = cmp <= 0
		case opGreater:
			n.Met = cmp > 0
		case opGreaterOrEquals:
			n.Met = cmp >= 0
		}
	}
	return n
}

// lookup walks a dot path through nested objects.
func lookup(claims map[string]any, path []string) (any, bool) {
	m := claims
	for i, seg := range path {
		v, ok := m[seg]
		if !ok {
			return nil, false
		}
		if i == len(path)-1 {
			return v, true
		}
		if m, ok = v.(map[string]any); !ok {
			return nil, false
		}
	}
	return nil, false // unreachable: paths are never empty
}

// String summarises the first failing path below n, e.g.
//
//	anyOf[0] (authority https://a): allOf[1]: claim x-ms-sevsnpvm-is-debuggable equals false, actual true
//
// For a met node it follows the first met path instead.
func (n *Node) String() string {
	if n == nil {
		return "<no explanation>"
	}
	var b strings.Builder
	n.describe(&b)
	return b.String()
}

func (n *Node) describe(b *strings.Builder) {
	switch n.Kind {
	case KindClaim:
		b.WriteString("claim " + n.Claim + " " + n.Operator + " " + n.Expected + ", actual " + n.Actual)
		if n.Note != "" {
			b.WriteString(" (" + n.Note + ")")
		}
		return
	case KindAuthority:
		b.WriteString("authority " + n.Authority)
		if len(n.Children) == 0 {
			b.WriteString(": " + n.Note)
			return
		}
		b.WriteString(": ")
		n.Children[0].describe(b)
		return
	}
	// A group: follow the first child that decided the outcome.
	if n.Met && n.Kind == KindAllOf {
		b.WriteString(n.Kind + ": all " + strconv.Itoa(len(n.Children)) + " conditions met")
		return
	}
	for i, c := range n.Children {
		if c.Skipped || c.Met != n.Met {
			continue
		}
		b.WriteString(n.Kind + "[" + strconv.Itoa(i) + "]")
		if c.Kind == KindAuthority {
			b.WriteString(" (authority " + c.Authority + "): ")
			if len(c.Children) > 0 {
				c.Children[0].describe(b)
			}
			return
		}
		b.WriteString(": ")
		c.describe(b)
		return
	}
	if n.Note != "" {
		b.WriteString(n.Note)
		return
	}
	b.WriteString(n.Kind + ": not met")
}
