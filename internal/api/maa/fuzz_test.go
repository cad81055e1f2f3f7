package maa

import (
	"testing"
)

// FuzzDecodeRequest: arbitrary bodies never panic the request decoder, and
// every refusal is an evidence error (a 400), never anything else.
func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"report":"eyJTbnBSZXBvcnQiOiJBQSJ9","runtimeData":{"data":"e30","dataType":"JSON"},"nonce":"x"}`))
	f.Add([]byte(`{"report":"AA","nonce":12345678901234567890}`))
	f.Add([]byte(`{"report":"AA","initTimeData":{"data":"AA==","dataType":"Binary"}}`))
	f.Add([]byte(`{"report":"a+/b=="}`))
	f.Add([]byte(`{"quote":"AA"}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := DecodeRequest(snpModule, b)
		if err != nil {
			if !isEvidence(err) {
				t.Fatalf("refusal %v is not an evidence error", err)
			}
			return
		}
		if len(req.Evidence) == 0 {
			t.Fatal("accepted a request without evidence")
		}
	})
}
