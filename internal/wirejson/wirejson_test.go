package wirejson

import (
	"encoding/json"
	"testing"
)

func TestMembers(t *testing.T) {
	for _, c := range []struct {
		in   string
		ok   bool
		want int
	}{
		{`{}`, true, 0},
		{` {"a":"b", "c" : -12 ,"d":{"e":"f"}} `, true, 3},
		{`{"a":"b\"c"}`, false, 0},
		{`{"a":"é"}`, false, 0},
		{`{"a":1.5}`, false, 0},
		{`{"a":01}`, false, 0},
		{`{"a":null}`, false, 0},
		{`{"a":[1]}`, false, 0},
		{`{"a":{"b":1}}`, false, 0},
		{`{"a":"b"} x`, false, 0},
		{`{"a":"b",}`, false, 0},
		{`{"a" "b"}`, false, 0},
		{`["a"]`, false, 0},
		{`{"a":"b"`, false, 0},
		{``, false, 0},
	} {
		ms, ok := Members([]byte(c.in))
		if ok != c.ok || len(ms) != c.want {
			t.Errorf("%q: ok=%v n=%d, want ok=%v n=%d", c.in, ok, len(ms), c.ok, c.want)
		}
	}
}

// FuzzMembersValid: whatever Members accepts is valid JSON.
func FuzzMembersValid(f *testing.F) {
	f.Add([]byte(`{"a":"b","c":-1,"d":{"e":"f"}}`))
	f.Add([]byte(`{"a":"b"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, ok := Members(b); ok && !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
	})
}
