package witness

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// TestAddCheckpoint: the request is the protocol's body (old size line,
// proof lines, blank line, checkpoint) posted to <prefix>/add-checkpoint;
// every answer the protocol defines maps to a result that says what the
// witness meant.
func TestAddCheckpoint(t *testing.T) {
	const cp = "kura.test/ledger\n5\nAAAA\n\n— kura.test/ledger sig\n"
	var h1, h2 tlog.Hash
	h1[0], h2[31] = 1, 2
	wantBody := "old 3\n" + "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAI=\n" + "\n" + cp
	cases := []struct {
		name   string
		status int
		ctype  string
		answer string
		want   string // in the error; "" for success
		size   int64  // a ConflictError's
	}{
		{"cosigned", 200, "text/plain", "— w.example/w c2ln\n", "", 0},
		{"size conflict", 409, "text/x.tlog.size", "7\n", "size 7", 7},
		{"size conflict with parameters", 409, "text/x.tlog.size; charset=utf-8", "12\n", "size 12", 12},
		{"root conflict", 409, "text/plain", "", "another tree of size 3", 0},
		{"bad size", 409, "text/x.tlog.size", "seven\n", "is not a size", 0},
		{"unknown log", 404, "text/plain", "unknown log\n", "does not know this log", 0},
		{"untrusted key", 403, "text/plain", "", "does not trust the key", 0},
		{"bad proof", 422, "text/plain", "", "refused the consistency proof from 3", 0},
		{"server error", 500, "text/plain", "boom", `500 Internal Server Error: "boom"`, 0},
		{"oversized", 200, "text/plain", strings.Repeat("x", maxAnswer+1), "over 65536 bytes", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				if r.Method != http.MethodPost || r.URL.Path != "/w/add-checkpoint" || string(b) != wantBody {
					t.Errorf("request %s %s:\n%q\nwant\n%q", r.Method, r.URL.Path, b, wantBody)
				}
				w.Header().Set("Content-Type", c.ctype)
				w.WriteHeader(c.status)
				io.WriteString(w, c.answer)
			}))
			defer srv.Close()
			got, err := (&Client{URL: srv.URL + "/w"}).AddCheckpoint(context.Background(), 3, tlog.TreeProof{h1, h2}, []byte(cp))
			if c.want == "" {
				if err != nil || string(got) != c.answer {
					t.Fatalf("%q %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			var ce *ConflictError
			if errors.As(err, &ce) != (c.size != 0) || (ce != nil && ce.WitnessSize() != c.size) {
				t.Errorf("conflict %+v, want size %d", ce, c.size)
			}
		})
	}
	// 422 at the checkpoint's own size (litewitness's answer to another
	// root of that size): a split view, said so.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnprocessableEntity)
	}))
	defer srv.Close()
	if _, err := (&Client{URL: srv.URL}).AddCheckpoint(context.Background(), 5, nil, []byte(cp)); err == nil || !strings.Contains(err.Error(), "another tree of size 5") {
		t.Errorf("422 at the same size: %v", err)
	}
	// Over the protocol's 63 proof lines: not sent.
	if _, err := (&Client{URL: "http://127.0.0.1:1"}).AddCheckpoint(context.Background(), 1, make(tlog.TreeProof, 64), []byte(cp)); err == nil || !strings.Contains(err.Error(), "63") {
		t.Errorf("64 proof lines: %v", err)
	}
	// Unreachable: the error names the URL.
	if _, err := (&Client{URL: "http://127.0.0.1:1/w"}).AddCheckpoint(context.Background(), 0, nil, []byte(cp)); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1/w/add-checkpoint") {
		t.Errorf("unreachable: %v", err)
	}
}

func TestParse(t *testing.T) {
	_, vkey, err := note.GenerateKey(rand.Reader, "w.example/w")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		in   string
		want string // in the error; "" for success
	}{
		{"https://w.example/ " + vkey, ""},
		{"  http://127.0.0.1:7380   " + vkey + " ", ""},
		{"https://w.example/", "separated by a space"},
		{vkey, "separated by a space"},
		{"ftp://w.example/ " + vkey, "not an http(s) URL"},
		{"https:///x " + vkey, "not an http(s) URL"},
		{"https://w.example/ w.example/w+00000000+AQ==", "verifier key"},
		{"https://w.example/ notakey", "verifier key"},
	} {
		u, v, err := Parse(c.in)
		if c.want == "" {
			if err != nil || v.Name() != "w.example/w" || !strings.HasPrefix(u, "http") {
				t.Errorf("%q: %q %v %v", c.in, u, v, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.in, err, c.want)
		}
	}
}
