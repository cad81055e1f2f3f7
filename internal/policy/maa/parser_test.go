package maa

import (
	"errors"
	"strings"
	"testing"
)

func TestParseErrorMessage(t *testing.T) {
	_, err := Parse("version=1.0;\nauthorizationrules {\n  [type==\"a\"]   permit();\n};")
	const want = `line 3, column 17: expected "=>", found "permit"`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %s", err, want)
	}
}

func TestParseErrors(t *testing.T) {
	nested := "version=1.2; authorizationrules { => add(type=\"x\", value=" +
		strings.Repeat("NegateBool(", maxNesting+1) + "true" + strings.Repeat(")", maxNesting+1) + "); };"
	tests := []struct {
		name      string
		policy    string
		line, col int
		msg       string // substring of ParseError.Msg
	}{
		{"empty policy", "", 1, 1, `expected "version", found end of input`},
		{"missing version", "authorizationrules { => permit(); };", 1, 1, `expected "version", found "authorizationrules"`},
		{"bad version", "version=2.0;", 1, 9, "unsupported policy version 2.0 (supported: 1.0, 1.1, 1.2)"},
		{"version 1.3", "version = 1.3 ;", 1, 11, "unsupported policy version 1.3"},
		{"version without minor", "version=1;", 1, 9, `expected the policy version (1.0, 1.1 or 1.2), found "1"`},
		{"missing ; after version", "version=1.0\nauthorizationrules { };", 2, 1, `expected ";" after the version, found "authorizationrules"`},
		{"unknown section", "version=1.0;\nauthorisationrules { };", 2, 1, `unknown section "authorisationrules"`},
		{"duplicate section", "version=1.0;\nauthorizationrules { };\n AUTHORIZATIONRULES { };", 3, 2, "duplicate authorizationrules section (the first is on line 2)"},
		{"configurationrules in 1.0", "version=1.0;\nconfigurationrules { };", 2, 1, "configurationrules requires policy version 1.1 or later (this policy is version 1.0)"},
		{"missing ; after section", "version=1.0;\nauthorizationrules { => permit(); }\nissuancerules { };", 3, 1, `expected ";" after the "}" that closes authorizationrules, found "issuancerules"`},
		{"section not closed", "version=1.0;\nauthorizationrules { => permit();", 2, 34, `expected "}" to close authorizationrules, found end of input`},
		{"permit in issuancerules", "version=1.0;\nauthorizationrules { => permit(); };\nissuancerules {\n    => permit();\n};", 4, 8, "permit() is not allowed in issuancerules (allowed there: add, issue, issueproperty)"},
		{"issue in authorizationrules", "version=1.0;\nauthorizationrules {\n\tc:[type==\"a\"] => issue(claim=c);\n};", 3, 19, "issue() is not allowed in authorizationrules (allowed there: permit, deny, add)"},
		{"deny in configurationrules", "version=1.1;\nconfigurationrules { => deny(); };", 2, 25, "deny() is not allowed in configurationrules (allowed there: issueproperty)"},
		{"unknown action", "version=1.0; authorizationrules { => allow(); };", 1, 38, `unknown action "allow"`},
		{"missing =>", "version=1.0;\nauthorizationrules {\n  [type==\"a\"]   permit();\n};", 3, 17, `expected "=>", found "permit"`},
		{"missing => without conditions", "version=1.0; authorizationrules { permit(); };", 1, 35, `expected "=>", found "permit"`},
		{"missing ; after action", "version=1.0;\nauthorizationrules {\n  => permit()\n  => deny();\n};", 4, 3, `expected ";" after the action, found "=>"`},
		{"missing ] in condition", "version=1.0; authorizationrules { [type==\"a\" => permit(); };", 1, 46, `expected "," or "]", found "=>"`},
		{"unterminated string on its line", "version=1.0;\nauthorizationrules {\n  [type==\"abc] => permit();\n};", 3, 10, "unterminated string (a string cannot span lines)"},
		{"unterminated string at end", "version=1.0; authorizationrules { [type==\"abc", 1, 42, "unterminated string"},
		{"unknown escape", "version=1.0; authorizationrules { [type==\"a\\qb\"] => permit(); };", 1, 44, `unknown escape sequence "\q"`},
		{"control character in string", "version=1.0; authorizationrules { [type==\"a\x01\"] => permit(); };", 1, 44, "control character U+0001"},
		{"unknown function", "version=1.2;\nauthorizationrules {\n  => add(type=\"x\", value=Foo(1));\n};", 3, 26, `unknown function "Foo"`},
		{"wrong arity", "version=1.2;\nauthorizationrules {\n  => add(type=\"x\", value=NegateBool(true, false));\n};", 3, 26, "NegateBool takes 1 argument(s), found 2"},
		{"too few arguments", "version=1.2; authorizationrules { => add(type=\"x\", value=JmesPath(\"{}\")); };", 1, 58, "JmesPath takes 2 argument(s), found 1"},
		{"function in 1.1", "version=1.1; authorizationrules { => add(type=\"x\", value=NegateBool(true)); };", 1, 58, "functions require policy version 1.2 (this policy is version 1.1)"},
		{"! in 1.0", "version=1.0;\nauthorizationrules {\n  ![type==\"a\"] => permit();\n};", 3, 3, `the "!" (absence) condition requires policy version 1.2 (this policy is version 1.0)`},
		{"! in 1.1", "version=1.1; authorizationrules { ![type==\"a\"] => permit(); };", 1, 35, "requires policy version 1.2"},
		{"integer overflow", "version=1.0;\nauthorizationrules {\n  [type==\"a\", value==9223372036854775808] => permit();\n};", 3, 22, "integer 9223372036854775808 is out of the 64-bit range"},
		{"negative integer overflow", "version=1.0; authorizationrules { [type==\"a\", value>-9223372036854775809] => permit(); };", 1, 53, "out of the 64-bit range"},
		{"decimal value", "version=1.0; authorizationrules { [type==\"a\", value==1.5] => permit(); };", 1, 54, "decimal numbers are not supported"},
		{"letters after digits", "version=1.0; authorizationrules { [type==\"a\", value==15abc] => permit(); };", 1, 54, `invalid number "15abc"`},
		{"unknown property", "version=1.0;\nauthorizationrules {\n  [kind==\"a\"] => permit();\n};", 3, 4, `unknown claim property "kind" (expected type, value, valueType or issuer)`},
		{"unknown property after identifier", "version=1.0; authorizationrules { => permit(); }; issuancerules { c:[type==\"a\"] => issue(type=\"b\", value=c.val); };", 1, 108, `unknown claim property "val"`},
		{"empty condition", "version=1.0; authorizationrules { [] => permit(); };", 1, 36, `expected a claim property (type, value, valueType or issuer), found "]"`},
		{"missing operator", "version=1.0; authorizationrules { [type \"a\"] => permit(); };", 1, 41, "expected a comparison operator"},
		{"ordering on a string literal", "version=1.0; authorizationrules { [type==\"svn\", value<\"5\"] => deny(); };", 1, 54, `"<" applies only to integers; comparing with a string is never true`},
		{"ordering on a Boolean literal", "version=1.0; authorizationrules { [type==\"d\", value>=true] => deny(); };", 1, 52, `">=" applies only to integers; comparing with a Boolean is never true`},
		{"ordering on type", "version=1.0; authorizationrules { [type<\"a\"] => permit(); };", 1, 40, "type is a string"},
		{"type compared with an integer", "version=1.0; authorizationrules { [type==5] => permit(); };", 1, 42, "type is a string; comparing it with an integer is never true"},
		{"issuer compared with a Boolean", "version=1.0; authorizationrules { [issuer!=true] => permit(); };", 1, 44, "issuer is a string; comparing it with a Boolean"},
		{"unbound identifier in action", "version=1.0; authorizationrules { => permit(); }; issuancerules { => issue(claim=c); };", 1, 82, `identifier "c" is not bound by a condition of this rule`},
		{"identifier bound by a later condition", "version=1.0; authorizationrules { [type==\"a\", value==c.value] && c:[type==\"b\"] => permit(); };", 1, 54, `identifier "c" is not bound by an earlier condition`},
		{"identifier used in its own condition", "version=1.0; authorizationrules { c:[type==\"a\", value==c.value] => permit(); };", 1, 56, `identifier "c" is not bound`},
		{"identifier from another rule", "version=1.0; authorizationrules { => permit(); }; issuancerules { c:[type==\"a\"] => issue(claim=c); => issue(claim=c); };", 1, 115, `identifier "c" is not bound`},
		{"! binds an identifier", "version=1.2; authorizationrules { !c:[type==\"a\"] => permit(); };", 1, 36, `a "!" condition cannot bind an identifier`},
		{"duplicate identifier", "version=1.0; authorizationrules { c:[type==\"a\"] && c:[type==\"b\"] => permit(); };", 1, 52, `identifier "c" is already bound in this rule`},
		{"true as identifier", "version=1.0; authorizationrules { true:[type==\"a\"] => permit(); };", 1, 35, `"true" cannot be used as an identifier`},
		{"missing : after identifier", "version=1.0; authorizationrules { c[type==\"a\"] => permit(); };", 1, 36, `expected ":" after identifier "c", found "["`},
		{"bare identifier as value", "version=1.0; authorizationrules { c:[type==\"a\"] => add(type=\"b\", value=c); };", 1, 73, `expected "." or "(" after "c", found ")"`},
		{"JmesPath query from a claim", "version=1.2; authorizationrules { c:[type==\"q\"] => add(type=\"b\", value=JmesPath(\"{}\", c.value)); };", 1, 87, "the query of JmesPath must be a string literal"},
		{"invalid JmesPath query", "version=1.2; authorizationrules { => add(type=\"b\", value=JmesPath(\"{}\", \"a[\")); };", 1, 73, "invalid JmesPath query"},
		{"empty JmesPath query", "version=1.2; authorizationrules { => add(type=\"b\", value=JmesPath(\"{}\", \"\")); };", 1, 73, "invalid JmesPath query: empty query"},
		{"literal of the wrong type", "version=1.2; authorizationrules { => add(type=\"b\", value=AppendString(1, \"x\")); };", 1, 71, "argument 1 of AppendString must be a string, found an integer"},
		{"set argument given a string", "version=1.2; authorizationrules { => add(type=\"b\", value=IsSubsetOf(\"a\", \"b\")); };", 1, 69, "argument 1 of IsSubsetOf must be a set, found a string"},
		{"NegateBool of an integer", "version=1.2; authorizationrules { => add(type=\"b\", value=NegateBool(0)); };", 1, 69, "argument 1 of NegateBool must be a Boolean"},
		{"nesting too deep", nested, 1, 58 + len("NegateBool(")*maxNesting, "function calls are nested deeper than 32 levels"},
		{"missing value argument", "version=1.0; authorizationrules { => add(type=\"b\"); };", 1, 38, "add needs type= and value=, or claim="},
		{"claim and value together", "version=1.0; authorizationrules { c:[type==\"a\"] => add(claim=c, value=1); };", 1, 52, "add takes either claim= or type= and value=, not both"},
		{"duplicate argument", "version=1.0; authorizationrules { => add(type=\"a\", type=\"b\", value=1); };", 1, 52, `duplicate argument "type"`},
		{"unknown argument", "version=1.0; authorizationrules { => add(type=\"a\", valuetype=\"b\", value=1); };", 1, 52, `unknown argument "valuetype" of add`},
		{"== in an action argument", "version=1.0; authorizationrules { => add(type==\"a\", value=1); };", 1, 46, `expected "=" after "type", found "=="`},
		{"empty claim type", "version=1.0; authorizationrules { => add(type=\"\", value=1); };", 1, 47, "the claim type must not be empty"},
		{"integer claim type", "version=1.0; authorizationrules { => add(type=1, value=1); };", 1, 47, `expected a string literal for the claim type, found "1"`},
		{"claim type from a claim", "version=1.0; authorizationrules { c:[type==\"a\"] => add(type=c.value, value=1); };", 1, 61, `expected a string literal for the claim type, found "c"`},
		{"comment runs to the end", "version=1.0; authorizationrules { // open", 1, 42, `expected "}" to close authorizationrules, found end of input`},
		{"permit with an argument", "version=1.0; authorizationrules { => permit(1); };", 1, 45, `permit() takes no arguments: expected ")", found "1"`},
		{"no || operator", "version=1.0; authorizationrules { [type==\"a\"] || [type==\"b\"] => permit(); };", 1, 47, `there is no "||" operator`},
		{"single &", "version=1.0; authorizationrules { [type==\"a\"] & [type==\"b\"] => permit(); };", 1, 47, `unexpected character "&"`},
		{"unexpected character", "version=1.0; authorizationrules { => permit(); }; #", 1, 51, `unexpected character "#"`},
		{"unterminated block comment", "version=1.0;\n  /* never closed\n authorizationrules { };", 2, 3, "unterminated block comment"},
		{"position after a block comment", "version=1.0; /* a\nbé */ authorizationrules { => permit() };", 2, 40, `expected ";" after the action, found "}"`},
		{"columns count code points", "version=1.0; authorizationrules { [type==\"é€😀\"] frobnicate(); };", 1, 49, `expected "=>", found "frobnicate"`},
		{"invalid UTF-8", "version=1.0;\nauthorizationrules { [type==\"\xff\"] => permit(); };", 2, 30, "invalid UTF-8"},
		{"stray ; in a section", "version=1.0; authorizationrules { ; };", 1, 35, `expected "[" to start a condition, found ";"`},
		{"text after the last section", "version=1.0; authorizationrules { }; permit", 1, 38, `unknown section "permit"`},
		{"too large", "version=1.0;" + strings.Repeat(" ", maxPolicyBytes), 1, 1, "the limit is 262144"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse(tc.policy)
			if err == nil {
				t.Fatalf("Parse succeeded (version %s), want an error", p.Version())
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T) is not a *ParseError", err, err)
			}
			if pe.Line != tc.line || pe.Column != tc.col {
				t.Errorf("position = line %d, column %d, want line %d, column %d (%s)", pe.Line, pe.Column, tc.line, tc.col, pe.Msg)
			}
			if !strings.Contains(pe.Msg, tc.msg) {
				t.Errorf("Msg = %q, want it to contain %q", pe.Msg, tc.msg)
			}
		})
	}
}

// Accepted edge cases of the syntax, each with the version it declares.
func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name   string
		policy string
	}{
		{"byte-order mark", "\uFEFFversion=1.0; authorizationrules { => permit(); };"},
		{"single = in conditions", `version=1.2; authorizationrules { c:[type="a", issuer="AttestationPolicy"] => permit(); };`},
		{"smallest int64", `version=1.0; authorizationrules { [type=="a", value>=-9223372036854775808] => permit(); };`},
		{"sections in any order", `version=1.1; issuancerules { }; authorizationrules { => permit(); }; configurationrules { };`},
		{"only the version", `version=1.0;`},
		{"white space everywhere", "version = 1.0 ;\r\n authorizationrules\t{\r\n\t=>\tpermit ( ) ;\r\n} ;\r\n"},
		{"escapes", `version=1.0; authorizationrules { [type=="a\"b\\c\/d\n\t\r"] => permit(); };`},
		{"type and value in either order", `version=1.0; authorizationrules { => add(value=1, type="a"); => permit(); };`},
		{"conditions in configurationrules", `version=1.1; configurationrules { [type=="a"] => issueproperty(type="p", value=1); };`},
		{"function names in any case", `version=1.2; authorizationrules { => add(type="a", value=jsontoclaimvalue(JMESPATH("[1]", "@"))); };`},
		{"32 nested calls", "version=1.2; authorizationrules { => add(type=\"x\", value=" + strings.Repeat("NegateBool(", maxNesting) + "true" + strings.Repeat(")", maxNesting) + "); };"},
		{"comment at the end without newline", "version=1.0; // done"},
		{"dollar signs in strings", `version=1.0; authorizationrules { c:[type=="$is-debuggable"] => permit(); };`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse(tc.policy); err != nil {
				t.Fatalf("Parse: %v", err)
			}
		})
	}
}

// The lexer decodes escapes; check the decoded text reaches the evaluator.
func TestStringEscapes(t *testing.T) {
	p := mustParse(t, `version=1.0; authorizationrules { => permit(); }; issuancerules { => issue(type="s", value="q\"b\\s\/n\nt\tr\r€"); };`)
	res, err := p.Evaluate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := "q\"b\\s/n\nt\tr\r€"; len(res.Issued) != 1 || res.Issued[0].Value != want {
		t.Errorf("Issued = %v, want value %q", res.Issued, want)
	}
}
