package release

import (
	"fmt"

	"github.com/kura-project/kura/internal/fault"
)

// ParseError says what is wrong with a policy document and where.
//
// Path is the JSON path of the offending element, written with the policy's
// member names and 0-based array indexes, e.g. `anyOf[0].allOf[2].equals`; a
// member name that is not a plain identifier is written in brackets, e.g.
// `anyOf[0]["a b"]`. Errors about the document as a whole (JSON syntax, size,
// a missing top-level member) have Path "$". JSON syntax errors give the
// 0-based byte offset of the offending byte in Msg.
type ParseError struct {
	Path string
	Msg  string
}

func (e *ParseError) Error() string { return e.Path + ": " + e.Msg }

// rootPath is the Path of errors about the whole document.
const rootPath = "$"

func errAt(path, format string, args ...any) *ParseError {
	if path == "" {
		path = rootPath
	}
	return &ParseError{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// memberPath extends path with an object member.
func memberPath(path, name string) string {
	if !isPlainName(name) {
		return path + "[" + quote(name) + "]"
	}
	if path == "" {
		return name
	}
	return path + "." + name
}

// elemPath extends path with an array index.
func elemPath(path string, i int) string {
	return fmt.Sprintf("%s[%d]", path, i)
}

// isPlainName reports whether name can be written bare in a path: every
// member name of the grammar can, and anything else (dots, spaces, brackets,
// the empty string) is quoted so that a path always reads unambiguously.
func isPlainName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// FaultKind places ParseError in the domain's error vocabulary.
func (*ParseError) FaultKind() fault.Kind { return fault.BadInput }
