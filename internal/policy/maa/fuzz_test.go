package maa

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// fuzzClaims is a small claim set touching every value kind, so that fuzzed
// policies which parse also exercise comparisons and functions.
func fuzzClaims() []Claim {
	return []Claim{
		svc("x-ms-attestation-type", "sevsnpvm"),
		svc("x-ms-sevsnpvm-is-debuggable", false),
		svc("x-ms-sevsnpvm-vmpl", 0),
		svc("x-ms-sevsnpvm-guestsvn", 2),
		svc("x-ms-sgx-svn", 3),
		svc("x-ms-sgx-mrsigner", "mrsigner1"),
		svc("a", "1"),
		svc("b", "x"),
		svc("secureBootEnabled", true),
		svc("events", eventsJSON),
		svc("pcrs", `{"PCRs":[{"Index":0,"Digests":{"SHA1":"KCk6Ow"}}]}`),
		svc("x-ms-runtime", map[string]any{"keys": []any{map[string]any{"kid": "k1"}}}),
		svc("key_ops", []any{"encrypt", "decrypt"}),
		{Type: "$is-debuggable", Value: true},
		{Type: "c", Value: "custom"},
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range samplePolicies() {
		f.Add(s.text)
	}
	claims := fuzzClaims()
	f.Fuzz(func(t *testing.T, text string) {
		p, err := Parse(text)
		if err != nil {
			if p != nil {
				t.Fatalf("Parse returned a policy with error %v", err)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse error %v (%T) is not a *ParseError", err, err)
			}
			if pe.Line < 1 || pe.Column < 1 {
				t.Fatalf("ParseError position line %d, column %d is not 1-based: %v", pe.Line, pe.Column, pe)
			}
			if lines := strings.Count(text, "\n") + 1; pe.Line > lines {
				t.Fatalf("ParseError line %d is beyond the text's %d lines: %v", pe.Line, lines, pe)
			}
			return
		}
		res, err := p.Evaluate(claims)
		if err != nil {
			var ee *EvalError
			var le *LimitError
			if !errors.As(err, &ee) && !errors.As(err, &le) {
				t.Fatalf("Evaluate error %v (%T) is neither an EvalError nor a LimitError", err, err)
			}
			return
		}
		if !res.Permitted && (res.Reason == "" || len(res.Issued) > 0) {
			t.Fatalf("deny with reason %q and issued claims %v", res.Reason, res.Issued)
		}
		again, err := p.Evaluate(claims)
		if err != nil || !reflect.DeepEqual(res, again) {
			t.Fatalf("evaluation is not deterministic: %+v, then %+v (%v)", res, again, err)
		}
	})
}
