package keyvault

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// invalidUTF8 finds the first byte of b that is not UTF-8 and the member
// holding it ("tags.env", "key_ops[1]"; "" at the top level). JSON is
// UTF-8 (RFC 8259 §8.1), and encoding/json would silently turn such bytes
// into U+FFFD, storing something the client did not send.
func invalidUTF8(b []byte) (member string, offset int, bad bool) {
	if utf8.Valid(b) {
		return "", 0, false
	}
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			offset = i
			break
		}
		i += n
	}
	return memberAt(b, offset), offset, true
}

// memberAt names the member whose name or value spans offset.
func memberAt(b []byte, offset int) string {
	type frame struct {
		object bool
		key    string // object: the current member's name
		index  int    // array: the current element's index
		expect bool   // object: the next string is a member name
	}
	var stack []frame
	path := func() string {
		var out []byte
		for i, f := range stack {
			switch {
			case f.object && f.key != "":
				if i > 0 && len(out) > 0 {
					out = append(out, '.')
				}
				out = append(out, f.key...)
			case !f.object:
				out = append(out, '[')
				out = strconv.AppendInt(out, int64(f.index), 10)
				out = append(out, ']')
			}
		}
		return string(out)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return path()
		}
		end := int(dec.InputOffset())
		top := len(stack) - 1
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, frame{object: true, expect: true})
			case '[':
				stack = append(stack, frame{})
			case '}', ']':
				stack = stack[:top]
				if top > 0 {
					advance(&stack[top-1].object, &stack[top-1].index, &stack[top-1].expect)
				}
			}
			continue
		case string:
			if top >= 0 && stack[top].object && stack[top].expect {
				stack[top].key, stack[top].expect = t, false
				if offset >= int(start) && offset < end {
					return path()
				}
				continue
			}
		}
		if offset >= int(start) && offset < end {
			return path()
		}
		if top >= 0 {
			advance(&stack[top].object, &stack[top].index, &stack[top].expect)
		}
	}
}

// advance moves a frame past one value: an object expects a name next, an
// array its next index.
func advance(object *bool, index *int, expect *bool) {
	if *object {
		*expect = true
		return
	}
	*index++
}
