package snp

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzBundleFastAgrees: wherever the fast bundle decoder accepts, it agrees
// with encoding/json.
func FuzzBundleFastAgrees(f *testing.F) {
	for _, s := range []string{
		`{"SnpReport":"AAAA","VcekCertChain":"LS0t+/=="}`,
		`{"snpreport":"A","SNPREPORT":"B"}`,
		`{"SnpReport":"AA","Endorsements":"eyJVdm0iOltdfQ"}`,
		`{"SnpReport":"A\/A"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := bundleFast(b)
		if !ok {
			return
		}
		var slow Bundle
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&slow); err != nil || dec.More() {
			t.Fatalf("fast path accepted what encoding/json refuses (%v): %q", err, b)
		}
		if fast != slow {
			t.Fatalf("fast %+v != encoding/json %+v for %q", fast, slow, b)
		}
	})
}
