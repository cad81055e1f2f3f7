package release

import "testing"

// TestMatched: a granted decision matched the conditions met under met
// groups, in the policy's order; a condition met in a failed branch, or
// under another authority, is not among them; a denial matched nothing.
func TestMatched(t *testing.T) {
	p, err := Parse([]byte(`{"anyOf":[
		{"authority":"https://other","allOf":[{"claim":"a","exists":true}]},
		{"authority":"https://a","allOf":[{"claim":"b","equals":"y"},
			{"anyOf":[{"allOf":[{"claim":"d","equals":true},{"claim":"c","equals":1}]},{"claim":"c","equals":2}]}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		claims string
		want   string
	}{
		{`{"a":"z","b":"y","c":2,"d":true}`, `[["b","equals","\"y\""],["c","equals","2"]]`},
		{`{"b":"y","c":1,"d":true}`, `[["b","equals","\"y\""],["d","equals","true"],["c","equals","1"]]`},
		{`{"b":"n","c":2}`, `[]`},
	} {
		if got := string(p.Evaluate("https://a", numbers(c.claims)).Matched()); got != c.want {
			t.Errorf("%s: matched %s, want %s", c.claims, got, c.want)
		}
	}
}
