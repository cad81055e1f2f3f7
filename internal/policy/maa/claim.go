package maa

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
)

// Claim issuers defined by MAA.
const (
	IssuerService = "AttestationService" // produced by the service from verified evidence
	IssuerPolicy  = "AttestationPolicy"  // produced by the policy (add, issue, issueproperty)
	IssuerCustom  = "CustomClaim"        // supplied by the attester; the default
)

// Claim is one claim in the incoming, outgoing or property set.
type Claim struct {
	Type string
	// Value is a string, int64 or bool, or a JSON value (map[string]any,
	// []any, float64, json.Number, ...) for structured claims such as
	// x-ms-runtime. Other Go integer types and integral numbers are accepted
	// as int64, because MAA's Integer is what a JSON number in evidence means.
	Value any
	// Issuer is IssuerService, IssuerPolicy or IssuerCustom; empty means
	// IssuerCustom, as in MAA.
	Issuer string
}

// Value types as a condition's valueType sees them. MAA documents String,
// Integer and Boolean; Json is kura's name for structured claim values.
const (
	valueTypeString  = "String"
	valueTypeInteger = "Integer"
	valueTypeBoolean = "Boolean"
	valueTypeJSON    = "Json"
)

// maxExactFloat is the largest magnitude below which every integer is exactly
// representable in a float64; beyond it a "whole" float may not be the
// integer the evidence contained, so it is not turned into an Integer.
const maxExactFloat = 1 << 53

// claimRec is a normalized claim: val is string, int64, bool or jsonValue,
// and issuer is never empty.
type claimRec struct {
	typ    string
	val    any
	issuer string
}

// jsonValue wraps a structured JSON value decoded by encoding/json into
// map[string]any, []any, float64, string, bool or nil. It is distinct from
// the claim primitives so that a JSON string nested in it never compares
// equal to a String claim by accident.
type jsonValue struct{ v any }

// set is the result of JsonToClaimValue on an array: distinct string, int64
// or bool elements in first-seen order.
type set []any

// noValue is JsonToClaimValue(null): an expression with no value, which
// produces no claim and satisfies no comparison.
type noValue struct{}

func valueTypeOf(v any) string {
	switch v.(type) {
	case string:
		return valueTypeString
	case int64:
		return valueTypeInteger
	case bool:
		return valueTypeBoolean
	default:
		return valueTypeJSON
	}
}

func newClaimRec(c Claim) (claimRec, error) {
	if c.Type == "" {
		return claimRec{}, errors.New("empty claim type")
	}
	issuer := c.Issuer
	switch issuer {
	case "":
		issuer = IssuerCustom
	case IssuerService, IssuerPolicy, IssuerCustom:
	default:
		return claimRec{}, fmt.Errorf("unknown issuer %q (expected %s, %s or %s)", issuer, IssuerService, IssuerPolicy, IssuerCustom)
	}
	v, err := normalizeValue(c.Value)
	if err != nil {
		return claimRec{}, err
	}
	return claimRec{typ: c.Type, val: v, issuer: issuer}, nil
}

func (c *claimRec) export() Claim {
	v := c.val
	if j, ok := v.(jsonValue); ok {
		v = j.v
	}
	return Claim{Type: c.typ, Value: v, Issuer: c.issuer}
}

// normalizeValue maps a caller's claim value onto the evaluator's types.
func normalizeValue(v any) (any, error) {
	switch x := v.(type) {
	case string, bool, int64:
		return x, nil
	case int:
		return int64(x), nil
	case int8:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case uint8:
		return int64(x), nil
	case uint16:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case uint:
		return uintValue(uint64(x))
	case uint64:
		return uintValue(x)
	case float32:
		return floatValue(float64(x))
	case float64:
		return floatValue(x)
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i, nil
		}
		f, err := x.Float64()
		if err != nil {
			return nil, fmt.Errorf("invalid JSON number %q: %w", string(x), err)
		}
		return floatValue(f)
	case nil:
		return jsonValue{nil}, nil
	case jsonValue:
		return x, nil
	}
	// Anything else is taken as JSON. A round trip through encoding/json
	// yields the plain map[string]any / []any / float64 shapes go-jmespath
	// understands, whatever shapes the caller used (json.Number, typed
	// slices, structs), so a query behaves the same for every caller.
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("value of type %T is not JSON: %w", v, err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("value of type %T is not JSON: %w", v, err)
	}
	switch out.(type) {
	case map[string]any, []any:
		return jsonValue{out}, nil
	default:
		// A type that marshals to a scalar: normalize that scalar, which
		// the cases above handle without recursing again.
		return normalizeValue(out)
	}
}

func uintValue(u uint64) (any, error) {
	if u > math.MaxInt64 {
		return nil, fmt.Errorf("integer %d overflows int64", u)
	}
	return int64(u), nil
}

func floatValue(f float64) (any, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("number %v is not JSON", f)
	}
	if f == math.Trunc(f) && math.Abs(f) <= maxExactFloat {
		return int64(f), nil
	}
	return jsonValue{f}, nil
}

// compareOp is a condition's comparison operator.
type compareOp uint8

const (
	opEq compareOp = iota
	opNe
	opLt
	opLe
	opGt
	opGe
)

func (op compareOp) String() string {
	switch op {
	case opEq:
		return "=="
	case opNe:
		return "!="
	case opLt:
		return "<"
	case opLe:
		return "<="
	case opGt:
		return ">"
	default:
		return ">="
	}
}

func (op compareOp) ordering() bool { return op >= opLt }

// compareValues applies op to a claim value and an expression value. Values
// of different types never satisfy any operator (see the package comment).
func compareValues(left any, op compareOp, right any) bool {
	switch l := left.(type) {
	case string:
		return compareString(l, op, right)
	case int64:
		r, ok := right.(int64)
		if !ok {
			return false
		}
		switch op {
		case opEq:
			return l == r
		case opNe:
			return l != r
		case opLt:
			return l < r
		case opLe:
			return l <= r
		case opGt:
			return l > r
		default:
			return l >= r
		}
	case bool:
		r, ok := right.(bool)
		if !ok {
			return false
		}
		switch op {
		case opEq:
			return l == r
		case opNe:
			return l != r
		}
	case jsonValue:
		r, ok := right.(jsonValue)
		if !ok {
			return false
		}
		switch op {
		case opEq:
			return reflect.DeepEqual(l.v, r.v)
		case opNe:
			return !reflect.DeepEqual(l.v, r.v)
		}
	}
	return false
}

// compareString is compareValues for a string left side; it exists so that
// the hot type/issuer comparisons do not box the claim's string.
func compareString(l string, op compareOp, right any) bool {
	r, ok := right.(string)
	if !ok {
		return false
	}
	switch op {
	case opEq:
		return l == r
	case opNe:
		return l != r
	}
	return false
}
