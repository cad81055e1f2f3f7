package release

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// decimal is an exact JSON number: ±0.digits × 10^exp. digits has no leading
// or trailing zeros, so each value has one representation and comparison
// needs no arithmetic; zero is digits == "" with neg false. Exact decimals
// rather than float64 keep 9007199254740993 distinct from 9007199254740992
// and let json.Number claims be compared without rounding.
type decimal struct {
	neg    bool
	digits string
	exp    int64
}

// maxExponent bounds the exponent written in a number. It is far beyond any
// real claim, and keeps exp arithmetic clear of int64 overflow.
const maxExponent = 1 << 40

// parseDecimal parses a number in JSON syntax (a leading "+" or a bare "."
// is refused). ok is false for anything else, including an exponent beyond
// maxExponent.
func parseDecimal(s string) (d decimal, ok bool) {
	i := 0
	if i < len(s) && s[i] == '-' {
		d.neg = true
		i++
	}
	start := i
	if i < len(s) && s[i] == '0' {
		i++
	} else {
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i == start {
		return decimal{}, false
	}
	intPart, fracPart := s[start:i], ""
	if i < len(s) && s[i] == '.' {
		i++
		fs := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == fs {
			return decimal{}, false
		}
		fracPart = s[fs:i]
	}
	var e int64
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		eneg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			eneg = s[i] == '-'
			i++
		}
		es := i
		for i < len(s) && isDigit(s[i]) {
			e = e*10 + int64(s[i]-'0')
			if e > maxExponent {
				return decimal{}, false
			}
			i++
		}
		if i == es {
			return decimal{}, false
		}
		if eneg {
			e = -e
		}
	}
	if i != len(s) {
		return decimal{}, false
	}
	all := intPart
	if fracPart != "" {
		all += fracPart
	}
	lead := 0
	for lead < len(all) && all[lead] == '0' {
		lead++
	}
	digits := strings.TrimRight(all[lead:], "0")
	if digits == "" {
		return decimal{}, true // zero, whatever its sign or exponent
	}
	d.digits = digits
	d.exp = int64(len(intPart)) - int64(lead) + e
	return d, true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// cmpDecimal returns -1, 0 or +1 as a is less than, equal to or greater than b.
func cmpDecimal(a, b decimal) int {
	sa, sb := a.sign(), b.sign()
	if sa != sb {
		if sa < sb {
			return -1
		}
		return 1
	}
	if sa == 0 {
		return 0
	}
	m := 0 // magnitude comparison
	switch {
	case a.exp != b.exp:
		if a.exp < b.exp {
			m = -1
		} else {
			m = 1
		}
	default:
		// Same exponent and no trailing zeros: the digit strings compare
		// like the magnitudes ("12" < "123" < "13").
		m = strings.Compare(a.digits, b.digits)
	}
	return m * sa
}

func (d decimal) sign() int {
	switch {
	case d.digits == "":
		return 0
	case d.neg:
		return -1
	}
	return 1
}

// String returns the canonical text: the shortest decimal form, written as
// ECMAScript writes numbers (plain notation from 1e-7 up to 1e21, exponent
// notation beyond), so 1.0 is "1", 1e2 is "100" and 1e21 is "1e+21".
func (d decimal) String() string {
	if d.digits == "" {
		return "0"
	}
	var b strings.Builder
	if d.neg {
		b.WriteByte('-')
	}
	k, n := int64(len(d.digits)), d.exp
	switch {
	case k <= n && n <= 21:
		b.WriteString(d.digits)
		b.WriteString(strings.Repeat("0", int(n-k)))
	case 0 < n && n <= 21:
		b.WriteString(d.digits[:n])
		b.WriteByte('.')
		b.WriteString(d.digits[n:])
	case -6 < n && n <= 0:
		b.WriteString("0.")
		b.WriteString(strings.Repeat("0", int(-n)))
		b.WriteString(d.digits)
	default:
		b.WriteByte(d.digits[0])
		if k > 1 {
			b.WriteByte('.')
			b.WriteString(d.digits[1:])
		}
		b.WriteByte('e')
		if n-1 >= 0 {
			b.WriteByte('+')
		}
		b.WriteString(strconv.FormatInt(n-1, 10))
	}
	return b.String()
}

// valueKind is the JSON type of a comparable value.
type valueKind uint8

const (
	kindString valueKind = iota + 1
	kindNumber
	kindBool
)

// scalar is a comparable value: a policy operand, or a claim value that is a
// string, number or boolean.
type scalar struct {
	kind valueKind
	str  string
	num  decimal
	b    bool
}

// text is the canonical text used when a string is compared with another
// type.
func (s scalar) text() string {
	switch s.kind {
	case kindString:
		return s.str
	case kindNumber:
		return s.num.String()
	}
	return strconv.FormatBool(s.b)
}

// render writes the value as JSON, strings quoted, for explanations.
func (s scalar) render() string {
	if s.kind == kindString {
		return quoteShort(s.str)
	}
	return s.text()
}

func (k valueKind) String() string {
	switch k {
	case kindString:
		return "a string"
	case kindNumber:
		return "a number"
	}
	return "a boolean"
}

// claimScalar converts a decoded claim value to a scalar. why is set when the
// value is present but comparable with nothing.
func claimScalar(v any) (s scalar, why string) {
	switch x := v.(type) {
	case string:
		return scalar{kind: kindString, str: x}, ""
	case bool:
		return scalar{kind: kindBool, b: x}, ""
	case json.Number:
		if d, ok := parseDecimal(string(x)); ok {
			return scalar{kind: kindNumber, num: d}, ""
		}
		return scalar{}, "not a valid number"
	case float64:
		return floatScalar(x)
	case float32:
		return floatScalar(float64(x))
	case int:
		return intScalar(int64(x))
	case int64:
		return intScalar(x)
	case int32:
		return intScalar(int64(x))
	case uint64:
		d, _ := parseDecimal(strconv.FormatUint(x, 10))
		return scalar{kind: kindNumber, num: d}, ""
	case uint32:
		return intScalar(int64(x))
	case uint:
		d, _ := parseDecimal(strconv.FormatUint(uint64(x), 10))
		return scalar{kind: kindNumber, num: d}, ""
	case nil:
		return scalar{}, "null is comparable with nothing"
	case map[string]any:
		return scalar{}, "an object is comparable with nothing"
	case []any:
		return scalar{}, "an array is comparable with nothing"
	}
	return scalar{}, fmt.Sprintf("a %T is comparable with nothing", v)
}

func floatScalar(f float64) (scalar, string) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return scalar{}, "not a finite number"
	}
	// The shortest form that round-trips is the JSON text the float was
	// decoded from, for any text of up to 15 significant digits.
	d, _ := parseDecimal(strconv.FormatFloat(f, 'g', -1, 64))
	return scalar{kind: kindNumber, num: d}, ""
}

func intScalar(i int64) (scalar, string) {
	d, _ := parseDecimal(strconv.FormatInt(i, 10))
	return scalar{kind: kindNumber, num: d}, ""
}

// equal compares an operand with a claim value under the coercion described
// in the package comment. comparable is false for a boolean against a number.
func equal(want, got scalar) (eq, comparable bool) {
	switch {
	case want.kind == got.kind:
		switch want.kind {
		case kindString:
			return want.str == got.str, true
		case kindNumber:
			return cmpDecimal(want.num, got.num) == 0, true
		}
		return want.b == got.b, true
	case want.kind == kindString || got.kind == kindString:
		return want.text() == got.text(), true
	}
	return false, false
}

// maxRendered bounds the text of one value in an explanation, so that a
// token carrying a huge claim cannot make explanations huge.
const maxRendered = 200

// renderClaim writes a present claim value for an explanation.
func renderClaim(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return fmt.Sprintf("<object with %d members>", len(x))
	case []any:
		return fmt.Sprintf("<array of %d elements>", len(x))
	}
	if s, why := claimScalar(v); why == "" {
		return s.render()
	}
	if f, ok := v.(float64); ok {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return fmt.Sprintf("<%T>", v)
}

// quoteShort JSON-quotes s, cut to maxRendered bytes (on a rune boundary)
// with "…" marking the cut.
func quoteShort(s string) string {
	if len(s) <= maxRendered {
		return quote(s)
	}
	cut := maxRendered
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return quote(s[:cut]) + "…"
}

// quote writes s as a JSON string, without the HTML escaping json.Marshal
// applies, so that explanations read naturally.
func quote(s string) string {
	plain := true // the common case: printable ASCII needing no escape
	for i := 0; i < len(s) && plain; i++ {
		plain = s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\'
	}
	if plain {
		return `"` + s + `"`
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil { // cannot fail for a string
		return strconv.Quote(s)
	}
	return strings.TrimSuffix(b.String(), "\n")
}
