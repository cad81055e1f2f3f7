package ledger_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/ledger"
	"github.com/kura-project/kura/internal/ledger/receipt"
	"github.com/kura-project/kura/internal/seal"
	"github.com/kura-project/kura/internal/store"
	"github.com/kura-project/kura/internal/store/sqlite"
)

// TestOnSQLite: the log over the SQLite engine, with its key sealed under
// a root: concurrent appends (sharing commits) get contiguous sequence
// numbers, every receipt verifies offline, and the key survives a reopen
// (and is refused for another origin).
func TestOnSQLite(t *testing.T) {
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "kura.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	root, err := seal.OpenSoftwareRoot(filepath.Join(dir, "root"), bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	sealer := seal.New(root)
	ctx := context.Background()
	const origin = "kura.test/ledger"
	key, err := ledger.OpenKey(ctx, st, sealer, origin, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.New(st, ledger.Config{Origin: origin, Signer: key.Signer, Verifier: key.Verifier,
		Tx: func(ctx context.Context, f func(ledger.Store) error) error {
			return st.WithTx(ctx, func(tx store.Store) error { return f(tx) })
		}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := l.Append(ctx, "c", []byte(fmt.Sprint("entry ", i))); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	tree, err := l.Tree(ctx)
	if err != nil || tree.N != 50 {
		t.Fatalf("tree: %d %v", tree.N, err)
	}
	for seq := range int64(50) {
		rec, rcpt, err := l.Receipt(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := receipt.Verify(rcpt, origin, key.Verifier, rec.Contents, rec.Salt); err != nil {
			t.Fatalf("entry %d: %v", seq, err)
		}
	}
	again, err := ledger.OpenKey(ctx, st, sealer, origin, time.Now())
	if err != nil || again.VerifierKey != key.VerifierKey {
		t.Errorf("the key was not kept: %v", err)
	}
	if _, err := ledger.OpenKey(ctx, st, sealer, "other.test/ledger", time.Now()); err == nil {
		t.Error("the ledger's key was accepted for another origin")
	}
}

// TestKeyNotRemadeForALedger: a ledger whose key row vanished gets no new
// key (it would sign whatever the database now says).
func TestKeyNotRemadeForALedger(t *testing.T) {
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "kura.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	root, _ := seal.OpenSoftwareRoot(filepath.Join(dir, "root"), bytes.Repeat([]byte{9}, 32))
	sealer := seal.New(root)
	ctx := context.Background()
	key, err := ledger.OpenKey(ctx, st, sealer, "kura.test/ledger", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	l, _ := ledger.New(st, ledger.Config{Origin: "kura.test/ledger", Signer: key.Signer, Verifier: key.Verifier,
		Tx: func(ctx context.Context, f func(ledger.Store) error) error {
			return st.WithTx(ctx, func(tx store.Store) error { return f(tx) })
		}})
	l.Append(ctx, "c", []byte("x"))
	db, err := sql.Open("sqlite", filepath.Join(dir, "kura.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`DELETE FROM signing_keys WHERE purpose = 'ledger'`); err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.OpenKey(ctx, st, sealer, "kura.test/ledger", time.Now()); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("a new key for a ledger with entries: %v", err)
	}
	if o, ok, err := ledger.StoredOrigin(ctx, st); err != nil || ok {
		t.Errorf("stored origin after the key was deleted: %q %v %v", o, ok, err)
	}
}

// TestConcurrentFirstKey: processes starting at once on an empty ledger
// settle on one key.
func TestConcurrentFirstKey(t *testing.T) {
	dir := t.TempDir()
	root, _ := seal.OpenSoftwareRoot(filepath.Join(dir, "root"), bytes.Repeat([]byte{9}, 32))
	sealer := seal.New(root)
	var wg sync.WaitGroup
	keys := make([]string, 4)
	for i := range keys {
		st, err := sqlite.Open(filepath.Join(dir, "kura.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := ledger.OpenKey(context.Background(), st, sealer, "kura.test/ledger", time.Now())
			if err != nil {
				t.Error(err)
				return
			}
			keys[i] = k.VerifierKey
		}()
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if k != keys[0] {
			t.Fatalf("processes opened different ledger keys: %v", keys)
		}
	}
}
