package keyvault

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzFailingMember: naming the member a decode refused never panics, and a
// name it gives is a member of the body whose own decode fails.
func FuzzFailingMember(f *testing.F) {
	for _, s := range []string{`{"value":"ab*cd","iv":"xyz!"}`, `{"key":{"d":"**"}}`, `{"value":7}`, `{}`, `[]`, `{"a":`, `{"value":"AAAA"}`,
		`{"key":{"key":{"d":1}}}`, `{"VALUE":"*"}`, "{\"\\u0076alue\":\"*\"}"} {
		f.Add([]byte(s))
	}
	type inner struct {
		D B64 `json:"d"`
	}
	type body struct {
		Value *B64   `json:"value"`
		IV    B64    `json:"iv"`
		Key   *inner `json:"key"`
		N     int    `json:"n"`
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v body
		err := json.Unmarshal(b, &v)
		name := failingMember(b, &body{})
		if name == "" {
			return
		}
		if err == nil {
			t.Fatalf("named %q for a body that decodes", name)
		}
		top, _, _ := strings.Cut(name, ".")
		var members map[string]json.RawMessage
		if json.Unmarshal(b, &members) == nil {
			if _, ok := members[top]; !ok {
				t.Fatalf("named %q, not a member of %q", name, b)
			}
		}
	})
}
