package maa

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzFastDecodeAgrees: wherever the fast decoder accepts a body, it agrees
// exactly with encoding/json (which then must accept it too).
func FuzzFastDecodeAgrees(f *testing.F) {
	for _, s := range []string{
		`{"report":"AA","runtimeData":{"data":"e30","dataType":"JSON"},"nonce":"x"}`,
		`{"Report":"AA","NONCE":-12,"initTimeData":{"data":"AA"}}`,
		`{"report":"a","report":"b"}`,
		`{"quote":"AA","draftPolicyForAttestation":"version=1.0;"}`,
		` { "report" : "AA" } `,
		`{"report":"AA","nonce":01}`,
		`{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := decodeFast(b)
		if !ok {
			return
		}
		var slow attestRequest
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&slow); err != nil || dec.More() {
			t.Fatalf("fast path accepted what encoding/json refuses (%v): %q", err, b)
		}
		if !reflect.DeepEqual(normalize(fast), normalize(slow)) {
			t.Fatalf("fast %+v != encoding/json %+v for %q", fast, slow, b)
		}
	})
}

func normalize(r attestRequest) attestRequest {
	if len(r.Nonce) > 0 {
		var v any
		json.Unmarshal(r.Nonce, &v)
		b, _ := json.Marshal(v)
		r.Nonce = b
	}
	return r
}
