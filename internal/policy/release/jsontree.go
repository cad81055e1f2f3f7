package release

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// The policy is read in two steps: JSON text into a small tree that keeps
// member order and refuses duplicates (encoding/json's maps would silently
// keep the last duplicate and lose the order errors are reported in), then
// the tree into a Policy. The tree is private and lives only during Parse.

type jsonType uint8

const (
	jsonNull jsonType = iota
	jsonBool
	jsonNumber
	jsonString
	jsonArray
	jsonObject
)

func (t jsonType) String() string {
	switch t {
	case jsonBool:
		return "a boolean"
	case jsonNumber:
		return "a number"
	case jsonString:
		return "a string"
	case jsonArray:
		return "an array"
	case jsonObject:
		return "an object"
	}
	return "null"
}

type jsonValue struct {
	typ     jsonType
	str     string // a string's value or a number's text
	b       bool
	elems   []*jsonValue
	members []jsonMember
}

type jsonMember struct {
	name string
	val  *jsonValue
}

// maxJSONDepth bounds JSON nesting, so that recursion depth is bounded
// before the policy's own depth limit (16 levels of allOf/anyOf, about 34
// JSON levels) is checked with a better message.
const maxJSONDepth = 64

// readJSON parses data, which must be one UTF-8 JSON value.
func readJSON(data []byte) (*jsonValue, *ParseError) {
	if !utf8.Valid(data) {
		off := 0
		for off < len(data) {
			r, n := utf8.DecodeRune(data[off:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			off += n
		}
		return nil, errAt(rootPath, "invalid UTF-8 at byte offset %d", off)
	}
	if bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		// Named, because encoding/json would call it "invalid character 'ï'".
		return nil, errAt(rootPath, "invalid JSON at byte offset 0: a UTF-8 byte order mark is not allowed")
	}
	// json.Unmarshal checks the syntax of the whole input first and reports
	// exact offsets; json.Decoder's offsets are sometimes relative to its
	// buffer. So the syntax is checked here and the decoder below only walks
	// text known to be valid.
	var raw json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		var se *json.SyntaxError
		if !errors.As(err, &se) {
			return nil, errAt(rootPath, "invalid JSON: %v", err)
		}
		// Offset counts the bytes read, the bad one included; at the end of
		// the input there is no bad byte.
		off := se.Offset - 1
		if se.Error() == "unexpected end of JSON input" {
			off = int64(len(data))
		}
		return nil, errAt(rootPath, "invalid JSON at byte offset %d: %v", off, se)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return (&jsonReader{dec: dec}).value("", 0)
}

type jsonReader struct{ dec *json.Decoder }

func (r *jsonReader) value(path string, depth int) (*jsonValue, *ParseError) {
	tok, err := r.dec.Token()
	if err != nil {
		return nil, errAt(path, "invalid JSON: %v", err)
	}
	switch t := tok.(type) {
	case string:
		return &jsonValue{typ: jsonString, str: t}, nil
	case json.Number:
		return &jsonValue{typ: jsonNumber, str: string(t)}, nil
	case bool:
		return &jsonValue{typ: jsonBool, b: t}, nil
	case nil:
		return &jsonValue{typ: jsonNull}, nil
	case json.Delim:
		if depth >= maxJSONDepth {
			return nil, errAt(path, "JSON nested deeper than %d levels", maxJSONDepth)
		}
		v := &jsonValue{typ: jsonArray}
		if t == '{' {
			v.typ = jsonObject
		}
		var seen map[string]bool
		for i := 0; r.dec.More(); i++ {
			if v.typ == jsonArray {
				el, perr := r.value(elemPath(path, i), depth+1)
				if perr != nil {
					return nil, perr
				}
				v.elems = append(v.elems, el)
				continue
			}
			kt, err := r.dec.Token()
			if err != nil {
				return nil, errAt(path, "invalid JSON: %v", err)
			}
			name, _ := kt.(string)
			mp := memberPath(path, name)
			if seen[name] {
				return nil, errAt(mp, "duplicate member %s", quote(name))
			}
			if seen == nil {
				seen = make(map[string]bool)
			}
			seen[name] = true
			mv, perr := r.value(mp, depth+1)
			if perr != nil {
				return nil, perr
			}
			v.members = append(v.members, jsonMember{name: name, val: mv})
		}
		if _, err := r.dec.Token(); err != nil { // the closing delimiter
			return nil, errAt(path, "invalid JSON: %v", err)
		}
		return v, nil
	}
	return nil, errAt(path, "invalid JSON: unexpected token %v", tok)
}
