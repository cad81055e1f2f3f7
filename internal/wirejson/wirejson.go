// Package wirejson decodes the flat JSON objects of attestation requests
// faster than encoding/json, which spends most of its time scanning the
// long base64 strings those objects carry one byte at a time.
//
// It is deliberately narrow: Members accepts only an object whose member
// values are plain strings (printable ASCII, no escapes), integers, or
// objects of plain strings, and reports ok=false for anything else. Callers
// then decode with encoding/json, which also produces the precise error for
// malformed input. Where Members succeeds its result is what encoding/json
// would produce; a differential fuzz test holds it to that.
package wirejson

import "bytes"

// Kind is the JSON type of a member value.
type Kind int

const (
	String Kind = iota // Value holds the string's bytes (no quotes)
	Number             // Value holds the integer's text
	Object             // Value holds the raw object text, braces included
)

// Member is one member of an object, in input order.
type Member struct {
	Key   string
	Kind  Kind
	Value []byte
}

// Members scans a JSON object. Value slices alias b.
func Members(b []byte) (out []Member, ok bool) {
	s := scanner{b: b}
	s.ws()
	if !s.eat('{') {
		return nil, false
	}
	s.ws()
	if s.eat('}') {
		s.ws()
		return nil, s.i == len(b)
	}
	for {
		s.ws()
		key, ok := s.str()
		if !ok {
			return nil, false
		}
		s.ws()
		if !s.eat(':') {
			return nil, false
		}
		s.ws()
		m := Member{Key: string(key)}
		switch {
		case s.peek('"'):
			m.Kind = String
			if m.Value, ok = s.str(); !ok {
				return nil, false
			}
		case s.peek('{'):
			m.Kind = Object
			start := s.i
			if !s.flatObject() {
				return nil, false
			}
			m.Value = b[start:s.i]
		default:
			m.Kind = Number
			if m.Value, ok = s.integer(); !ok {
				return nil, false
			}
		}
		out = append(out, m)
		s.ws()
		if s.eat('}') {
			s.ws()
			if s.i != len(b) {
				return nil, false
			}
			return out, true
		}
		if !s.eat(',') {
			return nil, false
		}
	}
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) peek(c byte) bool { return s.i < len(s.b) && s.b[s.i] == c }

func (s *scanner) eat(c byte) bool {
	if s.peek(c) {
		s.i++
		return true
	}
	return false
}

// str reads a string of printable ASCII without escapes.
func (s *scanner) str() ([]byte, bool) {
	if !s.eat('"') {
		return nil, false
	}
	rest := s.b[s.i:]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return nil, false
	}
	v := rest[:end]
	for _, c := range v {
		if c < 0x20 || c > 0x7e || c == '\\' {
			return nil, false
		}
	}
	s.i += end + 1
	return v, true
}

// integer reads an optionally negative integer without leading zeros.
func (s *scanner) integer() ([]byte, bool) {
	start := s.i
	s.eat('-')
	digits := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	n := s.i - digits
	if n == 0 || (n > 1 && s.b[digits] == '0') {
		return nil, false
	}
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case '.', 'e', 'E':
			return nil, false
		}
	}
	return s.b[start:s.i], true
}

// flatObject skips an object whose members are plain strings.
func (s *scanner) flatObject() bool {
	if !s.eat('{') {
		return false
	}
	s.ws()
	if s.eat('}') {
		return true
	}
	for {
		s.ws()
		if _, ok := s.str(); !ok {
			return false
		}
		s.ws()
		if !s.eat(':') {
			return false
		}
		s.ws()
		if _, ok := s.str(); !ok {
			return false
		}
		s.ws()
		if s.eat('}') {
			return true
		}
		if !s.eat(',') {
			return false
		}
	}
}
