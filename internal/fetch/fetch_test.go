package fetch

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestGet(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte("12345"))
		case "/missing":
			http.NotFound(w, r)
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	a, err := Get(ctx, nil, srv.URL+"/ok", time.Second, 5)
	if err != nil || a.Status != 200 || string(a.Body) != "12345" {
		t.Errorf("ok: %+v %v", a, err)
	}
	if _, err := Get(ctx, nil, srv.URL+"/ok", time.Second, 4); err == nil || !strings.Contains(err.Error(), "exceeds 4 bytes") {
		t.Errorf("oversized answer: %v", err)
	}
	if a, err := Get(ctx, nil, srv.URL+"/missing", time.Second, 100); err != nil || a.Status != 404 || a.Text != "404 Not Found" {
		t.Errorf("missing: %+v %v", a, err)
	}
	start := time.Now()
	if _, err := Get(ctx, nil, srv.URL+"/slow", 100*time.Millisecond, 100); err == nil {
		t.Error("slow answer within the timeout")
	}
	if time.Since(start) > 3*time.Second {
		t.Error("the timeout was not applied")
	}
}
