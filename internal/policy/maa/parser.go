package maa

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

const (
	// maxPolicyBytes bounds the policy text. Real policies are a few KiB;
	// the bound keeps a hostile upload from costing more than a moment.
	maxPolicyBytes = 256 << 10
	// maxNesting bounds nested function calls, which the parser handles
	// recursively.
	maxNesting = 32
)

// Parse parses a policy. Syntax errors are returned as *ParseError.
func Parse(text string) (*Policy, error) {
	if len(text) > maxPolicyBytes {
		return nil, &ParseError{Line: 1, Column: 1, Msg: fmt.Sprintf("policy is %d bytes; the limit is %d", len(text), maxPolicyBytes)}
	}
	p := &parser{lx: newLexer(text)}
	if err := p.checkUTF8(); err != nil {
		return nil, err
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	return p.policy()
}

type parser struct {
	lx      *lexer
	tok     token // current token
	version string
	minor   int      // minor version: 0, 1 or 2
	scope   []string // identifiers bound so far in the current rule, by slot
	depth   int      // function-call nesting
}

// checkUTF8 rejects invalid UTF-8 up front, locating the first bad byte, so
// that the lexer can count columns in code points without checking again.
func (p *parser) checkUTF8() error {
	src := p.lx.src
	if utf8.ValidString(src) {
		return nil
	}
	line, col := 1, 1
	for i, r := range src {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(src[i:]); size == 1 {
				return errAt(position{line, col}, "invalid UTF-8")
			}
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return errAt(position{line, col}, "invalid UTF-8")
}

func (p *parser) advance() error {
	t, err := p.lx.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

// errHere reports an error at the current token, ending with "found X".
func (p *parser) errHere(format string, args ...any) error {
	return errAt(p.tok.pos, "%s, found %s", fmt.Sprintf(format, args...), p.tok.describe())
}

// expect consumes a token of kind k; what names it in the error message.
func (p *parser) expect(k tokenKind, what string) error {
	if p.tok.kind != k {
		return p.errHere("expected %s", what)
	}
	return p.advance()
}

func (p *parser) isKeyword(word string) bool {
	return p.tok.kind == tokIdent && strings.EqualFold(p.tok.text, word)
}

func (p *parser) policy() (*Policy, error) {
	if !p.isKeyword("version") {
		return nil, p.errHere(`expected "version"`)
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if err := p.expect(tokAssign, `"=" after "version"`); err != nil {
		return nil, err
	}
	if p.tok.kind != tokDecimal {
		return nil, p.errHere("expected the policy version (1.0, 1.1 or 1.2)")
	}
	switch p.tok.text {
	case "1.0", "1.1", "1.2":
		p.version = p.tok.text
		p.minor = int(p.tok.text[2] - '0')
	default:
		return nil, errAt(p.tok.pos, "unsupported policy version %s (supported: 1.0, 1.1, 1.2)", p.tok.text)
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if err := p.expect(tokSemicolon, `";" after the version`); err != nil {
		return nil, err
	}

	pol := &Policy{version: p.version}
	var first [numSections]position
	for p.tok.kind != tokEOF {
		if p.tok.kind != tokIdent {
			return nil, p.errHere("expected a section name (configurationrules, authorizationrules or issuancerules)")
		}
		sec, ok := lookupSection(p.tok.text)
		switch {
		case !ok:
			return nil, errAt(p.tok.pos, "unknown section %q (expected configurationrules, authorizationrules or issuancerules)", p.tok.text)
		case pol.present[sec]:
			return nil, errAt(p.tok.pos, "duplicate %s section (the first is on line %d)", sec, first[sec].line)
		case sec == secConfiguration && p.minor < 1:
			return nil, errAt(p.tok.pos, "configurationrules requires policy version 1.1 or later (this policy is version %s)", p.version)
		}
		pol.present[sec], first[sec] = true, p.tok.pos
		if err := p.advance(); err != nil {
			return nil, err
		}
		if err := p.expect(tokLBrace, fmt.Sprintf(`"{" after %s`, sec)); err != nil {
			return nil, err
		}
		for p.tok.kind != tokRBrace {
			if p.tok.kind == tokEOF {
				return nil, p.errHere(`expected "}" to close %s`, sec)
			}
			r, err := p.rule(sec, len(pol.rules[sec])+1)
			if err != nil {
				return nil, err
			}
			pol.rules[sec] = append(pol.rules[sec], r)
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		// Every published policy writes "};". Requiring it keeps kura from
		// accepting text that MAA may reject.
		if err := p.expect(tokSemicolon, fmt.Sprintf(`";" after the "}" that closes %s`, sec)); err != nil {
			return nil, err
		}
	}
	return pol, nil
}

func (p *parser) rule(sec section, index int) (*rule, error) {
	r := &rule{sec: sec, index: index, pos: p.tok.pos}
	p.scope = p.scope[:0]
	if p.tok.kind != tokArrow {
		for {
			c, err := p.condition()
			if err != nil {
				return nil, err
			}
			r.conds = append(r.conds, c)
			if p.tok.kind != tokAnd {
				break
			}
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
		if p.tok.kind != tokArrow {
			return nil, p.errHere(`expected "=>"`)
		}
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	act, err := p.action(sec)
	if err != nil {
		return nil, err
	}
	r.act = act
	r.slots = len(p.scope)
	if err := p.expect(tokSemicolon, `";" after the action`); err != nil {
		return nil, err
	}
	return r, nil
}

func (p *parser) slotOf(name string) int {
	for i, n := range p.scope {
		if n == name {
			return i
		}
	}
	return -1
}

func (p *parser) condition() (condition, error) {
	c := condition{slot: -1}
	if p.tok.kind == tokNot {
		if p.minor < 2 {
			return c, errAt(p.tok.pos, `the "!" (absence) condition requires policy version 1.2 (this policy is version %s)`, p.version)
		}
		c.negated = true
		if err := p.advance(); err != nil {
			return c, err
		}
	}
	name := ""
	if p.tok.kind == tokIdent {
		if _, isAction := lookupAction(p.tok.text); isAction {
			// An action where a condition should start: the "=>" is missing.
			return c, p.errHere(`expected "=>"`)
		}
		switch {
		case strings.EqualFold(p.tok.text, "true") || strings.EqualFold(p.tok.text, "false"):
			return c, errAt(p.tok.pos, "%q cannot be used as an identifier", p.tok.text)
		case c.negated:
			return c, errAt(p.tok.pos, `a "!" condition cannot bind an identifier: it matches no claim`)
		case p.slotOf(p.tok.text) >= 0:
			return c, errAt(p.tok.pos, "identifier %q is already bound in this rule", p.tok.text)
		}
		name = p.tok.text
		if err := p.advance(); err != nil {
			return c, err
		}
		if err := p.expect(tokColon, fmt.Sprintf("\":\" after identifier %q", name)); err != nil {
			return c, err
		}
	}
	if err := p.expect(tokLBracket, `"[" to start a condition`); err != nil {
		return c, err
	}
	for {
		pc, err := p.propCond()
		if err != nil {
			return c, err
		}
		c.props = append(c.props, pc)
		if p.tok.kind == tokRBracket {
			break
		}
		if p.tok.kind != tokComma {
			return c, p.errHere(`expected "," or "]"`)
		}
		if err := p.advance(); err != nil {
			return c, err
		}
	}
	if err := p.advance(); err != nil {
		return c, err
	}
	// Bind only now: a condition cannot refer to the claim it is matching.
	if name != "" {
		c.slot = len(p.scope)
		p.scope = append(p.scope, name)
	}
	return c, nil
}

func (p *parser) propCond() (propCond, error) {
	var pc propCond
	if p.tok.kind != tokIdent {
		return pc, p.errHere("expected a claim property (type, value, valueType or issuer)")
	}
	prop, ok := lookupProp(p.tok.text)
	if !ok {
		return pc, errAt(p.tok.pos, "unknown claim property %q (expected type, value, valueType or issuer)", p.tok.text)
	}
	if err := p.advance(); err != nil {
		return pc, err
	}
	opTok := p.tok
	switch opTok.kind {
	case tokEq, tokAssign: // "=" is MAA's own sample usage; see the package comment
		pc.op = opEq
	case tokNe:
		pc.op = opNe
	case tokLt:
		pc.op = opLt
	case tokLe:
		pc.op = opLe
	case tokGt:
		pc.op = opGt
	case tokGe:
		pc.op = opGe
	default:
		return pc, p.errHere("expected a comparison operator (==, !=, <, <=, >, >=) after %s", prop)
	}
	if err := p.advance(); err != nil {
		return pc, err
	}
	rhsPos := p.tok.pos
	rhs, err := p.expr()
	if err != nil {
		return pc, err
	}
	// Reject comparisons that can never hold: in a deny() rule they are a
	// silent hole in the policy.
	k := rhs.kind()
	switch {
	case prop != propValue && pc.op.ordering():
		return pc, errAt(opTok.pos, "%s is a string and %q applies only to integers, so this comparison is never true", prop, pc.op)
	case prop != propValue && (k == kindInt || k == kindBool):
		return pc, errAt(rhsPos, "%s is a string; comparing it with %s is never true", prop, k)
	case pc.op.ordering() && (k == kindString || k == kindBool):
		return pc, errAt(opTok.pos, "%q applies only to integers; comparing with %s is never true", pc.op, k)
	}
	pc.prop, pc.rhs = prop, rhs
	return pc, nil
}

func (p *parser) expr() (expr, error) {
	t := p.tok
	switch t.kind {
	case tokString:
		return literal{t.text}, p.advance()
	case tokInt:
		n, err := strconv.ParseInt(t.text, 10, 64)
		if err != nil {
			return nil, errAt(t.pos, "integer %s is out of the 64-bit range", t.text)
		}
		return literal{n}, p.advance()
	case tokDecimal:
		return nil, errAt(t.pos, "%s: decimal numbers are not supported (claim values are integers)", t.text)
	case tokIdent:
		switch strings.ToLower(t.text) {
		case "true":
			return literal{true}, p.advance()
		case "false":
			return literal{false}, p.advance()
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		switch p.tok.kind {
		case tokLParen:
			return p.call(t)
		case tokDot:
			return p.claimRef(t)
		}
		return nil, p.errHere(`expected "." or "(" after %q`, t.text)
	}
	return nil, p.errHere("expected a value (string, integer, true, false, claim property or function call)")
}

// claimRef parses ".prop" after the identifier ident.
func (p *parser) claimRef(ident token) (expr, error) {
	slot := p.slotOf(ident.text)
	if slot < 0 {
		return nil, errAt(ident.pos, "identifier %q is not bound by an earlier condition of this rule", ident.text)
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind != tokIdent {
		return nil, p.errHere("expected a claim property after %q", ident.text+".")
	}
	prop, ok := lookupProp(p.tok.text)
	if !ok {
		return nil, errAt(p.tok.pos, "unknown claim property %q (expected type, value, valueType or issuer)", p.tok.text)
	}
	return claimRef{slot: slot, prop: prop}, p.advance()
}

// call parses the argument list of the function named by name; the current
// token is "(".
func (p *parser) call(name token) (expr, error) {
	fn, ok := lookupFunction(name.text)
	switch {
	case !ok:
		return nil, errAt(name.pos, "unknown function %q (expected JmesPath, JsonToClaimValue, IsSubsetOf, AppendString, NegateBool or ContainsOnlyValue)", name.text)
	case p.minor < 2:
		return nil, errAt(name.pos, "functions require policy version 1.2 (this policy is version %s)", p.version)
	case p.depth >= maxNesting:
		return nil, errAt(name.pos, "function calls are nested deeper than %d levels", maxNesting)
	}
	p.depth++
	defer func() { p.depth-- }()
	if err := p.advance(); err != nil {
		return nil, err
	}
	var args []expr
	var argPos []position
	if p.tok.kind != tokRParen {
		for {
			argPos = append(argPos, p.tok.pos)
			a, err := p.expr()
			if err != nil {
				return nil, err
			}
			args = append(args, a)
			if p.tok.kind == tokRParen {
				break
			}
			if p.tok.kind != tokComma {
				return nil, p.errHere(`expected "," or ")" in the arguments of %s`, fn)
			}
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	params := fn.params()
	if len(args) != len(params) {
		return nil, errAt(name.pos, "%s takes %d argument(s), found %d", fn, len(params), len(args))
	}
	for i, a := range args {
		if !params[i].accepts(a.kind()) {
			return nil, errAt(argPos[i], "argument %d of %s must be %s, found %s", i+1, fn, params[i], a.kind())
		}
	}
	c := &call{fn: fn, args: args}
	if fn == fnJmesPath {
		lit, ok := args[1].(literal)
		if !ok {
			return nil, errAt(argPos[1], "the query of JmesPath must be a string literal: kura does not run queries taken from claims")
		}
		q, err := compileQuery(lit.v.(string))
		if err != nil {
			return nil, errAt(argPos[1], "invalid JmesPath query: %v", err)
		}
		c.query = q
	}
	return c, nil
}

func (p *parser) action(sec section) (action, error) {
	a := action{claimSlot: -1}
	name := p.tok
	if name.kind != tokIdent {
		return a, p.errHere("expected an action (permit, deny, add, issue or issueproperty)")
	}
	k, ok := lookupAction(name.text)
	if !ok {
		return a, errAt(name.pos, "unknown action %q (expected permit, deny, add, issue or issueproperty)", name.text)
	}
	if !k.allowedIn(sec) {
		return a, errAt(name.pos, "%s() is not allowed in %s (allowed there: %s)", k, sec, sec.allowedActions())
	}
	a.kind = k
	if err := p.advance(); err != nil {
		return a, err
	}
	if err := p.expect(tokLParen, fmt.Sprintf(`"(" after %s`, k)); err != nil {
		return a, err
	}
	if k == actPermit || k == actDeny {
		if p.tok.kind != tokRParen {
			return a, p.errHere(`%s() takes no arguments: expected ")"`, k)
		}
		return a, p.advance()
	}
	seen := map[string]bool{}
	for {
		if p.tok.kind != tokIdent {
			return a, p.errHere("expected an argument of %s (type, value or claim)", k)
		}
		arg := strings.ToLower(p.tok.text)
		switch {
		case arg != "type" && arg != "value" && arg != "claim":
			return a, errAt(p.tok.pos, "unknown argument %q of %s (expected type, value or claim)", p.tok.text, k)
		case seen[arg]:
			return a, errAt(p.tok.pos, "duplicate argument %q of %s", p.tok.text, k)
		}
		seen[arg] = true
		if err := p.advance(); err != nil {
			return a, err
		}
		if err := p.expect(tokAssign, fmt.Sprintf(`"=" after %q`, arg)); err != nil {
			return a, err
		}
		switch arg {
		case "claim":
			if p.tok.kind != tokIdent {
				return a, p.errHere(`expected an identifier after "claim="`)
			}
			slot := p.slotOf(p.tok.text)
			if slot < 0 {
				return a, errAt(p.tok.pos, "identifier %q is not bound by a condition of this rule", p.tok.text)
			}
			a.claimSlot = slot
			if err := p.advance(); err != nil {
				return a, err
			}
		case "type":
			// The type of a claim the policy creates is fixed by the
			// policy text; evidence never chooses which claim it becomes.
			if p.tok.kind != tokString {
				return a, p.errHere("expected a string literal for the claim type")
			}
			if p.tok.text == "" {
				return a, errAt(p.tok.pos, "the claim type must not be empty")
			}
			a.typ = p.tok.text
			if err := p.advance(); err != nil {
				return a, err
			}
		default:
			e, err := p.expr()
			if err != nil {
				return a, err
			}
			a.val = e
		}
		if p.tok.kind == tokRParen {
			break
		}
		if p.tok.kind != tokComma {
			return a, p.errHere(`expected "," or ")"`)
		}
		if err := p.advance(); err != nil {
			return a, err
		}
	}
	switch {
	case seen["claim"] && (seen["type"] || seen["value"]):
		return a, errAt(name.pos, "%s takes either claim= or type= and value=, not both", k)
	case !seen["claim"] && !(seen["type"] && seen["value"]):
		return a, errAt(name.pos, "%s needs type= and value=, or claim=", k)
	}
	return a, p.advance()
}
