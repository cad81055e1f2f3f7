package wire

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kura-project/kura/internal/fault"
)

func TestBearer(t *testing.T) {
	for _, c := range []struct {
		header, tok string
		ok          bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true},
		{"BEARER  abc ", "abc", true},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Basic YWJj", "", false},
		{"Bearerabc", "", false},
		{"", "", false},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if c.header != "" {
			r.Header.Set("Authorization", c.header)
		}
		tok, ok := Bearer(r)
		if tok != c.tok || ok != c.ok {
			t.Errorf("%q: %q %v, want %q %v", c.header, tok, ok, c.tok, c.ok)
		}
	}
}

func TestAPIVersion(t *testing.T) {
	supported := []string{"7.4", "2025-07-01"}
	for _, c := range []struct{ query, code, msg string }{
		{"?api-version=7.4", "", ""},
		{"", "MissingApiVersionParameter", "api-version is required as a query parameter (one of 7.4, 2025-07-01)"},
		{"?api-version=", "MissingApiVersionParameter", "required"},
		{"?api-version=7.5", "UnsupportedApiVersion", `api-version "7.5" is not supported (one of 7.4, 2025-07-01)`},
		{"?api-version=7.4%20", "UnsupportedApiVersion", `"7.4 "`},
	} {
		err := APIVersion(httptest.NewRequest("GET", "/"+c.query, nil), supported)
		if c.code == "" {
			if err != nil {
				t.Errorf("%q: %v", c.query, err)
			}
			continue
		}
		e, ok := fault.As(err)
		if !ok || e.Kind != fault.BadInput || e.Code != c.code || !strings.Contains(e.Public(), c.msg) {
			t.Errorf("%q: %v, want %s %q", c.query, err, c.code, c.msg)
		}
	}
}
