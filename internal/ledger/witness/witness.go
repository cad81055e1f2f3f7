// Package witness is the client side of C2SP tlog-witness: it asks a
// witness to cosign a checkpoint of the log (add-checkpoint) and says
// precisely why a witness refused.
package witness

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/transparency-dev/formats/note"
	sumnote "golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// maxAnswer bounds a witness's answer: signature lines, a size.
const maxAnswer = 64 << 10

// maxProof is the protocol's bound on consistency proof lines.
const maxProof = 63

// Client asks one witness at its submission prefix.
type Client struct {
	URL  string       // submission prefix, e.g. https://witness.example/ (add-checkpoint is appended)
	HTTP *http.Client // nil: a client with a 10-second timeout
}

// ConflictError is a witness's 409 with its size of the log: it last
// cosigned a checkpoint of Size entries, not of the old size sent.
type ConflictError struct{ Size int64 }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("witness: the witness holds the log at size %d", e.Size)
}

// WitnessSize is the size the witness holds (for the ledger, which knows
// this error by that method only).
func (e *ConflictError) WitnessSize() int64 { return e.Size }

// AddCheckpoint sends checkpoint (signed by the log) with a consistency
// proof from old, the size the witness last cosigned, and returns the
// witness's answer: note signature lines, unverified (the caller checks
// them with the witness's key).
func (c *Client) AddCheckpoint(ctx context.Context, old int64, proof tlog.TreeProof, checkpoint []byte) ([]byte, error) {
	if len(proof) > maxProof {
		return nil, fmt.Errorf("witness: a consistency proof of %d hashes is over the protocol's %d", len(proof), maxProof)
	}
	var body bytes.Buffer
	fmt.Fprintf(&body, "old %d\n", old)
	for _, h := range proof {
		body.WriteString(base64.StdEncoding.EncodeToString(h[:]))
		body.WriteByte('\n')
	}
	body.WriteByte('\n')
	body.Write(checkpoint)
	u, err := url.JoinPath(c.URL, "add-checkpoint")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.URL, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, &body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.URL, err)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return nil, fmt.Errorf("%s: reading the answer: %w", u, err)
	}
	if len(answer) > maxAnswer {
		return nil, fmt.Errorf("%s: the answer is over %d bytes", u, maxAnswer)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return answer, nil
	case http.StatusConflict:
		if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "text/x.tlog.size" {
			n, err := strconv.ParseInt(strings.TrimSuffix(string(answer), "\n"), 10, 64)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%s: a 409 whose size %q is not a size", u, answer)
			}
			return nil, &ConflictError{Size: n}
		}
		// The sizes agree and the roots do not: the witness holds another
		// tree of this size.
		return nil, fmt.Errorf("%s: 409: the witness holds another tree of size %d (a split view or a rewritten log)%s", u, old, snippet(answer))
	case http.StatusNotFound:
		return nil, fmt.Errorf("%s: 404: the witness does not know this log's origin (add the log to the witness)%s", u, snippet(answer))
	case http.StatusForbidden:
		// litewitness answers 403 for an unknown origin too.
		return nil, fmt.Errorf("%s: 403: the witness does not know this log or does not trust the key that signed the checkpoint%s", u, snippet(answer))
	case http.StatusUnprocessableEntity:
		if old == checkpointSize(checkpoint) {
			// litewitness answers 422, not 409, for another root at its size.
			return nil, fmt.Errorf("%s: 422: the witness holds another tree of size %d (a split view or a rewritten log)%s", u, old, snippet(answer))
		}
		return nil, fmt.Errorf("%s: 422: the witness refused the consistency proof from %d%s", u, old, snippet(answer))
	default:
		return nil, fmt.Errorf("%s: %s%s", u, resp.Status, snippet(answer))
	}
}

// snippet is the start of a witness's error text, for the log.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return ""
	}
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "…"
	}
	return ": " + strconv.Quote(s)
}

// checkpointSize is the tree size a checkpoint states (-1: none).
func checkpointSize(cp []byte) int64 {
	lines := strings.SplitN(string(cp), "\n", 3)
	if len(lines) < 3 {
		return -1
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// Parse reads a witness as configured: its submission URL and its
// cosignature verifier key (vkey form, Ed25519 or ML-DSA-44 cosignature,
// or a plain Ed25519 key, which cosigns as cosignature/v1), separated by
// a space.
func Parse(s string) (string, sumnote.Verifier, error) {
	u, key, ok := strings.Cut(strings.TrimSpace(s), " ")
	key = strings.TrimSpace(key)
	if !ok || key == "" {
		return "", nil, fmt.Errorf("witness %q: want the witness's URL and its verifier key, separated by a space", s)
	}
	pu, err := url.Parse(u)
	if err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
		return "", nil, fmt.Errorf("witness %q: %q is not an http(s) URL", s, u)
	}
	v, err := note.NewVerifierForCosignatureV1(key)
	if err != nil {
		return "", nil, fmt.Errorf("witness %q: verifier key: %w", s, err)
	}
	return u, v, nil
}
