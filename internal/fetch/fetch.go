// Package fetch makes the bounded outbound GETs kura does (AMD's key
// distribution service, Intel's PCS, OIDC discovery and key sets): a deadline on the
// whole exchange and a cap on the body, so a slow or huge answer from the
// network cannot hold or flood the server.
package fetch

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Answer is a fetched response: its status and its whole body.
type Answer struct {
	Status int
	Text   string // e.g. "404 Not Found"
	Header http.Header
	Body   []byte
}

// Get fetches url with client (nil: http.DefaultClient) within timeout,
// reading at most limit bytes of body; a longer body is an error, not a
// truncation.
func Get(ctx context.Context, client *http.Client, url string, timeout time.Duration, limit int64) (Answer, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Answer{}, err
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return Answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return Answer{}, err
	}
	if int64(len(b)) > limit {
		return Answer{}, fmt.Errorf("GET %s: the answer exceeds %d bytes", url, limit)
	}
	return Answer{Status: resp.StatusCode, Text: resp.Status, Header: resp.Header, Body: b}, nil
}
