package server

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	apiledger "github.com/kura-project/kura/internal/api/ledger"
	"github.com/kura-project/kura/internal/ledger/receipt"
)

// TestLedgerRecordsChanges: an audited change (here a key created and a
// policy set) is an entry of the ledger whose receipt verifies offline with
// the ledger's verifier key; when the ledger cannot be written, the change
// is refused (503) and nothing changes.
func TestLedgerRecordsChanges(t *testing.T) {
	r := newRig(t, time.Now(), issuerOpt)
	ctx := context.Background()
	svc := r.srv.svc.Load()
	before, err := svc.Ledger.Tree(ctx)
	if err != nil {
		t.Fatal(err)
	}
	code, resp, _ := r.do("POST", "/keys/k/create?api-version=2025-07-01", []byte(`{"kty":"EC","crv":"P-256"}`), r.admin_()...)
	if code != 200 {
		t.Fatalf("create: %d %s", code, resp)
	}
	after, _ := svc.Ledger.Tree(ctx)
	if after.N != before.N+1 {
		t.Fatalf("the ledger grew by %d for one key created", after.N-before.N)
	}
	rec, rcpt, err := svc.Ledger.Receipt(ctx, after.N-1)
	if err != nil {
		t.Fatal(err)
	}
	v := svc.LedgerKey.Verifier
	leaf, tree, err := receipt.Verify(rcpt, svc.LedgerKey.Verifier.Name(), v, rec.Contents, rec.Salt)
	if err != nil || tree.N != after.N || leaf.Collection != "kura-audit" {
		t.Fatalf("receipt: %v (%d, %q)", err, tree.N, leaf.Collection)
	}
	var entry struct {
		Action, Object, Actor string
	}
	if err := json.Unmarshal(rec.Contents, &entry); err != nil || entry.Action != "key.create" || !strings.HasPrefix(entry.Object, "keys/k/") || entry.Actor != "admin" {
		t.Errorf("the ledger entry: %s (%v)", rec.Contents, err)
	}

	// The ledger cannot be written: the change is refused and not made.
	db, err := sql.Open("sqlite", filepath.Join(r.dir, "kura.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER no_ledger BEFORE INSERT ON ledger_entries BEGIN SELECT RAISE(ABORT, 'ledger down'); END`); err != nil {
		t.Fatal(err)
	}
	code, resp, _ = r.do("POST", "/keys/k2/create?api-version=2025-07-01", []byte(`{"kty":"EC","crv":"P-256"}`), r.admin_()...)
	if code != 503 {
		t.Fatalf("create with the ledger down: %d %s", code, resp)
	}
	if code, _, _ := r.do("GET", "/keys/k2?api-version=2025-07-01", nil, r.admin_()...); code != 404 {
		t.Errorf("the key was created without its ledger entry: %d", code)
	}
}

// TestLedgerRoutes: the verifier key and the checkpoint are public; an
// entry with its receipt, and consistency proofs, are for auditors and
// administrators; what they answer verifies offline with the key alone.
func TestLedgerRoutes(t *testing.T) {
	r := newRig(t, time.Now(), issuerOpt)
	code, keyText, _ := r.do("GET", "/kura/v1/ledger/key", nil)
	if code != 200 {
		t.Fatalf("key: %d", code)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(keyText)))
	if err != nil {
		t.Fatalf("the published key: %v", err)
	}
	origin := v.Name()
	code, older, _ := r.do("GET", "/kura/v1/ledger/checkpoint", nil)
	if code != 200 {
		t.Fatalf("checkpoint: %d %s", code, older)
	}
	oldTree, err := receipt.OpenCheckpoint(older, origin, v)
	if err != nil {
		t.Fatal(err)
	}
	r.do("POST", "/keys/k/create?api-version=2025-07-01", []byte(`{"kty":"EC","crv":"P-256"}`), r.admin_()...)
	// The public checkpoint is at most a second old: polling it makes no
	// write of its own more often.
	if _, same, _ := r.do("GET", "/kura/v1/ledger/checkpoint", nil); string(same) != string(older) {
		t.Error("a public poll signed a new checkpoint within a second of the last")
	}
	r.clk.t = r.clk.t.Add(2 * time.Second)
	_, newer, _ := r.do("GET", "/kura/v1/ledger/checkpoint", nil)
	newTree, err := receipt.OpenCheckpoint(newer, origin, v)
	if err != nil || newTree.N != oldTree.N+1 {
		t.Fatalf("checkpoint after a change: %d → %d, %v", oldTree.N, newTree.N, err)
	}
	path := fmt.Sprintf("/kura/v1/ledger/entries/%d", newTree.N-1)
	if code, _, _ := r.do("GET", path, nil); code != 401 {
		t.Errorf("an entry without a token: %d", code)
	}
	user := r.principalToken(t, "user", "crypto-user")
	if code, _, _ := r.do("GET", path, nil, "Authorization", "Bearer "+user); code != 403 {
		t.Errorf("an entry for a crypto user: %d", code)
	}
	auditor := r.principalToken(t, "aud", "auditor")
	code, body, _ := r.do("GET", path, nil, "Authorization", "Bearer "+auditor)
	if code != 200 {
		t.Fatalf("entry: %d %s", code, body)
	}
	var e apiledger.Entry
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatal(err)
	}
	contents, _ := base64.StdEncoding.DecodeString(e.Contents)
	saltB, _ := hex.DecodeString(e.Salt)
	var salt [32]byte
	copy(salt[:], saltB)
	if _, _, err := receipt.Verify([]byte(e.Receipt), origin, v, contents, salt); err != nil || !strings.Contains(string(contents), "key.create") {
		t.Errorf("the entry's rcpt: %v (%s)", err, contents)
	}
	code, proofText, _ := r.do("GET", fmt.Sprintf("/kura/v1/ledger/consistency?from=%d&to=%d", oldTree.N, newTree.N), nil, "Authorization", "Bearer "+auditor)
	if code != 200 {
		t.Fatalf("consistency: %d %s", code, proofText)
	}
	var p tlog.TreeProof
	for _, line := range strings.Fields(string(proofText)) {
		b, _ := base64.StdEncoding.DecodeString(line)
		var h tlog.Hash
		copy(h[:], b)
		p = append(p, h)
	}
	if err := receipt.VerifyConsistency(older, newer, p, origin, v); err != nil {
		t.Errorf("consistency proof: %v", err)
	}
	for _, bad := range []string{"/kura/v1/ledger/entries/x", "/kura/v1/ledger/entries/999999", "/kura/v1/ledger/consistency?from=0&to=1", "/kura/v1/ledger/consistency?from=a"} {
		code, _, _ := r.do("GET", bad, nil, "Authorization", "Bearer "+auditor)
		if code != 400 && code != 404 {
			t.Errorf("%s: %d", bad, code)
		}
	}
}

// TestCollateralRoute: POST /kura/v1/collateral refuses what is not
// collateral with a 400 naming why, strangers with 401/403, and changes
// nothing for either.
func TestCollateralRoute(t *testing.T) {
	r := newRig(t, time.Now())
	user := r.principalToken(t, "user", "crypto-user")
	for _, c := range []struct {
		body []byte
		hdr  []string
		code int
		msg  string
	}{
		{nil, r.admin_(), 400, "body is empty"},
		{[]byte("not collateral"), r.admin_(), 400, "neither an X.509 certificate nor a CRL"},
		{[]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), r.admin_(), 400, ""},
		{[]byte("x"), nil, 401, ""},
		{[]byte("x"), []string{"Authorization", "Bearer " + user}, 403, ""},
	} {
		code, resp, _ := r.do("POST", "/kura/v1/collateral", c.body, c.hdr...)
		if code != c.code || !strings.Contains(string(resp), c.msg) {
			t.Errorf("%.20q: %d %s, want %d %q", c.body, code, resp, c.code, c.msg)
		}
	}
	if exp, err := r.srv.app.Store.CollateralExpiry(context.Background()); err != nil || len(exp) != 0 {
		t.Errorf("refused imports stored collateral: %v %v", exp, err)
	}
}

// httpTiles reads the log's C2SP tiles over the rig's HTTP, as a log
// follower would (x/mod/sumdb/tlog's paths less the height).
type httpTiles struct {
	r   *rig
	hdr []string
}

func (h httpTiles) Height() int { return 8 }

func (h httpTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	var out [][]byte
	for _, t := range tiles {
		p := "/kura/v1/ledger/tile/" + strings.TrimPrefix(t.Path(), "tile/8/")
		code, body, hdr := h.r.do("GET", p, nil, h.hdr...)
		if code != 200 {
			return nil, fmt.Errorf("%s: %d %s", p, code, body)
		}
		if cc := hdr.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
			return nil, fmt.Errorf("%s: Cache-Control %q", p, cc)
		}
		out = append(out, body)
	}
	return out, nil
}

func (httpTiles) SaveTiles([]tlog.Tile, [][]byte) {}

// TestLedgerTiles: with nothing but the public key, checkpoint and hash
// tiles, a follower proves every leaf hash of the log; entry bundles are
// for auditors and their leaves are those hashes; malformed and
// past-the-end tile paths are 404s.
func TestLedgerTiles(t *testing.T) {
	r := newRig(t, time.Now(), issuerOpt)
	for i := range 5 {
		r.do("POST", fmt.Sprintf("/keys/k%d/create?api-version=2025-07-01", i), []byte(`{"kty":"EC","crv":"P-256"}`), r.admin_()...)
	}
	_, keyText, _ := r.do("GET", "/kura/v1/ledger/key", nil)
	v, err := note.NewVerifier(strings.TrimSpace(string(keyText)))
	if err != nil {
		t.Fatal(err)
	}
	r.clk.t = r.clk.t.Add(2 * time.Second)
	_, cp, _ := r.do("GET", "/kura/v1/ledger/checkpoint", nil)
	tree, err := receipt.OpenCheckpoint(cp, v.Name(), v)
	if err != nil || tree.N < 5 {
		t.Fatalf("checkpoint: %v (%d entries)", err, tree.N)
	}
	hr := tlog.TileHashReader(tree, httpTiles{r: r})
	var idx []int64
	for i := range tree.N {
		idx = append(idx, tlog.StoredHashIndex(0, i))
	}
	leaves, err := hr.ReadHashes(idx)
	if err != nil {
		t.Fatalf("leaf hashes from the public tiles: %v", err)
	}
	bundle := fmt.Sprintf("/kura/v1/ledger/tile/entries/000.p/%d", tree.N)
	if code, _, _ := r.do("GET", bundle, nil); code != 401 {
		t.Errorf("an entry bundle without a token: %d", code)
	}
	auditor := r.principalToken(t, "aud", "auditor")
	code, b, _ := r.do("GET", bundle, nil, "Authorization", "Bearer "+auditor)
	if code != 200 {
		t.Fatalf("entry bundle: %d %s", code, b)
	}
	for i := range tree.N {
		k := int(b[0])<<8 | int(b[1])
		if tlog.RecordHash(b[2:2+k]) != leaves[i] {
			t.Fatalf("entry %d of the bundle is not the leaf the tiles prove", i)
		}
		b = b[2+k:]
	}
	if len(b) != 0 {
		t.Errorf("%d bytes after the last entry", len(b))
	}
	for _, bad := range []string{"0/000", fmt.Sprintf("0/000.p/%d", tree.N+5), "1/000.p/1", "0/1", "8/0/000", "data/000", "entries/x/1", "0/000.p/x"} {
		if code, body, _ := r.do("GET", "/kura/v1/ledger/tile/"+bad, nil, "Authorization", "Bearer "+auditor); code != 404 {
			t.Errorf("tile/%s: %d %s", bad, code, body)
		}
	}
}
