package release

import (
	"errors"
	"strings"
	"testing"
)

// wrap puts conditions into a one-authority policy.
func wrap(conditions string) string {
	return `{"version":"1.0.0","anyOf":[{"authority":"https://a","allOf":[` + conditions + `]}]}`
}

// nestedPolicy nests extra allOf groups below the authority's allOf, so that
// the innermost group is at level 2+extra.
func nestedPolicy(extra int) string {
	inner := `{"claim":"x","exists":true}`
	for range extra {
		inner = `{"allOf":[` + inner + `]}`
	}
	return wrap(inner)
}

// manyConditions is a policy with one authority entry and n conditions.
func manyConditions(n int) string {
	conds := make([]string, n)
	for i := range conds {
		conds[i] = `{"claim":"a","exists":true}`
	}
	return wrap(strings.Join(conds, ","))
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		path string
		msg  string // substring of Msg
	}{
		// Document level.
		{"syntax error with offset", `{"anyOf": [}`, "$", "invalid JSON at byte offset 11: invalid character '}'"},
		{"truncated", `{"anyOf":[`, "$", "invalid JSON at byte offset 10: unexpected end of JSON input"},
		{"empty document", ``, "$", "invalid JSON at byte offset 0"},
		{"trailing data", sampleH + ` x`, "$", "after top-level value"},
		{"byte order mark", "\xef\xbb\xbf" + sampleH, "$", "invalid JSON at byte offset 0: a UTF-8 byte order mark is not allowed"},
		{"invalid UTF-8", "{\"anyOf\":[\"\xff\"]}", "$", "invalid UTF-8 at byte offset 11"},
		{"too large", wrap(`{"claim":"x","equals":"` + strings.Repeat("a", MaxPolicySize) + `"}`), "$", "the limit is 65536"},
		{"not an object", `["anyOf"]`, "$", "must be a JSON object, not an array"},
		{"missing anyOf", `{"version":"1.0.0"}`, "$", "missing anyOf: the top level must be anyOf over authorities"},
		{"duplicate member", wrap(`{"claim":"x","equals":"a","claim":"y"}`), "anyOf[0].allOf[0].claim", `duplicate member "claim"`},

		// Top level.
		{"wrong version", `{"version":"1.0","anyOf":[]}`, "version", `unsupported version "1.0"`},
		{"version not a string", `{"version":1,"anyOf":[]}`, "version", "must be the string \"1.0.0\", not a number"},
		{"unknown member", `{"version":"1.0.0","versoin":"1.0.0","anyOf":[]}`, "versoin", `unknown member "versoin"`},
		{"case-sensitive member", `{"AnyOf":[]}`, "AnyOf", `did you mean "anyOf"?`},
		{"quoted member path", `{"a b":1}`, `["a b"]`, `unknown member "a b"`},
		{"top-level allOf", sampleD, "allOf", "the top level must be anyOf over authorities"},
		{"top-level authority", `{"authority":"https://a","allOf":[{"claim":"x","exists":true}]}`, "authority", "the top level must be anyOf over authorities"},
		{"empty anyOf", `{"version":"1.0.0","anyOf":[]}`, "anyOf", "anyOf must not be empty"},
		{"anyOf not an array", `{"anyOf":{"authority":"https://a"}}`, "anyOf", "anyOf must be an array, not an object"},
		{"nonce not a boolean", `{"x-kura-require-nonce":"yes","anyOf":[]}`, "x-kura-require-nonce", "must be true or false, not a string"},

		// Authority entries.
		{"authority entry not an object", `{"anyOf":["https://a"]}`, "anyOf[0]", "must be an authority object, not a string"},
		{"authority missing", `{"anyOf":[{"allOf":[{"claim":"x","exists":true}]}]}`, "anyOf[0]", `authority entry has no "authority" member`},
		{"authority without allOf/anyOf", `{"anyOf":[{"authority":"https://a"}]}`, "anyOf[0]", "has neither allOf nor anyOf"},
		{"authority not a string", `{"anyOf":[{"authority":["https://a"],"allOf":[]}]}`, "anyOf[0].authority", "authority must be a string, not an array"},
		{"authority empty", `{"anyOf":[{"authority":"/","allOf":[{"claim":"x","exists":true}]}]}`, "anyOf[0].authority", "must not be empty"},
		{"authority allOf and anyOf", `{"anyOf":[{"authority":"https://a","allOf":[{"claim":"x","exists":true}],"anyOf":[{"claim":"x","exists":true}]}]}`, "anyOf[0].anyOf", "allOf or anyOf, not both"},
		{"claim directly in authority", `{"anyOf":[{"authority":"https://a","claim":"x","equals":"y"}]}`, "anyOf[0].claim", "cannot stand directly in an authority entry"},
		{"empty authority allOf", `{"anyOf":[{"authority":"https://a","allOf":[]}]}`, "anyOf[0].allOf", "allOf must not be empty"},

		// Conditions.
		{"condition not an object", wrap(`{"claim":"x","exists":true},"x"`), "anyOf[0].allOf[1]", "a condition must be an object, not a string"},
		{"empty condition", wrap(`{}`), "anyOf[0].allOf[0]", "empty condition"},
		{"unknown member in condition", wrap(`{"claim":"x","equals":"y","comment":"z"}`), "anyOf[0].allOf[0].comment", `unknown member "comment"`},
		{"no operator", wrap(`{"claim":"x-ms-attestation-type"}`), "anyOf[0].allOf[0]", `claim condition on "x-ms-attestation-type" has no operator`},
		{"two operators", wrap(`{"claim":"x","equals":"a","notEquals":"b"}`), "anyOf[0].allOf[0].notEquals", "exactly one operator, and this one already has equals"},
		{"operator without claim", wrap(`{"equals":"a"}`), "anyOf[0].allOf[0]", `no "claim" member`},
		{"operator on object value", wrap(`{"claim":"x","equals":{"a":1}}`), "anyOf[0].allOf[0].equals", "equals takes a string, number or boolean, not an object"},
		{"operator on null value", wrap(`{"claim":"x","notEquals":null}`), "anyOf[0].allOf[0].notEquals", "not null"},
		{"string with greater", wrap(`{"claim":"x-ms-sgx-svn","greater":"1"}`), "anyOf[0].allOf[0].greater", "greater compares numbers, so its value must be a number, not a string"},
		{"boolean with lessOrEquals", wrap(`{"claim":"x","lessOrEquals":true}`), "anyOf[0].allOf[0].lessOrEquals", "must be a number, not a boolean"},
		{"exists with a string", wrap(`{"claim":"x","exists":"true"}`), "anyOf[0].allOf[0].exists", "exists takes true or false, not a string"},
		{"number out of range", wrap(`{"claim":"x","equals":1e99999999999999}`), "anyOf[0].allOf[0].equals", "out of range"},
		{"claim not a string", wrap(`{"claim":7,"equals":7}`), "anyOf[0].allOf[0].claim", "claim must be a string, not a number"},
		{"claim empty", wrap(`{"claim":"","equals":"y"}`), "anyOf[0].allOf[0].claim", "claim must not be empty"},
		{"claim with empty segment", wrap(`{"claim":"x-ms-isolation-tee..x-ms-attestation-type","equals":"y"}`), "anyOf[0].allOf[0].claim", "empty segment"},
		{"nested allOf and anyOf", wrap(`{"allOf":[{"claim":"x","exists":true}],"anyOf":[{"claim":"x","exists":true}]}`), "anyOf[0].allOf[0].anyOf", "allOf or anyOf, not both"},
		{"group with claim", wrap(`{"claim":"x","anyOf":[{"claim":"x","exists":true}]}`), "anyOf[0].allOf[0].anyOf", "also has claim"},
		{"empty nested anyOf", wrap(`{"anyOf":[]}`), "anyOf[0].allOf[0].anyOf", "anyOf must not be empty"},
		{"authority in a condition", wrap(`{"authority":"https://a","allOf":[{"claim":"x","exists":true}]}`), "anyOf[0].allOf[0].authority", "only in the entries of the top-level anyOf"},

		// Legacy form.
		{"legacy unknown condition", wrap(`{"claim":"x","condition":"equal","value":"y"}`), "anyOf[0].allOf[0].condition", `unknown condition "equal"; expected one of equals, notEquals`},
		{"legacy condition not a string", wrap(`{"claim":"x","condition":1,"value":"y"}`), "anyOf[0].allOf[0].condition", "condition must be a string"},
		{"legacy without value", wrap(`{"claim":"x","condition":"equals"}`), "anyOf[0].allOf[0]", `legacy condition "equals" has no "value"`},
		{"legacy value without condition", wrap(`{"claim":"x","value":"y"}`), "anyOf[0].allOf[0].value", `"value" without "condition"`},
		{"legacy mixed with operator", wrap(`{"claim":"x","condition":"equals","value":"y","equals":"y"}`), "anyOf[0].allOf[0].condition", "mixes the legacy condition/value form with the equals operator"},
		{"legacy greater with string", wrap(`{"claim":"x","condition":"greater","value":"1"}`), "anyOf[0].allOf[0].value", "must be a number, not a string"},

		// Limits.
		{"too deep", nestedPolicy(15), "anyOf[0].allOf" + strings.Repeat("[0].allOf", 15), "nested deeper than 16 levels"},
		{"too many conditions", manyConditions(MaxNodes), "anyOf[0].allOf[999]", "more than 1000 authority entries and conditions"},
		{"JSON too deep", wrap(`{"claim":"x","equals":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`),
			"anyOf[0].allOf[0].equals" + strings.Repeat("[0]", 59), "JSON nested deeper than 64 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse([]byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse accepted %s", tt.doc)
			}
			if p != nil {
				t.Errorf("Parse returned a policy with an error")
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T) is not a *ParseError", err, err)
			}
			if pe.Path != tt.path {
				t.Errorf("Path = %q, want %q (Msg %q)", pe.Path, tt.path, pe.Msg)
			}
			if !strings.Contains(pe.Msg, tt.msg) {
				t.Errorf("Msg = %q, want it to contain %q", pe.Msg, tt.msg)
			}
			if err.Error() != pe.Path+": "+pe.Msg {
				t.Errorf("Error() = %q, want Path: Msg", err.Error())
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name string
		doc  string
	}{
		{"depth limit exactly", nestedPolicy(14)},
		{"node limit exactly", manyConditions(MaxNodes - 1)},
		{"size limit exactly", wrap(`{"claim":"x","equals":"` + strings.Repeat("a", MaxPolicySize-len(wrap(`{"claim":"x","equals":""}`))) + `"}`)},
		{"every operator", wrap(`{"claim":"a","equals":"s"},{"claim":"a","equals":1.5},{"claim":"a","equals":true},` +
			`{"claim":"a","notEquals":false},{"claim":"a","less":1},{"claim":"a","lessOrEquals":-2e3},` +
			`{"claim":"a","greater":0},{"claim":"a","greaterOrEquals":9007199254740993},{"claim":"a","exists":false}`)},
		{"legacy every condition", wrap(`{"claim":"a","condition":"notEquals","value":"x"},{"claim":"a","condition":"exists","value":true},` +
			`{"value":3,"condition":"less","claim":"a"}`)},
		{"members in any order", `{"anyOf":[{"allOf":[{"equals":"y","claim":"x"}],"authority":"https://a"}],"version":"1.0.0"}`},
		{"whitespace", " \n\t" + sampleA + "\n "},
		{"nonce false", `{"x-kura-require-nonce":false,"anyOf":[{"authority":"https://a","anyOf":[{"claim":"x","exists":true}]}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse([]byte(tt.doc)); err != nil {
				t.Fatalf("Parse: %v", err)
			}
		})
	}
}

func TestRequireNonce(t *testing.T) {
	p, err := Parse([]byte(`{"version":"1.0.0","x-kura-require-nonce":true,"anyOf":[{"authority":"https://a","allOf":[{"claim":"x","exists":true}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if !p.RequireNonce() {
		t.Errorf("RequireNonce() = false, want true")
	}
}

func TestAuthoritiesNormalisedAndDeduplicated(t *testing.T) {
	p, err := Parse([]byte(`{"anyOf":[
		{"authority":"https://b/","allOf":[{"claim":"x","exists":true}]},
		{"authority":"https://a","allOf":[{"claim":"x","exists":true}]},
		{"authority":"https://b","allOf":[{"claim":"y","exists":true}]},
		{"authority":"https://a//","allOf":[{"claim":"y","exists":true}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(p.Authorities(), " ")
	if want := "https://b https://a"; got != want {
		t.Errorf("Authorities() = %q, want %q", got, want)
	}
	// The caller gets a copy.
	p.Authorities()[0] = "mutated"
	if p.Authorities()[0] != "https://b" {
		t.Errorf("Authorities() exposes the policy's own slice")
	}
}

// TestAuthorityTrailingSlashes: authorities and issuers are compared without
// trailing slashes, however many, the same way oidc.NormalizeIssuer treats a
// token's iss (the two used to differ on "https://a//").
func TestAuthorityTrailingSlashes(t *testing.T) {
	p, err := Parse([]byte(`{"version":"1.0.0","anyOf":[{"authority":"https://a//","allOf":[{"claim":"x","equals":"y"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Authorities(); len(got) != 1 || got[0] != "https://a" {
		t.Errorf("Authorities() = %q", got)
	}
	for _, iss := range []string{"https://a", "https://a/", "https://a///"} {
		if d := p.Evaluate(iss, map[string]any{"x": "y"}); !d.Allowed {
			t.Errorf("issuer %q not matched", iss)
		}
	}
	if d := p.Evaluate("https://a.evil", map[string]any{"x": "y"}); d.Allowed {
		t.Error("another issuer matched")
	}
}
