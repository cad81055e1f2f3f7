package maa

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

type tokenKind uint8

const (
	tokEOF     tokenKind = iota
	tokIdent             // version, section, action, property, function or claim identifier
	tokString            // text holds the decoded contents
	tokInt               // optionally negative decimal integer
	tokDecimal           // MAJOR.MINOR, only meaningful as the policy version
	tokLBrace
	tokRBrace
	tokLParen
	tokRParen
	tokLBracket
	tokRBracket
	tokSemicolon
	tokComma
	tokColon
	tokDot
	tokAssign // =
	tokEq     // ==
	tokNe     // !=
	tokLt     // <
	tokLe     // <=
	tokGt     // >
	tokGe     // >=
	tokArrow  // =>
	tokAnd    // &&
	tokNot    // !
)

type position struct{ line, col int }

type token struct {
	kind tokenKind
	text string // source text, or the decoded contents of a string
	pos  position
}

// describe renders a token for "found ..." in error messages.
func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of input"
	case tokString:
		const maxRunes = 40
		s := t.text
		if utf8.RuneCountInString(s) > maxRunes {
			s = string([]rune(s)[:maxRunes]) + "..."
		}
		return "string " + strconv.Quote(s)
	default:
		return strconv.Quote(t.text)
	}
}

// lexer produces tokens on demand, so that the parser reports the first
// error in text order whether it is lexical or syntactic.
type lexer struct {
	src  string
	off  int // byte offset of the next unread character
	line int
	col  int
}

func newLexer(src string) *lexer {
	// A leading byte-order mark is an artefact of Windows editors, not
	// policy text.
	return &lexer{src: strings.TrimPrefix(src, "\uFEFF"), line: 1, col: 1}
}

func (lx *lexer) pos() position { return position{lx.line, lx.col} }

// at returns the byte k positions ahead, or 0 past the end.
func (lx *lexer) at(k int) byte {
	if lx.off+k < len(lx.src) {
		return lx.src[lx.off+k]
	}
	return 0
}

func errAt(p position, format string, args ...any) error {
	return &ParseError{Line: p.line, Column: p.col, Msg: fmt.Sprintf(format, args...)}
}

func isLetter(c byte) bool     { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }
func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentChar(c byte) bool  { return isLetter(c) || isDigit(c) }
func isSpace(c byte) bool      { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v' }
func isPrintASCII(c byte) bool { return c > ' ' && c < 0x7f }

// skip passes over white space and comments.
func (lx *lexer) skip() error {
	for lx.off < len(lx.src) {
		c := lx.src[lx.off]
		switch {
		case c == '\n':
			lx.off++
			lx.line++
			lx.col = 1
		case isSpace(c):
			lx.off++
			lx.col++
		case c == '/' && lx.at(1) == '/':
			end := strings.IndexByte(lx.src[lx.off:], '\n')
			if end < 0 {
				end = len(lx.src) - lx.off
			}
			lx.advanceOver(lx.src[lx.off : lx.off+end])
		case c == '/' && lx.at(1) == '*':
			start := lx.pos()
			end := strings.Index(lx.src[lx.off+2:], "*/")
			if end < 0 {
				return errAt(start, "unterminated block comment")
			}
			lx.advanceOver(lx.src[lx.off : lx.off+2+end+2])
		default:
			return nil
		}
	}
	return nil
}

// advanceOver moves past s, which must be the next bytes of the source,
// keeping line and column right across newlines and multi-byte characters.
func (lx *lexer) advanceOver(s string) {
	for _, r := range s {
		if r == '\n' {
			lx.line++
			lx.col = 1
		} else {
			lx.col++
		}
	}
	lx.off += len(s)
}

func (lx *lexer) next() (token, error) {
	if err := lx.skip(); err != nil {
		return token{}, err
	}
	start := lx.pos()
	if lx.off >= len(lx.src) {
		return token{kind: tokEOF, pos: start}, nil
	}
	c := lx.src[lx.off]
	switch {
	case isLetter(c):
		end := lx.off + 1
		for end < len(lx.src) && isIdentChar(lx.src[end]) {
			end++
		}
		return lx.emit(tokIdent, end, start), nil
	case isDigit(c) || c == '-' && isDigit(lx.at(1)):
		return lx.number(start)
	case c == '"':
		return lx.str(start)
	}
	two := ""
	if lx.off+1 < len(lx.src) {
		two = lx.src[lx.off : lx.off+2]
	}
	switch two {
	case "==":
		return lx.emit(tokEq, lx.off+2, start), nil
	case "=>":
		return lx.emit(tokArrow, lx.off+2, start), nil
	case "!=":
		return lx.emit(tokNe, lx.off+2, start), nil
	case "<=":
		return lx.emit(tokLe, lx.off+2, start), nil
	case ">=":
		return lx.emit(tokGe, lx.off+2, start), nil
	case "&&":
		return lx.emit(tokAnd, lx.off+2, start), nil
	case "||":
		return token{}, errAt(start, `there is no "||" operator; write one rule per alternative`)
	}
	if k, ok := punct(c); ok {
		return lx.emit(k, lx.off+1, start), nil
	}
	switch {
	case c == '&':
		return token{}, errAt(start, `unexpected character "&" (the operator is "&&")`)
	case isPrintASCII(c):
		return token{}, errAt(start, "unexpected character %q", string(c))
	default:
		r, _ := utf8.DecodeRuneInString(lx.src[lx.off:])
		return token{}, errAt(start, "unexpected character %U", r)
	}
}

// punct maps single-character punctuation to its token kind.
func punct(c byte) (tokenKind, bool) {
	switch c {
	case '{':
		return tokLBrace, true
	case '}':
		return tokRBrace, true
	case '(':
		return tokLParen, true
	case ')':
		return tokRParen, true
	case '[':
		return tokLBracket, true
	case ']':
		return tokRBracket, true
	case ';':
		return tokSemicolon, true
	case ',':
		return tokComma, true
	case ':':
		return tokColon, true
	case '.':
		return tokDot, true
	case '=':
		return tokAssign, true
	case '<':
		return tokLt, true
	case '>':
		return tokGt, true
	case '!':
		return tokNot, true
	}
	return 0, false
}

// emit makes a token of the ASCII source bytes up to end.
func (lx *lexer) emit(k tokenKind, end int, start position) token {
	t := token{kind: k, text: lx.src[lx.off:end], pos: start}
	lx.col += end - lx.off
	lx.off = end
	return t
}

func (lx *lexer) number(start position) (token, error) {
	end := lx.off
	if lx.src[end] == '-' {
		end++
	}
	for end < len(lx.src) && isDigit(lx.src[end]) {
		end++
	}
	kind := tokInt
	if end+1 < len(lx.src) && lx.src[end] == '.' && isDigit(lx.src[end+1]) {
		end++
		for end < len(lx.src) && isDigit(lx.src[end]) {
			end++
		}
		kind = tokDecimal
	}
	if end < len(lx.src) && isLetter(lx.src[end]) {
		for end < len(lx.src) && isIdentChar(lx.src[end]) {
			end++
		}
		return token{}, errAt(start, "invalid number %q", lx.src[lx.off:end])
	}
	return lx.emit(kind, end, start), nil
}

// str scans a double-quoted string. Strings end on the line they start on,
// so that a missing quote is reported where it is missing and not at the
// end of the file.
func (lx *lexer) str(start position) (token, error) {
	lx.off++
	lx.col++
	var b strings.Builder
	for {
		if lx.off >= len(lx.src) {
			return token{}, errAt(start, "unterminated string")
		}
		c := lx.src[lx.off]
		switch {
		case c == '"':
			lx.off++
			lx.col++
			return token{kind: tokString, text: b.String(), pos: start}, nil
		case c == '\n' || c == '\r':
			return token{}, errAt(start, "unterminated string (a string cannot span lines)")
		case c == '\\':
			var r byte
			switch lx.at(1) {
			case '"':
				r = '"'
			case '\\':
				r = '\\'
			case '/':
				r = '/'
			case 'n':
				r = '\n'
			case 't':
				r = '\t'
			case 'r':
				r = '\r'
			case 0, '\n', '\r':
				return token{}, errAt(start, "unterminated string")
			default:
				e, _ := utf8.DecodeRuneInString(lx.src[lx.off+1:])
				return token{}, errAt(lx.pos(), `unknown escape sequence "\%c" in string (known: \" \\ \/ \n \r \t)`, e)
			}
			b.WriteByte(r)
			lx.off += 2
			lx.col += 2
		case c < ' ' && c != '\t' || c == 0x7f:
			return token{}, errAt(lx.pos(), "control character %U in string (write \\n, \\r or \\t)", rune(c))
		default:
			_, size := utf8.DecodeRuneInString(lx.src[lx.off:])
			b.WriteString(lx.src[lx.off : lx.off+size])
			lx.off += size
			lx.col++
		}
	}
}
