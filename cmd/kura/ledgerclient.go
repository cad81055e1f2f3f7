package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/kura-project/kura/internal/ledger"
	"github.com/kura-project/kura/internal/ledger/receipt"
)

// The ledger commands that speak the Azure Confidential Ledger API
// (append, list, receipt) and follow the log over its C2SP tiles (tail).

const aclAPIVersion = "api-version=2022-05-13"

// ledgerAppend writes one entry and prints its transaction id once the
// entry is durable.
func ledgerAppend(ctx context.Context, c *client, collection, file string, args []string, stdin io.Reader, stdout io.Writer) error {
	var contents []byte
	var err error
	switch {
	case file != "" && len(args) > 0:
		return &exitError{2, errors.New("ledger append takes --file or the contents as an argument, not both")}
	case file != "":
		contents, err = os.ReadFile(file)
	case len(args) == 1:
		contents = []byte(args[0])
	case len(args) > 1:
		return &exitError{2, errors.New("ledger append takes one argument (quote the contents)")}
	default:
		contents, err = io.ReadAll(io.LimitReader(stdin, 1<<20+1))
	}
	if err != nil {
		return err
	}
	body, err := json.Marshal(map[string]string{"contents": string(contents)})
	if err != nil {
		return err
	}
	path := "/app/transactions?" + aclAPIVersion
	if collection != "" {
		path += "&collectionId=" + url.QueryEscape(collection)
	}
	_, h, err := c.doHeader(ctx, http.MethodPost, path, "application/json", body)
	if err != nil {
		return err
	}
	id := h.Get("x-ms-ccf-transaction-id")
	if id == "" {
		return errors.New("the server answered without a transaction id")
	}
	fmt.Fprintln(stdout, id)
	return nil
}

// ledgerList prints a collection's entries, one JSON object a line,
// following nextLink.
func ledgerList(ctx context.Context, c *client, collection, from, to string, stdout io.Writer) error {
	q := url.Values{}
	if collection != "" {
		q.Set("collectionId", collection)
	}
	if from != "" {
		q.Set("fromTransactionId", from)
	}
	if to != "" {
		q.Set("toTransactionId", to)
	}
	path := "/app/transactions?" + aclAPIVersion
	if len(q) > 0 {
		path += "&" + q.Encode()
	}
	for pages := 0; path != ""; pages++ {
		if pages > 1<<20 {
			return errors.New("the server's nextLink never ends")
		}
		b, err := c.do(ctx, http.MethodGet, path, "", nil)
		if err != nil {
			return err
		}
		var page struct {
			Entries  []json.RawMessage `json:"entries"`
			NextLink string            `json:"nextLink"`
		}
		if err := json.Unmarshal(b, &page); err != nil {
			return fmt.Errorf("the server's answer: %w", err)
		}
		for _, e := range page.Entries {
			var buf bytes.Buffer
			if err := json.Compact(&buf, e); err != nil {
				return err
			}
			fmt.Fprintln(stdout, buf.String())
		}
		path = ""
		if page.NextLink != "" {
			u, err := url.Parse(page.NextLink)
			if err != nil || (u.Host != "" && !strings.HasPrefix(page.NextLink, c.url)) {
				return fmt.Errorf("the server's nextLink %q is not on %s", page.NextLink, c.url)
			}
			path = u.RequestURI()
		}
	}
	return nil
}

// ledgerReceipt prints an entry's receipt in ACL's shape.
func ledgerReceipt(ctx context.Context, c *client, id string, stdout io.Writer) error {
	if _, err := ledger.ParseTxID(id); err != nil {
		return &exitError{2, fmt.Errorf("--id %q: %w", id, err)}
	}
	b, err := c.do(ctx, http.MethodGet, "/app/transactions/"+url.PathEscape(id)+"/receipt?"+aclAPIVersion, "", nil)
	if err != nil {
		return err
	}
	_, err = stdout.Write(append(bytes.TrimSpace(b), '\n'))
	return err
}

// ledgerTail follows the log: each new checkpoint is verified with the
// log's key and proved consistent with the last one seen, from the public
// C2SP tiles (tlog.TileHashReader checks every tile against the new
// checkpoint); with a token that may read entry bundles, each new entry's
// leaf is printed too. A checkpoint that does not verify, or does not
// extend the last, ends it with an error.
func ledgerTail(ctx context.Context, c *client, keyFile string, every time.Duration, count int, stdout io.Writer) error {
	if every < 10*time.Millisecond {
		return &exitError{2, fmt.Errorf("--interval %s: at least 10ms", every)}
	}
	var vkey []byte
	var err error
	if keyFile != "" {
		vkey, err = os.ReadFile(keyFile)
	} else {
		vkey, err = c.do(ctx, http.MethodGet, "/kura/v1/ledger/key", "", nil)
		fmt.Fprintln(stdout, "# the log's key, fetched from the server (trusted on first use; pass --key-file to pin it)")
	}
	if err != nil {
		return err
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(vkey)))
	if err != nil {
		return &exitError{2, fmt.Errorf("verifier key: %w", err)}
	}
	tiles := &tileClient{ctx: ctx, c: c}
	var last *tlog.Tree
	entries := true // until the server refuses them
	for seen := 0; count == 0 || seen < count; {
		signed, err := c.do(ctx, http.MethodGet, "/kura/v1/ledger/checkpoint", "", nil)
		if err != nil {
			return err
		}
		t, err := receipt.OpenCheckpoint(signed, v.Name(), v)
		if err != nil {
			return fmt.Errorf("the server's checkpoint: %w", err)
		}
		if last == nil || t.N > last.N {
			hr := tlog.TileHashReader(t, tiles)
			if last != nil && last.N > 0 {
				p, err := tlog.ProveTree(t.N, last.N, hr)
				if err == nil {
					err = tlog.CheckTree(p, t.N, t.Hash, last.N, last.Hash)
				}
				if err != nil {
					return fmt.Errorf("the checkpoint of %d entries is not consistent with the one of %d seen before: %w", t.N, last.N, err)
				}
			}
			from := int64(0)
			if last != nil {
				from = last.N
			}
			fmt.Fprintf(stdout, "checkpoint %d %s (consistent with %d)\n", t.N, t.Hash, from)
			if entries {
				if entries, err = printLeaves(ctx, tiles, hr, from, t.N, stdout); err != nil {
					return err
				}
			}
			last = &t
			seen++
			if count > 0 && seen >= count {
				break
			}
		} else if t.N < last.N || (t.N == last.N && t.Hash != last.Hash) {
			return fmt.Errorf("the server's checkpoint of %d entries does not extend the one of %d seen before", t.N, last.N)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
	return nil
}

// printLeaves prints the leaves from..to from the entry bundles, each
// checked against the tree's leaf hash; false when the token may not read
// entry bundles (then only checkpoints are followed).
func printLeaves(ctx context.Context, tc *tileClient, hr tlog.HashReader, from, to int64, stdout io.Writer) (bool, error) {
	for n := from / 256; n*256 < to; n++ {
		w := min(256, to-n*256)
		data, err := tc.fetch(fmt.Sprintf("entries/%s", strings.TrimPrefix(tlog.Tile{H: 8, L: -1, N: n, W: int(w)}.Path(), "tile/8/data/")))
		var he *httpError
		if errors.As(err, &he) && (he.status == http.StatusUnauthorized || he.status == http.StatusForbidden) {
			fmt.Fprintln(stdout, "# entries are for auditors: following checkpoints only")
			return false, nil
		}
		if err != nil {
			return false, err
		}
		for i := int64(0); i < w; i++ {
			if len(data) < 2 || len(data) < 2+int(binary.BigEndian.Uint16(data)) {
				return false, fmt.Errorf("entry bundle %d ends early", n)
			}
			k := int(binary.BigEndian.Uint16(data))
			leaf := data[2 : 2+k]
			data = data[2+k:]
			seq := n*256 + i
			if seq < from {
				continue
			}
			hs, err := hr.ReadHashes([]int64{tlog.StoredHashIndex(0, seq)})
			if err != nil {
				return false, err
			}
			if tlog.RecordHash(leaf) != hs[0] {
				return false, fmt.Errorf("entry %d of the bundle is not the tree's leaf %d", seq, seq)
			}
			l, err := receipt.ParseLeaf(leaf)
			if err != nil || int64(l.Seq) != seq {
				return false, fmt.Errorf("entry %d: %v", seq, err)
			}
			b, _ := json.Marshal(map[string]any{"seq": l.Seq, "transactionId": ledger.TxID(seq), "collection": l.Collection,
				"time": l.Time.Format(time.RFC3339Nano), "commitment": fmt.Sprintf("%x", l.Commitment)})
			fmt.Fprintln(stdout, string(b))
		}
	}
	return true, nil
}

// tileClient reads the log's C2SP tiles for tlog.TileHashReader.
type tileClient struct {
	ctx context.Context
	c   *client
}

func (t *tileClient) Height() int { return 8 }

func (t *tileClient) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, tl := range tiles {
		b, err := t.fetch(strings.TrimPrefix(tl.Path(), "tile/8/"))
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

func (t *tileClient) SaveTiles([]tlog.Tile, [][]byte) {}

func (t *tileClient) fetch(rest string) ([]byte, error) {
	return t.c.do(t.ctx, http.MethodGet, "/kura/v1/ledger/tile/"+rest, "", nil)
}
