package maa

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strconv"
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
			req, err := DecodeRequest(snpModule, []byte(c.body))
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

// TestDecodeRequestOwnsItsResult: the attest handler recycles the body
// buffer right after DecodeRequest, so nothing decoded may alias it.
func TestDecodeRequestOwnsItsResult(t *testing.T) {
	for _, body := range []string{
		`{"report":"eyJTbnBSZXBvcnQiOiJBQSJ9","runtimeData":{"data":"eyJhIjoxfQ","dataType":"JSON"},"initTimeData":{"data":"AAEC","dataType":"Binary"},"nonce":"n-1","draftPolicyForAttestation":"version=1.0;"}`,
		`{"report":"eyJTbnBSZXBvcnQiOiJBQSJ9","nonce":12345}`,
		`{ "report" : "eyJTbnBSZXBvcnQiOiJBQSJ9" , "nonce" : "a\u0041" }`, // the encoding/json path
	} {
		b := []byte(body)
		req, err := DecodeRequest(snpModule, b)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		want := fmt.Sprintf("%+v %+v %+v", req, req.RuntimeData, req.InitTimeData)
		for i := range b {
			b[i] = 'x'
		}
		if got := fmt.Sprintf("%+v %+v %+v", req, req.RuntimeData, req.InitTimeData); got != want {
			t.Fatalf("the decoded request changed with the body buffer:\n%s\n%s", want, got)
		}
	}
}

// TestWriteTokenIsJSON: the hand-assembled answer is exactly what
// encoding/json would produce, and odd characters fall back to it.
func TestWriteTokenIsJSON(t *testing.T) {
	for _, tok := range []string{"eyJhbGciOiJFUzI1NiJ9.e30.c2ln-_", "", `a"b\c</script>`} {
		rec := httptest.NewRecorder()
		writeToken(rec, tok)
		want, _ := json.Marshal(map[string]string{"token": tok})
		if got := rec.Body.String(); got != string(want)+"\n" || rec.Header().Get("Content-Length") != strconv.Itoa(len(got)) {
			t.Errorf("%q: %q, want %q", tok, got, want)
		}
	}
}

// snpModule is the part of the SevSnpVm registration DecodeRequest reads.
var snpModule = attest.Module{Type: "SevSnpVm", Member: "report"}
