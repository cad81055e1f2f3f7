package release

import (
	"encoding/json"
	"math"
	"testing"
)

func TestDecimalCanonical(t *testing.T) {
	tests := []struct{ in, want string }{
		{"0", "0"},
		{"-0", "0"},
		{"0.000", "0"},
		{"0e99", "0"},
		{"1", "1"},
		{"1.0", "1"},
		{"1e0", "1"},
		{"1E+2", "100"},
		{"120", "120"},
		{"-3.50", "-3.5"},
		{"0.05", "0.05"},
		{"5e-2", "0.05"},
		{"0.000001", "0.000001"},
		{"1e-7", "1e-7"},
		{"1.25e-7", "1.25e-7"},
		{"123456789012345678901", "123456789012345678901"},
		{"1e21", "1e+21"},
		{"1.5e300", "1.5e+300"},
		{"9007199254740993", "9007199254740993"},
		{"00", ""}, // not JSON
		{"01", ""},
		{"1.", ""},
		{".5", ""},
		{"+1", ""},
		{"1e", ""},
		{"1e+", ""},
		{"-", ""},
		{"", ""},
		{"0x10", ""},
		{"1e2000000000000", ""}, // exponent beyond maxExponent
	}
	for _, tt := range tests {
		d, ok := parseDecimal(tt.in)
		if tt.want == "" {
			if ok {
				t.Errorf("parseDecimal(%q) = %v, want failure", tt.in, d)
			}
			continue
		}
		if !ok {
			t.Errorf("parseDecimal(%q) failed", tt.in)
			continue
		}
		if got := d.String(); got != tt.want {
			t.Errorf("parseDecimal(%q).String() = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDecimalCompare(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"0", "-0", 0},
		{"1", "1.000", 0},
		{"100", "1e2", 0},
		{"1", "2", -1},
		{"2", "1", 1},
		{"-1", "1", -1},
		{"-2", "-1", -1},
		{"0", "0.0001", -1},
		{"-0.0001", "0", -1},
		{"12", "123", -1},
		{"1.23", "1.3", -1},
		{"123", "13", 1},
		{"1.5", "1.25", 1},
		{"9007199254740993", "9007199254740992", 1},
		{"1e400", "1e399", 1},
		{"-1e400", "-1e399", -1},
		{"0.1", "1e-1", 0},
	}
	for _, tt := range tests {
		a, _ := parseDecimal(tt.a)
		b, _ := parseDecimal(tt.b)
		if got := cmpDecimal(a, b); got != tt.want {
			t.Errorf("cmp(%s, %s) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := cmpDecimal(b, a); got != -tt.want {
			t.Errorf("cmp(%s, %s) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

// TestFloatClaimsRecoverTheirText checks the promise that a float64 claim is
// judged by the JSON text it was decoded from.
func TestFloatClaimsRecoverTheirText(t *testing.T) {
	for _, text := range []string{"0.1", "115", "3.14159", "1e21", "123456789012345", "-2.5e-8"} {
		var f float64
		if err := json.Unmarshal([]byte(text), &f); err != nil {
			t.Fatal(err)
		}
		got, why := claimScalar(f)
		want, _ := parseDecimal(text)
		if why != "" || cmpDecimal(got.num, want) != 0 {
			t.Errorf("float64 from %s judged as %v (%s)", text, got.num, why)
		}
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, why := claimScalar(f); why == "" {
			t.Errorf("%v is treated as a number", f)
		}
	}
}

func TestEqualCoercion(t *testing.T) {
	str := func(s string) scalar { return scalar{kind: kindString, str: s} }
	num := func(s string) scalar { d, _ := parseDecimal(s); return scalar{kind: kindNumber, num: d} }
	boolean := func(b bool) scalar { return scalar{kind: kindBool, b: b} }
	tests := []struct {
		name           string
		want, got      scalar
		eq, comparable bool
	}{
		{"same strings", str("a"), str("a"), true, true},
		{"strings are case-sensitive", str("a"), str("A"), false, true},
		{"string true, boolean true", str("true"), boolean(true), true, true},
		{"boolean true, string true", boolean(true), str("true"), true, true},
		{"string True, boolean true", str("True"), boolean(true), false, true},
		{"string false, boolean false", str("false"), boolean(false), true, true},
		{"string 1, boolean true", str("1"), boolean(true), false, true},
		{"string 3, number 3.0", str("3"), num("3.0"), true, true},
		{"number 3, string 3", num("3"), str("3"), true, true},
		{"number 3, string 3.0", num("3"), str("3.0"), false, true},
		{"number 1e21, string 1e+21", num("1e21"), str("1e+21"), true, true},
		{"numbers by value", num("1e2"), num("100"), true, true},
		{"booleans", boolean(false), boolean(false), true, true},
		{"boolean and number", boolean(true), num("1"), false, false},
		{"number and boolean", num("0"), boolean(false), false, false},
	}
	for _, tt := range tests {
		eq, comparable := equal(tt.want, tt.got)
		if eq != tt.eq || comparable != tt.comparable {
			t.Errorf("%s: equal = %v, %v; want %v, %v", tt.name, eq, comparable, tt.eq, tt.comparable)
		}
	}
}
