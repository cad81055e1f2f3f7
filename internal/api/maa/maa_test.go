package maa

import (
	"errors"
	"strings"
	"testing"

	"github.com/kura-project/kura/internal/attest"
)

func isEvidence(err error) bool {
	var e *attest.EvidenceError
	return errors.As(err, &e)
}

func TestDecodeRequest(t *testing.T) {
	for _, c := range []struct {
		name, body string
		want       string // error substring, or "" for success
		nonce      string
		json       bool
	}{
		{"base64url", `{"report":"AA-_"}`, "", "", false},
		{"std base64 padded", `{"report":"AA+/","runtimeData":{"data":"e30=","dataType":"JSON"}}`, "", "", true},
		{"nonce number", `{"report":"AA","nonce":18446744073709551615}`, "", "18446744073709551615", false},
		{"nonce string", `{"report":"AA","nonce":"abc"}`, "", "abc", false},
		{"case-insensitive keys", `{"Report":"AA","RuntimeData":{"Data":"AA","DataType":"binary"}}`, "", "", false},
		{"missing report", `{"nonce":"x"}`, "report: missing", "", false},
		{"bad base64", `{"report":"A*A"}`, "report: not base64", "", false},
		{"bad dataType", `{"report":"AA","runtimeData":{"data":"AA","dataType":"Xml"}}`, "runtimeData.dataType", "", false},
		{"bad data", `{"report":"AA","runtimeData":{"data":"%%","dataType":"JSON"}}`, "runtimeData.data: not base64", "", false},
		{"unknown field", `{"report":"AA","extra":1}`, "unknown field", "", false},
		{"syntax error offset", `{"report":"AA",}`, "at byte", "", false},
		{"long nonce", `{"report":"AA","nonce":"` + strings.Repeat("n", 1025) + `"}`, "nonce: longer than 1024", "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, err := DecodeRequest("SevSnpVm", []byte(c.body))
			if c.want != "" {
				if err == nil || !strings.Contains(err.Error(), c.want) || !isEvidence(err) {
					t.Fatalf("error %v, want an evidence error containing %q", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if req.Nonce != c.nonce {
				t.Errorf("nonce %q, want %q", req.Nonce, c.nonce)
			}
			if c.json && (req.RuntimeData == nil || !req.RuntimeData.JSON || string(req.RuntimeData.Bytes) != "{}") {
				t.Errorf("runtime data %+v", req.RuntimeData)
			}
		})
	}
}
