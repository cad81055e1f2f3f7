package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/kura-project/kura/internal/config"
)

// TestACLBadInput: malformed ACL requests get a 4xx naming what is wrong,
// and nothing is appended.
func TestACLBadInput(t *testing.T) {
	l := startLive(t, func(c *config.Config) { c.MaxBodyBytes = 64 << 10 })
	do := func(method, path, tok, ctype string, body []byte) (int, string) {
		req, _ := http.NewRequest(method, l.url()+path, bytes.NewReader(body))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := l.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	count := func() int {
		code, b := do("GET", "/app/collections?api-version=2022-05-13", l.admin, "", nil)
		if code != 200 {
			t.Fatalf("collections: %d %s", code, b)
		}
		var out struct{ Collections []any }
		json.Unmarshal([]byte(b), &out)
		_, b = do("GET", "/app/transactions?api-version=2022-05-13", l.admin, "", nil)
		var es struct{ Entries []any }
		json.Unmarshal([]byte(b), &es)
		return len(out.Collections)*1000 + len(es.Entries)
	}
	before := count()
	const v = "?api-version=2022-05-13"
	js := "application/json"
	for _, c := range []struct {
		name, method, path, tok, ctype, body string
		status                               int
		msg                                  string
	}{
		{"no api-version", "POST", "/app/transactions", l.admin, js, `{"contents":"x"}`, 400, "api-version is required"},
		{"unknown api-version", "POST", "/app/transactions?api-version=2099-01-01", l.admin, js, `{"contents":"x"}`, 400, "not supported"},
		{"no token", "POST", "/app/transactions" + v, "", js, `{"contents":"x"}`, 401, "bearer token"},
		{"bad token", "POST", "/app/transactions" + v, "nope", js, `{"contents":"x"}`, 401, "Unauthorized"},
		{"not JSON", "POST", "/app/transactions" + v, l.admin, js, `contents=x`, 400, "not a JSON LedgerEntry"},
		{"no contents", "POST", "/app/transactions" + v, l.admin, js, `{}`, 400, "contents: required"},
		{"contents a number", "POST", "/app/transactions" + v, l.admin, js, `{"contents":5}`, 400, "not a JSON LedgerEntry"},
		{"wrong content type", "POST", "/app/transactions" + v, l.admin, "text/plain", `{"contents":"x"}`, 400, "Content-Type"},
		{"audit collection", "POST", "/app/transactions" + v + "&collectionId=kura-audit", l.admin, js, `{"contents":"x"}`, 400, "kura's own"},
		{"long collection", "POST", "/app/transactions" + v + "&collectionId=" + strings.Repeat("c", 300), l.admin, js, `{"contents":"x"}`, 400, "collectionId"},
		{"too large", "POST", "/app/transactions" + v, l.admin, js, `{"contents":"` + strings.Repeat("a", 70<<10) + `"}`, 413, "larger than"},
		{"bad id", "GET", "/app/transactions/abc" + v, l.admin, "", "", 400, "transactionId"},
		{"id of another view", "GET", "/app/transactions/2.1" + v, l.admin, "", "", 400, "transactionId"},
		{"id zero", "GET", "/app/transactions/1.0/receipt" + v, l.admin, "", "", 400, "seqno from 1"},
		{"unknown id", "GET", "/app/transactions/1.999999/status" + v, l.admin, "", "", 404, "no transaction 1.999999"},
		{"unknown id receipt", "GET", "/app/transactions/1.999999/receipt" + v, l.admin, "", "", 404, "no transaction"},
		{"bad from", "GET", "/app/transactions" + v + "&fromTransactionId=x", l.admin, "", "", 400, "fromTransactionId"},
		{"bad to", "GET", "/app/transactions" + v + "&toTransactionId=1.-1", l.admin, "", "", 400, "toTransactionId"},
		{"patch not an object", "PATCH", "/app/users/nobody" + v, l.admin, "application/merge-patch+json", `[1]`, 400, "merge patch"},
		{"patch unknown principal", "PATCH", "/app/users/nobody" + v, l.admin, "application/merge-patch+json", `{"assignedRole":"Reader"}`, 404, "nobody"},
		{"empty current", "GET", "/app/transactions/current" + v + "&collectionId=none", l.admin, "", "", 404, "holds no entries"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, b := do(c.method, c.path, c.tok, c.ctype, []byte(c.body))
			if code != c.status || !strings.Contains(b, c.msg) {
				t.Errorf("%d %s, want %d naming %q", code, b, c.status, c.msg)
			}
		})
	}
	p := l.principal(t, "acl-bad-role")
	code, b := do("PATCH", "/app/users/"+p.id+v, l.admin, "application/merge-patch+json", []byte(`{"assignedRole":"Wizard"}`))
	if code != 400 || !strings.Contains(b, "assignedRole") {
		t.Errorf("unknown role: %d %s", code, b)
	}
	if after := count(); after != before {
		t.Errorf("refused requests changed the ledger: %d → %d", before, after)
	}
}
