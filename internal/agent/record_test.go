package agent_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/kura-project/kura/internal/agent"
	"github.com/kura-project/kura/internal/agent/simsource"
)

// rewriting is a transport that lets edit change each answer.
type rewriting struct {
	next http.RoundTripper
	edit func(req *http.Request, resp *http.Response)
}

func (r *rewriting) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err == nil && r.edit != nil {
		r.edit(req, resp)
	}
	return resp, err
}

// setBody replaces an answer's body.
func setBody(resp *http.Response, b []byte) {
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Del("Content-Length")
}

// TestAgentChecksReleaseRecord: the agent delivers a key only once its
// release is proved on kura's ledger: the record named by the answer's
// x-kura-ledger-transaction-id, fetched with the agent's own token,
// verifies against the ledger key and names this release. Without the
// header, with the record's contents changed, with another entry named,
// or against another pinned ledger key, nothing is delivered.
func TestAgentChecksReleaseRecord(t *testing.T) {
	e := start(t)
	p, a := releasable(t, e)
	req, _ := http.NewRequest("GET", e.url+"/kura/v1/ledger/key", nil)
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	ledgerKey, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_, otherKey, _ := note.GenerateKey(rand.Reader, strings.SplitN(string(ledgerKey), "+", 2)[0])

	isRelease := func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/release") }
	isEntry := func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/kura/v1/ledger/entries/") }
	cases := []struct {
		name      string
		edit      func(*http.Request, *http.Response)
		ledgerKey string
		want      string // in the error; "" for a delivered key
	}{
		{name: "honest, key fetched", want: ""},
		{name: "honest, key pinned", ledgerKey: string(ledgerKey), want: ""},
		{name: "no record named", edit: func(r *http.Request, resp *http.Response) {
			if isRelease(r) {
				resp.Header.Del("x-kura-ledger-transaction-id")
			}
		}, want: "names no ledger record"},
		{name: "another entry named", edit: func(r *http.Request, resp *http.Response) {
			if isRelease(r) {
				resp.Header.Set("x-kura-ledger-transaction-id", "1.1") // the key's creation, an administrator's
			}
		}, want: "403"},
		{name: "contents changed", edit: func(r *http.Request, resp *http.Response) {
			if isEntry(r) {
				var e map[string]any
				b, _ := io.ReadAll(resp.Body)
				json.Unmarshal(b, &e)
				c, _ := base64.StdEncoding.DecodeString(e["contents"].(string))
				e["contents"] = base64.StdEncoding.EncodeToString(bytes.Replace(c, []byte(`"key.release"`), []byte(`"key.releasf"`), 1))
				b, _ = json.Marshal(e)
				setBody(resp, b)
			}
		}, want: "are not the entry's"},
		{name: "another ledger key pinned", ledgerKey: otherKey, want: "checkpoint"},
		{name: "not a transaction id", edit: func(r *http.Request, resp *http.Response) {
			if isRelease(r) {
				resp.Header.Set("x-kura-ledger-transaction-id", "2.7")
			}
		}, want: "not a transaction id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "keys")
			ag, err := agent.New(agent.Config{URL: e.url, HTTP: &http.Client{Transport: &rewriting{next: e.http.Transport, edit: c.edit}},
				ClientID: p["id"].(string), ClientSecret: p["client_secret"].(string), LedgerKey: c.ledgerKey,
				Keys: []agent.KeyRef{{Name: "aes"}}, Source: simsource.Source{Authority: a}, OutDir: out})
			if err != nil {
				t.Fatal(err)
			}
			_, err = ag.Round(context.Background())
			_, statErr := os.Stat(filepath.Join(out, "aes"))
			if c.want == "" {
				if err != nil || statErr != nil {
					t.Fatalf("round: %v; key file: %v", err, statErr)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("round: %v, want %q", err, c.want)
			}
			if statErr == nil {
				t.Error("the key was delivered")
			}
		})
	}
}

// TestCheckRecord: a record that names another key, token, answer, nonce
// or TEE key than the release is refused.
func TestCheckRecord(t *testing.T) {
	e := start(t)
	p, a := releasable(t, e)
	// Capture the entry and what the agent knew of the release.
	var entry []byte
	var release, token string
	tr := &rewriting{next: e.http.Transport, edit: func(r *http.Request, resp *http.Response) {
		b, _ := io.ReadAll(resp.Body)
		setBody(resp, b)
		switch {
		case strings.HasPrefix(r.URL.Path, "/kura/v1/ledger/entries/"):
			entry = b
		case strings.HasSuffix(r.URL.Path, "/release"):
			var v struct{ Value string }
			json.Unmarshal(b, &v)
			release = v.Value
		case strings.HasPrefix(r.URL.Path, "/attest/"):
			var v struct{ Token string }
			json.Unmarshal(b, &v)
			token = v.Token
		}
	}}
	ag, err := agent.New(agent.Config{URL: e.url, HTTP: &http.Client{Transport: tr}, ClientID: p["id"].(string), ClientSecret: p["client_secret"].(string),
		Keys: []agent.KeyRef{{Name: "aes"}}, Source: simsource.Source{Authority: a}, OutDir: filepath.Join(t.TempDir(), "keys")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ag.Round(context.Background()); err != nil {
		t.Fatal(err)
	}
	var ent struct {
		Seq    int64  `json:"seq"`
		Origin string `json:"origin"`
	}
	json.Unmarshal(entry, &ent)
	req, _ := http.NewRequest("GET", e.url+"/kura/v1/ledger/key", nil)
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	v, err := note.NewVerifier(strings.TrimSpace(string(kb)))
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ag.Key("aes")
	var payload struct {
		Release struct {
			TEEKey string `json:"tee_key"`
		} `json:"x-kura-release"`
		Request struct {
			Nonce string `json:"nonce"`
		} `json:"request"`
	}
	parts := strings.Split(release, ".")
	pb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	json.Unmarshal(pb, &payload)
	good := agent.Record{Name: "aes", Version: k.Version, Token: token, Answer: release, Nonce: payload.Request.Nonce, TEEKeyID: payload.Release.TEEKey}
	if _, err := agent.CheckRecord(entry, v, ent.Seq, good); err != nil {
		t.Fatalf("the release's own record: %v", err)
	}
	for _, c := range []struct {
		name string
		edit func(*agent.Record)
		seq  int64
		want string
	}{
		{"another key", func(r *agent.Record) { r.Name = "other" }, ent.Seq, "key"},
		{"another version", func(r *agent.Record) { r.Version = strings.Repeat("0", 32) }, ent.Seq, "key"},
		{"another token", func(r *agent.Record) { r.Token += "x" }, ent.Seq, "token digest"},
		{"another answer", func(r *agent.Record) { r.Answer += "x" }, ent.Seq, "answer digest"},
		{"another nonce", func(r *agent.Record) { r.Nonce = "00" }, ent.Seq, "nonce"},
		{"another TEE key", func(r *agent.Record) { r.TEEKeyID = "kura-agent-0" }, ent.Seq, "TEE key"},
		{"another seq", func(*agent.Record) {}, ent.Seq + 1, "not of the audit record"},
	} {
		r := good
		c.edit(&r)
		if _, err := agent.CheckRecord(entry, v, c.seq, r); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// An entry that verifies but is no release (the key's creation).
	req, _ = http.NewRequest("GET", e.url+"/kura/v1/ledger/entries/0", nil)
	req.Header.Set("Authorization", "Bearer "+e.admin)
	resp, err = e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if _, err := agent.CheckRecord(other, v, 0, good); err == nil || !strings.Contains(err.Error(), "action") {
		t.Errorf("a record that is no release: %v", err)
	}
	if _, err := agent.CheckRecord([]byte("{"), v, ent.Seq, good); err == nil {
		t.Error("a malformed entry: accepted")
	}
}
