package keyvault

import "testing"

func TestInvalidUTF8(t *testing.T) {
	for _, c := range []struct {
		body   string
		member string
		ok     bool
	}{
		{`{"tags":{"env":"dev"}}`, "", true},
		{"{\"tags\":{\"env\":\"d\xffv\"}}", "tags.env", false},
		{"{\"tags\":{\"e\xc3\":\"dev\"}}", "tags.e\ufffd", false},
		{"{\"kty\":\"RSA\",\"key_ops\":[\"sign\",\"ver\xe2\x28ify\"]}", "key_ops[1]", false},
		{"{\"attributes\":{\"enabled\":true},\"tags\":{\"a\":\"b\",\"c\":\"\xfe\"}}", "tags.c", false},
		{"{\"k\xff\":1}", "k\ufffd", false},
	} {
		member, _, bad := invalidUTF8([]byte(c.body))
		if bad == c.ok || member != c.member {
			t.Errorf("%q: member %q bad %v, want %q %v", c.body, member, bad, c.member, !c.ok)
		}
	}
}
