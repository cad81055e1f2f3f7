package maa

import "fmt"

const (
	// maxSteps bounds one evaluation: every node of the condition search
	// (a partial combination of bound claims) and every function call is a
	// step. A realistic policy uses a few dozen; the bound stops rules whose
	// identifier combinations multiply out.
	maxSteps = 10000
	// maxClaims bounds the incoming set, including claims the policy adds,
	// and separately the property set.
	maxClaims = 1000
)

// Result is the outcome of evaluating a policy.
type Result struct {
	Permitted bool
	// Reason says which rule decided, e.g. "authorizationrules rule 2
	// (line 5): deny()", or why nothing did. It is set on permit too, for
	// audit logs.
	Reason string
	// Issued holds the outgoing claims (issue), in order, with Issuer
	// "AttestationPolicy". Empty unless Permitted.
	Issued []Claim
	// Properties holds issueproperty results from configurationrules and,
	// if permitted, issuancerules.
	Properties []Claim
}

// Evaluate runs the policy over the incoming claims. An error means a runtime
// fault (a function given the wrong type of argument, malformed JSON, a
// malformed incoming claim, an exceeded limit); callers must treat it as deny.
func (p *Policy) Evaluate(incoming []Claim) (*Result, error) {
	if len(incoming) > maxClaims {
		return nil, &LimitError{What: "claims in the incoming set", Limit: maxClaims}
	}
	ev := &evaluator{claims: make([]claimRec, 0, len(incoming)+8)}
	for i, c := range incoming {
		rec, err := newClaimRec(c)
		if err != nil {
			return nil, fmt.Errorf("incoming claim %d (%q): %w", i, c.Type, err)
		}
		ev.claims = append(ev.claims, rec)
	}

	res := &Result{}
	for _, r := range p.rules[secConfiguration] {
		if err := ev.runActions(r); err != nil {
			return nil, err
		}
	}
	if p.present[secAuthorization] {
		decided, err := ev.authorize(p.rules[secAuthorization], res)
		if err != nil {
			return nil, err
		}
		if !decided {
			res.Reason = "no authorization rule permitted the claims"
		}
	} else {
		res.Reason = "the policy has no authorizationrules section"
	}
	if res.Permitted {
		for _, r := range p.rules[secIssuance] {
			if err := ev.runActions(r); err != nil {
				return nil, err
			}
		}
		res.Issued = exportClaims(ev.issued)
	}
	res.Properties = exportClaims(ev.props)
	return res, nil
}

func exportClaims(recs []claimRec) []Claim {
	if len(recs) == 0 {
		return nil
	}
	out := make([]Claim, len(recs))
	for i := range recs {
		out[i] = recs[i].export()
	}
	return out
}

// evaluator holds the state of one evaluation.
type evaluator struct {
	claims []claimRec // incoming set, growing as rules add claims
	issued []claimRec
	props  []claimRec
	steps  int
}

func (ev *evaluator) step() error {
	ev.steps++
	if ev.steps > maxSteps {
		return &LimitError{What: "evaluation steps", Limit: maxSteps}
	}
	return nil
}

func ruleError(r *rule, err error) error {
	return &EvalError{Section: r.sec.String(), Rule: r.index, Line: r.pos.line, Err: err}
}

// authorize runs authorizationrules until a permit() or deny() matches.
func (ev *evaluator) authorize(rules []*rule, res *Result) (bool, error) {
	for _, r := range rules {
		if r.act.kind == actAdd {
			if err := ev.runActions(r); err != nil {
				return false, err
			}
			continue
		}
		matched := false
		err := ev.match(r, func([]*claimRec) (bool, error) {
			matched = true
			return true, nil
		})
		if err != nil {
			return false, ruleError(r, err)
		}
		if matched {
			res.Permitted = r.act.kind == actPermit
			res.Reason = fmt.Sprintf("%s rule %d (line %d): %s()", r.sec, r.index, r.pos.line, r.act.kind)
			return true, nil
		}
	}
	return false, nil
}

// runActions executes r's action once for every combination of claims that
// satisfies its conditions.
func (ev *evaluator) runActions(r *rule) error {
	err := ev.match(r, func(b []*claimRec) (bool, error) {
		return false, ev.apply(r, b)
	})
	if err != nil {
		return ruleError(r, err)
	}
	return nil
}

// match enumerates the combinations of claims satisfying r's conditions,
// calling found for each until it asks to stop. It matches against the
// incoming set as it was when the rule started: the claims found() adds
// are appended beyond the snapshot's length and so are not seen.
func (ev *evaluator) match(r *rule, found func(b []*claimRec) (stop bool, err error)) error {
	m := matcher{ev: ev, r: r, snap: ev.claims, bound: make([]*claimRec, r.slots), found: found}
	_, err := m.walk(0)
	return err
}

type matcher struct {
	ev    *evaluator
	r     *rule
	snap  []claimRec
	bound []*claimRec // by slot
	found func(b []*claimRec) (bool, error)
}

// walk tries condition i onwards with the claims bound so far.
func (m *matcher) walk(i int) (bool, error) {
	if err := m.ev.step(); err != nil {
		return true, err
	}
	if i == len(m.r.conds) {
		return m.found(m.bound)
	}
	c := &m.r.conds[i]
	// The right-hand sides depend only on earlier bindings, never on the
	// candidate claim, so they are computed once per node.
	var buf [4]any
	rhs := buf[:0]
	possible := true
	for j := range c.props {
		v, err := c.props[j].rhs.eval(m.ev, m.bound)
		if err != nil {
			return true, err
		}
		if _, ok := v.(noValue); ok {
			possible = false // nothing equals "no value"
		}
		rhs = append(rhs, v)
	}
	switch {
	case c.negated:
		if possible && m.first(c, rhs, 0) >= 0 {
			return false, nil
		}
		return m.walk(i + 1)
	case !possible:
		return false, nil
	case c.slot < 0:
		if m.first(c, rhs, 0) < 0 {
			return false, nil
		}
		return m.walk(i + 1)
	}
	for j := m.first(c, rhs, 0); j >= 0; j = m.first(c, rhs, j+1) {
		m.bound[c.slot] = &m.snap[j]
		if stop, err := m.walk(i + 1); stop || err != nil {
			return stop, err
		}
	}
	return false, nil
}

// first returns the index of the first claim at or after from that
// satisfies every property comparison of c, or -1.
func (m *matcher) first(c *condition, rhs []any, from int) int {
next:
	for j := from; j < len(m.snap); j++ {
		cl := &m.snap[j]
		for k := range c.props {
			if !c.props[k].matches(cl, rhs[k]) {
				continue next
			}
		}
		return j
	}
	return -1
}

// apply executes a claim-producing action for one combination of claims.
func (ev *evaluator) apply(r *rule, b []*claimRec) error {
	var typ string
	var vals []any
	if r.act.claimSlot >= 0 {
		c := b[r.act.claimSlot]
		typ, vals = c.typ, []any{c.val}
	} else {
		v, err := r.act.val.eval(ev, b)
		if err != nil {
			return err
		}
		typ = r.act.typ
		switch x := v.(type) {
		case noValue:
			return nil // JsonToClaimValue(null): no claim, by design
		case set:
			vals = x
		default:
			vals = []any{x}
		}
	}
	for _, v := range vals {
		rec := claimRec{typ: typ, val: v, issuer: IssuerPolicy}
		switch r.act.kind {
		case actIssueProperty:
			if len(ev.props) >= maxClaims {
				return &LimitError{What: "properties", Limit: maxClaims}
			}
			ev.props = append(ev.props, rec)
		case actIssue:
			if err := ev.addIncoming(rec); err != nil {
				return err
			}
			ev.issued = append(ev.issued, rec)
		default: // actAdd; the parser allows no other action here
			if err := ev.addIncoming(rec); err != nil {
				return err
			}
		}
	}
	return nil
}

func (ev *evaluator) addIncoming(rec claimRec) error {
	if len(ev.claims) >= maxClaims {
		return &LimitError{What: "claims in the incoming set", Limit: maxClaims}
	}
	ev.claims = append(ev.claims, rec)
	return nil
}
