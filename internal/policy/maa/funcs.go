package maa

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/jmespath/go-jmespath"
)

const (
	// maxStringBytes bounds AppendString results: nested calls double a
	// string per level, and the step bound alone would still allow
	// gigabytes.
	maxStringBytes = 64 << 10
	// maxJSONBytes bounds the JSON text JmesPath returns. Whole event logs
	// pass through it, so it is generous.
	maxJSONBytes = 4 << 20
)

type function uint8

const (
	fnJmesPath function = iota
	fnJSONToClaimValue
	fnIsSubsetOf
	fnAppendString
	fnNegateBool
	fnContainsOnlyValue
)

func lookupFunction(name string) (function, bool) {
	switch strings.ToLower(name) {
	case "jmespath":
		return fnJmesPath, true
	case "jsontoclaimvalue":
		return fnJSONToClaimValue, true
	case "issubsetof":
		return fnIsSubsetOf, true
	case "appendstring":
		return fnAppendString, true
	case "negatebool":
		return fnNegateBool, true
	case "containsonlyvalue":
		return fnContainsOnlyValue, true
	}
	return 0, false
}

func (f function) String() string {
	switch f {
	case fnJmesPath:
		return "JmesPath"
	case fnJSONToClaimValue:
		return "JsonToClaimValue"
	case fnIsSubsetOf:
		return "IsSubsetOf"
	case fnAppendString:
		return "AppendString"
	case fnNegateBool:
		return "NegateBool"
	default:
		return "ContainsOnlyValue"
	}
}

// param says what a function argument must be, for the parser's checks.
type param uint8

const (
	paramJSON   param = iota // JSON text or a JSON claim value
	paramQuery               // JmesPath query: a string literal
	paramString              // string
	paramBool                // Boolean
	paramSet                 // set (JsonToClaimValue of an array, or a JSON array claim)
	paramScalar              // string, integer or Boolean
)

func (f function) params() []param {
	switch f {
	case fnJmesPath:
		return []param{paramJSON, paramQuery}
	case fnJSONToClaimValue:
		return []param{paramJSON}
	case fnIsSubsetOf:
		return []param{paramSet, paramSet}
	case fnAppendString:
		return []param{paramString, paramString}
	case fnNegateBool:
		return []param{paramBool}
	default:
		return []param{paramSet, paramScalar}
	}
}

func (f function) result() kind {
	switch f {
	case fnJmesPath, fnAppendString:
		return kindString
	case fnIsSubsetOf, fnNegateBool, fnContainsOnlyValue:
		return kindBool
	default:
		return kindAny
	}
}

// accepts reports whether an argument of static kind k may be valid.
func (p param) accepts(k kind) bool {
	switch p {
	case paramJSON, paramQuery, paramString:
		return k == kindString || k == kindAny
	case paramBool:
		return k == kindBool || k == kindAny
	case paramSet:
		return k == kindAny
	default:
		return true
	}
}

func (p param) String() string {
	switch p {
	case paramJSON:
		return "JSON text"
	case paramQuery:
		return "a JmesPath query string"
	case paramString:
		return "a string"
	case paramBool:
		return "a Boolean"
	case paramSet:
		return "a set"
	default:
		return "a string, integer or Boolean"
	}
}

// call is a function call. The JmesPath query is compiled at parse time.
type call struct {
	fn    function
	args  []expr
	query *jmespath.JMESPath
}

func (c *call) kind() kind { return c.fn.result() }

func (c *call) eval(ev *evaluator, b []*claimRec) (any, error) {
	if err := ev.step(); err != nil {
		return nil, err
	}
	var buf [2]any
	args := buf[:0]
	for _, a := range c.args {
		v, err := a.eval(ev, b)
		if err != nil {
			return nil, err
		}
		if _, ok := v.(noValue); ok {
			return nil, fmt.Errorf("%s: argument %d has no value (JSON null)", c.fn, len(args)+1)
		}
		args = append(args, v)
	}
	v, err := c.apply(args)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.fn, err)
	}
	return v, nil
}

func (c *call) apply(args []any) (any, error) {
	switch c.fn {
	case fnJmesPath:
		return jmesPath(c.query, args[0])
	case fnJSONToClaimValue:
		return jsonToClaimValue(args[0])
	case fnIsSubsetOf:
		sub, err := asSet(args[0], 1)
		if err != nil {
			return nil, err
		}
		super, err := asSet(args[1], 2)
		if err != nil {
			return nil, err
		}
		in := make(map[any]struct{}, len(super))
		for _, v := range super {
			in[v] = struct{}{}
		}
		for _, v := range sub {
			if _, ok := in[v]; !ok {
				return false, nil
			}
		}
		return true, nil
	case fnAppendString:
		s1, ok1 := args[0].(string)
		s2, ok2 := args[1].(string)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("arguments must be strings, found %s and %s", describe(args[0]), describe(args[1]))
		}
		if len(s1)+len(s2) > maxStringBytes {
			return nil, &LimitError{What: "bytes in an AppendString result", Limit: maxStringBytes}
		}
		return s1 + s2, nil
	case fnNegateBool:
		v, ok := args[0].(bool)
		if !ok {
			return nil, fmt.Errorf("argument must be a Boolean, found %s", describe(args[0]))
		}
		return !v, nil
	default: // fnContainsOnlyValue
		s, err := asSet(args[0], 1)
		if err != nil {
			return nil, err
		}
		switch args[1].(type) {
		case string, int64, bool:
		default:
			return nil, fmt.Errorf("argument 2 must be a string, integer or Boolean, found %s", describe(args[1]))
		}
		// Sets hold distinct elements, so "only v" means exactly {v}; an
		// empty set is false so that the check cannot pass vacuously.
		return len(s) == 1 && s[0] == args[1], nil
	}
}

// describe names a value's type for error messages.
func describe(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case bool:
		return "a Boolean"
	case set:
		return "a set"
	case noValue:
		return "no value"
	default:
		return "a JSON value"
	}
}

// compileQuery compiles a JmesPath query, turning a panic inside go-jmespath
// into an error: the library has unchecked type assertions, and a policy
// must never crash the service.
func compileQuery(q string) (jp *jmespath.JMESPath, err error) {
	if strings.TrimSpace(q) == "" {
		return nil, errors.New("empty query")
	}
	defer func() {
		if r := recover(); r != nil {
			jp, err = nil, fmt.Errorf("go-jmespath panicked: %v", r)
		}
	}()
	return jmespath.Compile(q)
}

// search runs a query, recovering from go-jmespath panics (its built-in
// functions assert argument types without checking, and the data comes from
// evidence).
func search(q *jmespath.JMESPath, data any) (res any, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, fmt.Errorf("go-jmespath panicked: %v", r)
		}
	}()
	return q.Search(data)
}

func jmesPath(q *jmespath.JMESPath, doc any) (any, error) {
	var data any
	switch d := doc.(type) {
	case string:
		if strings.TrimSpace(d) == "" {
			return nil, errors.New("argument 1 is empty; it must be JSON text")
		}
		if err := json.Unmarshal([]byte(d), &data); err != nil {
			return nil, fmt.Errorf("argument 1 is not valid JSON: %w", err)
		}
	case jsonValue:
		data = d.v
	default:
		return nil, fmt.Errorf("argument 1 must be JSON text or a JSON claim value, found %s", describe(doc))
	}
	res, err := search(q, data)
	if err != nil {
		return nil, fmt.Errorf("query failed: %w", err)
	}
	if jsonSizeExceeds(res, maxJSONBytes) {
		return nil, &LimitError{What: "bytes of JmesPath result", Limit: maxJSONBytes}
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	// The result is data, not HTML: keep "<" and "&" as they are.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(res); err != nil {
		return nil, fmt.Errorf("result is not JSON: %w", err)
	}
	return strings.TrimSuffix(out.String(), "\n"), nil
}

// jsonSizeExceeds estimates the JSON encoding size of v and reports whether
// it passes limit. go-jmespath results share sub-values (the multi-select
// [@, @] holds @ twice), so an encoding can be exponentially larger than the
// result in memory; measuring first, and stopping at the limit, keeps
// json.Marshal from being asked for gigabytes.
func jsonSizeExceeds(v any, limit int) bool {
	n := 0
	var within func(v any) bool
	within = func(v any) bool {
		switch x := v.(type) {
		case string:
			n += len(x) + 2
		case []any:
			n += 2 + len(x)
			for _, e := range x {
				if !within(e) {
					return false
				}
			}
		case map[string]any:
			n += 2
			for k, e := range x {
				n += len(k) + 4
				if !within(e) {
					return false
				}
			}
		default:
			n += 24 // numbers, true, false, null
		}
		return n <= limit
	}
	return !within(v)
}

func jsonToClaimValue(arg any) (any, error) {
	var data any
	switch a := arg.(type) {
	case string:
		dec := json.NewDecoder(strings.NewReader(a))
		// Exact integers: float64 would silently round values above 2^53.
		dec.UseNumber()
		if err := dec.Decode(&data); err != nil {
			return nil, fmt.Errorf("argument is not valid JSON: %w", err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, errors.New("argument has data after its JSON value")
		}
	case jsonValue:
		data = a.v
	default:
		return nil, fmt.Errorf("argument must be JSON text, found %s", describe(arg))
	}
	switch d := data.(type) {
	case nil:
		return noValue{}, nil
	case map[string]any:
		return nil, errors.New("a JSON object cannot be a claim value")
	case []any:
		return newSet(d)
	default:
		return jsonScalar(d)
	}
}

// newSet converts a JSON array of primitives into a set.
func newSet(elems []any) (set, error) {
	s := make(set, 0, len(elems))
	seen := make(map[any]struct{}, len(elems))
	for i, e := range elems {
		v, err := jsonScalar(e)
		if err != nil {
			return nil, fmt.Errorf("array element %d: %w", i, err)
		}
		if _, dup := seen[v]; dup {
			continue
		}
		seen[v] = struct{}{}
		s = append(s, v)
	}
	return s, nil
}

// jsonScalar converts a decoded JSON primitive to a claim value.
func jsonScalar(v any) (any, error) {
	switch x := v.(type) {
	case string, bool:
		return x, nil
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i, nil
		}
		f, err := x.Float64()
		if err != nil {
			return nil, fmt.Errorf("number %s is not an integer", x)
		}
		return integralFloat(f)
	case float64:
		return integralFloat(x)
	case nil:
		return nil, errors.New("null cannot be an element of a set")
	default:
		return nil, errors.New("a nested array or object cannot be a claim value")
	}
}

func integralFloat(f float64) (any, error) {
	if f != math.Trunc(f) || math.Abs(f) > maxExactFloat {
		return nil, fmt.Errorf("number %v is not an integer in the exact range", f)
	}
	return int64(f), nil
}

// asSet accepts a set, or a JSON array claim value of primitives, as the
// n-th argument of a set function.
func asSet(v any, n int) (set, error) {
	switch x := v.(type) {
	case set:
		return x, nil
	case jsonValue:
		if arr, ok := x.v.([]any); ok {
			s, err := newSet(arr)
			if err != nil {
				return nil, fmt.Errorf("argument %d: %w", n, err)
			}
			return s, nil
		}
	}
	return nil, fmt.Errorf("argument %d must be a set, found %s", n, describe(v))
}
