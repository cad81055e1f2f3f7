package keyvault

import (
	"testing"
	"unicode/utf8"
)

// FuzzInvalidUTF8: never panics; reports bad exactly when the body is not
// UTF-8, and then an offset at which the body stops being UTF-8.
func FuzzInvalidUTF8(f *testing.F) {
	for _, s := range []string{`{"tags":{"env":"dev"}}`, "{\"tags\":{\"env\":\"d\xffv\"}}", "{\"a\":[1,\"\xc3\",{\"b\":\"\xe2\x28\"}]}", "{\"k\xff\":1}", "\xff", `{"a":`, "{\"a\":\"\xed\xa0\x80\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		member, off, bad := invalidUTF8(b)
		if bad == utf8.Valid(b) {
			t.Fatalf("bad %v for a body whose validity is %v", bad, utf8.Valid(b))
		}
		if !bad {
			if member != "" || off != 0 {
				t.Fatalf("a valid body named %q at %d", member, off)
			}
			return
		}
		if off < 0 || off >= len(b) || !utf8.Valid(b[:off]) {
			t.Fatalf("offset %d is not the first invalid byte", off)
		}
		if r, n := utf8.DecodeRune(b[off:]); r != utf8.RuneError || n != 1 {
			t.Fatalf("offset %d starts a valid rune", off)
		}
	})
}
