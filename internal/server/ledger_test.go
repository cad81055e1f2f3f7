package server

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/ledger"
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
	rec, receipt, err := svc.Ledger.Receipt(ctx, after.N-1)
	if err != nil {
		t.Fatal(err)
	}
	v := svc.LedgerKey.Verifier
	leaf, tree, err := ledger.VerifyReceipt(receipt, r.srv.app.LedgerOrigin(), v, rec.Contents, rec.Salt)
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
