package release

import (
	"encoding/json"
	"errors"
	"testing"
)

// fuzzClaims touches every kind of claim value, at the top level and nested,
// so that fuzzed policies which parse also exercise every comparison.
func fuzzClaims() map[string]any {
	return numbers(`{
		"a": "x", "b": true, "c": 3, "d": null, "e": [1, "x"], "f": {}, "g": 1.5e300, "h": "true", "i": "3",
		"sdk-test": true, "x-ms-sgx-svn": 2, "x-ms-attestation-type": "sevsnpvm",
		"x-ms-isolation-tee": {"x-ms-attestation-type": "sevsnpvm", "x-ms-compliance-status": "azure-compliant-cvm",
			"x-ms-sevsnpvm-is-debuggable": false, "x-ms-sevsnpvm-vmpl": 0, "a": {"b": {"c": -1}}}
	}`)
}

// countNodes counts an explanation's nodes.
func countNodes(n *Node) int {
	total := 1
	for _, c := range n.Children {
		total += countNodes(c)
	}
	return total
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{sampleA, sampleB3, sampleC, sampleD, sampleE, sampleF, sampleG, sampleH} {
		f.Add([]byte(s))
	}
	claims := fuzzClaims()
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data)
		if err != nil {
			if p != nil {
				t.Fatalf("Parse returned a policy with error %v", err)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse error %v (%T) is not a *ParseError", err, err)
			}
			if pe.Path == "" || pe.Msg == "" {
				t.Fatalf("ParseError without path or message: %#v", pe)
			}
			return
		}
		auths := p.Authorities()
		if len(auths) == 0 {
			t.Fatalf("a parsed policy has no authorities")
		}
		for _, iss := range append(auths, "https://not-an-authority.example") {
			d := p.Evaluate(iss, claims)
			if d == nil || d.Explanation == nil {
				t.Fatalf("Evaluate(%q) returned no decision or explanation", iss)
			}
			if d.Allowed != d.Explanation.Met {
				t.Fatalf("Allowed = %v but the root is Met = %v", d.Allowed, d.Explanation.Met)
			}
			if iss == "https://not-an-authority.example" && d.Allowed {
				t.Fatalf("allowed a token from an issuer that is not an authority: %s", d)
			}
			if n := countNodes(d.Explanation); n > 1+2*MaxNodes {
				t.Fatalf("explanation has %d nodes", n)
			}
			b, err := json.Marshal(d)
			if err != nil {
				t.Fatalf("explanation does not marshal: %v", err)
			}
			if d.String() == "" {
				t.Fatalf("empty summary")
			}
			again, _ := json.Marshal(p.Evaluate(iss, claims))
			if string(again) != string(b) {
				t.Fatalf("evaluation is not deterministic:\n%s\n%s", b, again)
			}
		}
	})
}
