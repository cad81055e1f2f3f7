package maa

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestNormalizeValue(t *testing.T) {
	type named string
	type point struct {
		X int `json:"x"`
	}
	tests := []struct {
		name string
		in   any
		want any
		err  string
	}{
		{"string", "s", "s", ""},
		{"bool", true, true, ""},
		{"int64", int64(-5), int64(-5), ""},
		{"int", 7, int64(7), ""},
		{"int8", int8(-8), int64(-8), ""},
		{"int16", int16(16), int64(16), ""},
		{"int32", int32(32), int64(32), ""},
		{"uint8", uint8(8), int64(8), ""},
		{"uint16", uint16(16), int64(16), ""},
		{"uint32", uint32(32), int64(32), ""},
		{"uint", uint(9), int64(9), ""},
		{"uint64 in range", uint64(math.MaxInt64), int64(math.MaxInt64), ""},
		{"uint64 overflow", uint64(math.MaxInt64) + 1, nil, "overflows int64"},
		{"integral float64", float64(40), int64(40), ""},
		{"integral float32", float32(3), int64(3), ""},
		{"fractional float", 1.5, jsonValue{1.5}, ""},
		{"float beyond 2^53 stays JSON", float64(1 << 60), jsonValue{float64(1 << 60)}, ""},
		{"NaN", math.NaN(), nil, "is not JSON"},
		{"infinity", math.Inf(1), nil, "is not JSON"},
		{"json.Number integer", json.Number("123456789012345678"), int64(123456789012345678), ""},
		{"json.Number fraction", json.Number("2.5"), jsonValue{2.5}, ""},
		{"json.Number invalid", json.Number("x"), nil, "invalid JSON number"},
		{"nil", nil, jsonValue{nil}, ""},
		{"map", map[string]any{"n": json.Number("1")}, jsonValue{map[string]any{"n": float64(1)}}, ""},
		{"typed slice", []string{"a"}, jsonValue{[]any{"a"}}, ""},
		{"struct", point{X: 2}, jsonValue{map[string]any{"x": float64(2)}}, ""},
		{"named string", named("n"), "n", ""},
		{"channel", make(chan int), nil, "is not JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := normalizeValue(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("normalizeValue(%#v) = %#v, %v; want error containing %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("normalizeValue(%#v) = %#v, %v; want %#v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestCompareValues(t *testing.T) {
	obj := jsonValue{map[string]any{"a": 1.0}}
	tests := []struct {
		left  any
		op    compareOp
		right any
		want  bool
	}{
		{int64(3), opEq, int64(3), true},
		{int64(3), opNe, int64(3), false},
		{int64(3), opLt, int64(4), true},
		{int64(4), opLt, int64(4), false},
		{int64(4), opLe, int64(4), true},
		{int64(5), opLe, int64(4), false},
		{int64(5), opGt, int64(4), true},
		{int64(4), opGt, int64(4), false},
		{int64(4), opGe, int64(4), true},
		{int64(3), opGe, int64(4), false},
		{"a", opEq, "a", true},
		{"a", opNe, "b", true},
		{"a", opLt, "b", false}, // no ordering on strings
		{"b", opGe, "a", false},
		{true, opEq, true, true},
		{true, opNe, false, true},
		{true, opGt, false, false}, // no ordering on Booleans
		{"false", opEq, false, false},
		{"false", opNe, false, false}, // different types: false for every operator
		{int64(1), opEq, "1", false},
		{int64(1), opNe, "1", false},
		{int64(1), opLt, "2", false},
		{true, opEq, int64(1), false},
		{obj, opEq, jsonValue{map[string]any{"a": 1.0}}, true},
		{obj, opNe, jsonValue{map[string]any{"a": 2.0}}, true},
		{obj, opLt, obj, false},
		{obj, opEq, `{"a":1}`, false},
		{int64(1), opEq, set{int64(1)}, false},
		{int64(1), opEq, noValue{}, false},
	}
	for _, tc := range tests {
		if got := compareValues(tc.left, tc.op, tc.right); got != tc.want {
			t.Errorf("%#v %s %#v = %v, want %v", tc.left, tc.op, tc.right, got, tc.want)
		}
	}
}

func TestJmesPathGuards(t *testing.T) {
	// [@, @] holds its input twice by reference; thirty of them describe a
	// result of 2^30 copies that must not be encoded.
	blowup := strings.Repeat("[@, @] | ", 30) + "@"
	tests := []struct {
		name  string
		query string
		doc   string
		limit bool
		msg   string
	}{
		{"panic in go-jmespath becomes an error", "merge(@)", "[1]", false, "go-jmespath panicked"},
		{"shared result too large to encode", blowup, `"` + strings.Repeat("x", 100) + `"`, true, "bytes of JmesPath result"},
		{"empty document", "a", "  ", false, "argument 1 is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustParse(t, `version=1.2; authorizationrules { c:[type=="doc"] => add(type="r", value=JmesPath(c.value, "`+tc.query+`")); };`)
			_, err := p.Evaluate([]Claim{svc("doc", tc.doc)})
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error = %v, want one containing %q", err, tc.msg)
			}
			var le *LimitError
			if errors.As(err, &le) != tc.limit {
				t.Errorf("LimitError = %v, want %v", !tc.limit, tc.limit)
			}
		})
	}
}

func TestJSONToClaimValue(t *testing.T) {
	tests := []struct {
		in   any
		want any
		err  string
	}{
		{"1", int64(1), ""},
		{"-9223372036854775808", int64(math.MinInt64), ""},
		{"1e3", int64(1000), ""},
		{"9223372036854775808", nil, "not an integer"},
		{`"s"`, "s", ""},
		{"true", true, ""},
		{"null", noValue{}, ""},
		{`[3, "a", 3, false]`, set{int64(3), "a", false}, ""},
		{"[[1]]", nil, "array element 0: a nested array or object"},
		{"[null]", nil, "array element 0: null cannot be an element"},
		{`{"a":1}`, nil, "a JSON object cannot be a claim value"},
		{"1 2", nil, "data after its JSON value"},
		{"", nil, "not valid JSON"},
		{jsonValue{[]any{1.0, 2.0}}, set{int64(1), int64(2)}, ""},
		{jsonValue{nil}, noValue{}, ""},
		{int64(1), nil, "argument must be JSON text, found an integer"},
	}
	for _, tc := range tests {
		got, err := jsonToClaimValue(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("jsonToClaimValue(%#v) = %#v, %v; want error containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("jsonToClaimValue(%#v) = %#v, %v; want %#v", tc.in, got, err, tc.want)
		}
	}
}
