package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/store"
)

var errBoom = errors.New("boom")

var txT0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func testPolicy(typ string) store.Policy {
	return store.Policy{Type: typ, Text: "version=1.0;", JWS: "x..", Updated: txT0, MAC: []byte{1}}
}

// txWrites makes one write of each kind through tx.
func txWrites(t *testing.T, tx store.Store, nonce string) error {
	ctx := context.Background()
	if err := tx.PutPolicy(ctx, testPolicy("SevSnpVm")); err != nil {
		return err
	}
	if err := tx.UseNonce(ctx, nonce, txT0, txT0.Add(time.Hour)); err != nil {
		return err
	}
	if err := tx.CreateKeyVersion(ctx, kv("k1", "v1", txT0), true); err != nil {
		return err
	}
	return tx.PutSigningKey(ctx, store.SigningKey{Purpose: "token", ID: "s1", Alg: "RS256", CertDER: []byte{1}, Sealed: []byte{2}, Created: txT0})
}

// wantNoWrites checks that none of txWrites is in s, and that the nonce
// can be spent (again).
func wantNoWrites(t *testing.T, s store.Store, nonce string) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.GetPolicy(ctx, "SevSnpVm"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("policy after rollback: %v, want ErrNotFound", err)
	}
	if _, err := s.GetKeyVersion(ctx, "k1", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("key after rollback: %v, want ErrNotFound", err)
	}
	if ks, err := s.SigningKeys(ctx); err != nil || len(ks) != 0 {
		t.Errorf("signing keys after rollback: %v %v", ks, err)
	}
	if err := s.UseNonce(ctx, nonce, txT0, txT0.Add(time.Hour)); err != nil {
		t.Errorf("nonce spent in a rolled-back transaction: %v, want it spendable", err)
	}
}

func txCommit(t *testing.T, s store.Store) {
	ctx := context.Background()
	var kept store.Store
	err := s.WithTx(ctx, func(tx store.Store) error {
		kept = tx
		if err := txWrites(t, tx, "n1"); err != nil {
			return err
		}
		// The transaction reads its own writes.
		if _, err := tx.GetPolicy(ctx, "SevSnpVm"); err != nil {
			return fmt.Errorf("read own policy: %w", err)
		}
		if v, err := tx.GetKeyVersion(ctx, "k1", ""); err != nil || v.Version != "v1" {
			return fmt.Errorf("read own key: %v %w", v.Version, err)
		}
		// A nested WithTx joins the transaction.
		if err := tx.WithTx(ctx, func(tx2 store.Store) error {
			return tx2.PutPolicy(ctx, testPolicy("TdxVm"))
		}); err != nil {
			return fmt.Errorf("nested: %w", err)
		}
		if err := tx.Close(); !errors.Is(err, store.ErrTxView) {
			t.Errorf("Close on a view: %v, want ErrTxView", err)
		}
		if err := tx.Ping(ctx); !errors.Is(err, store.ErrTxView) {
			t.Errorf("Ping on a view: %v, want ErrTxView", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"SevSnpVm", "TdxVm"} {
		if _, err := s.GetPolicy(ctx, typ); err != nil {
			t.Errorf("policy %s after commit: %v", typ, err)
		}
	}
	if v, err := s.GetKeyVersion(ctx, "k1", ""); err != nil || v.Version != "v1" {
		t.Errorf("key after commit: %+v %v", v, err)
	}
	if ks, err := s.SigningKeys(ctx); err != nil || len(ks) != 1 {
		t.Errorf("signing keys after commit: %v %v", ks, err)
	}
	if err := s.UseNonce(ctx, "n1", txT0, txT0.Add(time.Hour)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("nonce spent in a committed transaction: %v, want ErrConflict", err)
	}
	if _, err := kept.GetPolicy(ctx, "SevSnpVm"); err == nil {
		t.Error("a view still works after its transaction ended")
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("store after Close on a view: %v", err)
	}
}

func txRollback(t *testing.T, s store.Store) {
	ctx := context.Background()
	// An error after several writes undoes them all.
	err := s.WithTx(ctx, func(tx store.Store) error {
		if err := txWrites(t, tx, "n1"); err != nil {
			t.Errorf("writes: %v", err)
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Errorf("WithTx = %v, want f's error", err)
	}
	wantNoWrites(t, s, "n1")

	// An error from a nested WithTx that the outer f passes on.
	err = s.WithTx(ctx, func(tx store.Store) error {
		return tx.WithTx(ctx, func(tx store.Store) error {
			if err := txWrites(t, tx, "n2"); err != nil {
				t.Errorf("writes: %v", err)
			}
			return errBoom
		})
	})
	if !errors.Is(err, errBoom) {
		t.Errorf("nested WithTx = %v, want f's error", err)
	}
	wantNoWrites(t, s, "n2")

	// A panic rolls back and goes on.
	func() {
		defer func() {
			if r := recover(); r != errBoom {
				t.Errorf("recovered %v, want the panic of f", r)
			}
		}()
		s.WithTx(ctx, func(tx store.Store) error {
			if err := txWrites(t, tx, "n3"); err != nil {
				t.Errorf("writes: %v", err)
			}
			panic(errBoom)
		})
	}()
	wantNoWrites(t, s, "n3")

	// The store works after all that.
	if err := s.WithTx(ctx, func(tx store.Store) error { return txWrites(t, tx, "n4") }); err != nil {
		t.Fatalf("commit after rollbacks: %v", err)
	}
	if _, err := s.GetKeyVersion(ctx, "k1", ""); err != nil {
		t.Errorf("key after commit: %v", err)
	}
}

// txFailedCall: a call that fails inside WithTx leaves the transaction as
// it was, and f may go on and commit.
func txFailedCall(t *testing.T, s store.Store) {
	ctx := context.Background()
	exp := txT0.Add(time.Hour)
	err := s.WithTx(ctx, func(tx store.Store) error {
		if err := tx.UseNonce(ctx, "n1", txT0, exp); err != nil {
			return err
		}
		if err := tx.UseNonce(ctx, "n1", txT0, exp); !errors.Is(err, store.ErrConflict) {
			t.Errorf("reused nonce in a transaction: %v, want ErrConflict", err)
		}
		if err := tx.CreateKeyVersion(ctx, kv("missing", "v1", txT0), false); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("version of a missing key: %v, want ErrNotFound", err)
		}
		// Fails after writing part of r1.
		if err := tx.RestoreKey(ctx, []store.KeyVersion{kv("r1", "a", txT0), kv("r2", "b", txT0)}, nil); err == nil {
			t.Error("restore of versions of different keys accepted")
		}
		return tx.CreateKeyVersion(ctx, kv("k1", "v1", txT0), true)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetKeyVersion(ctx, "k1", ""); err != nil {
		t.Errorf("key after commit: %v", err)
	}
	for _, name := range []string{"r1", "r2", "missing"} {
		if _, err := s.GetKeyVersion(ctx, name, ""); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("key %s left by a failed call: %v, want ErrNotFound", name, err)
		}
	}
	if err := s.UseNonce(ctx, "n1", txT0, exp); !errors.Is(err, store.ErrConflict) {
		t.Errorf("nonce after commit: %v, want ErrConflict", err)
	}
}

func twoHandles(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	exp := txT0.Add(time.Hour)
	if err := a.PutPolicy(ctx, testPolicy("SevSnpVm")); err != nil {
		t.Fatal(err)
	}
	if p, err := b.GetPolicy(ctx, "SevSnpVm"); err != nil || p.Text != "version=1.0;" {
		t.Errorf("policy through the other handle: %+v %v", p, err)
	}
	if err := a.CreateKeyVersion(ctx, kv("k1", "v1", txT0), true); err != nil {
		t.Fatal(err)
	}
	v, err := b.GetKeyVersion(ctx, "k1", "v1")
	if err != nil {
		t.Fatalf("key through the other handle: %v", err)
	}
	prev := v.Updated
	v.Enabled, v.Updated, v.MAC = false, prev.Add(time.Second), []byte{7}
	if err := b.UpdateKeyVersion(ctx, v, prev); err != nil {
		t.Fatal(err)
	}
	if got, err := a.GetKeyVersion(ctx, "k1", "v1"); err != nil || got.Enabled || !bytes.Equal(got.MAC, []byte{7}) {
		t.Errorf("update through the other handle: %+v %v", got, err)
	}
	if err := a.UseNonce(ctx, "n1", txT0, exp); err != nil {
		t.Fatal(err)
	}
	if err := b.UseNonce(ctx, "n1", txT0, exp); !errors.Is(err, store.ErrConflict) {
		t.Errorf("nonce reused through the other handle: %v, want ErrConflict", err)
	}

	// The other handle sees a transaction's writes once it commits, and
	// never those of one that rolls back.
	err = a.WithTx(ctx, func(tx store.Store) error {
		if err := tx.PutPolicy(ctx, testPolicy("TdxVm")); err != nil {
			return err
		}
		if _, err := b.GetPolicy(ctx, "TdxVm"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("uncommitted write seen through the other handle: %v", err)
		}
		return tx.UseNonce(ctx, "n2", txT0, exp)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetPolicy(ctx, "TdxVm"); err != nil {
		t.Errorf("committed write through the other handle: %v", err)
	}
	if err := b.UseNonce(ctx, "n2", txT0, exp); !errors.Is(err, store.ErrConflict) {
		t.Errorf("committed nonce through the other handle: %v, want ErrConflict", err)
	}
	err = a.WithTx(ctx, func(tx store.Store) error {
		if err := tx.PutPolicy(ctx, testPolicy("SgxEnclave")); err != nil {
			return err
		}
		if err := tx.UseNonce(ctx, "n3", txT0, exp); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("WithTx = %v", err)
	}
	if _, err := b.GetPolicy(ctx, "SgxEnclave"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("rolled-back write through the other handle: %v", err)
	}
	if err := b.UseNonce(ctx, "n3", txT0, exp); err != nil {
		t.Errorf("rolled-back nonce through the other handle: %v, want it spendable", err)
	}
}

// race runs f(i, handle) for i in [0, n) at once, alternating handles,
// and returns the errors.
func race(n int, handles []store.Store, f func(i int, s store.Store) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = f(i, handles[i%len(handles)])
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// oneWins checks that exactly one of errs is nil and, if want is not nil,
// that the others are want.
func oneWins(t *testing.T, what string, errs []error, want error) {
	t.Helper()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case want != nil && !errors.Is(err, want):
			t.Errorf("%s: a loser got %v, want %v", what, err, want)
		}
	}
	if ok != 1 {
		t.Errorf("%s: %d winners, want 1 (errors %v)", what, ok, errs)
	}
}

func racingNonces(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	errs := race(8, []store.Store{a, b}, func(_ int, s store.Store) error {
		return s.UseNonce(ctx, "n", txT0, txT0.Add(time.Hour))
	})
	oneWins(t, "UseNonce of one nonce", errs, store.ErrConflict)
	// The same in transactions.
	errs = race(8, []store.Store{a, b}, func(_ int, s store.Store) error {
		return s.WithTx(ctx, func(tx store.Store) error { return tx.UseNonce(ctx, "m", txT0, txT0.Add(time.Hour)) })
	})
	oneWins(t, "UseNonce of one nonce in WithTx", errs, store.ErrConflict)
}

func racingCreates(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	hs := []store.Store{a, b}
	errs := race(8, hs, func(_ int, s store.Store) error {
		return s.RestoreKey(ctx, []store.KeyVersion{kv("r", "v1", txT0), kv("r", "v2", txT0.Add(time.Second))}, nil)
	})
	oneWins(t, "RestoreKey of one name", errs, store.ErrConflict)
	if vs, err := a.ListKeyVersions(ctx, "r", "", 100); err != nil || len(vs) != 2 {
		t.Errorf("restored versions: %d %v", len(vs), err)
	}

	// The same new name and version: one row.
	errs = race(8, hs, func(_ int, s store.Store) error {
		return s.CreateKeyVersion(ctx, kv("k", "v1", txT0), true)
	})
	oneWins(t, "CreateKeyVersion of one name and version", errs, nil)
	if vs, err := b.ListKeyVersions(ctx, "k", "", 100); err != nil || len(vs) != 1 {
		t.Errorf("versions after racing creates: %d %v", len(vs), err)
	}

	// A new name with different versions: every create lands (the first
	// makes the key, the rest add versions) and latest is the last.
	errs = race(8, hs, func(i int, s store.Store) error {
		return s.CreateKeyVersion(ctx, kv("m", fmt.Sprintf("v%d", i), txT0), true)
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("create %d: %v", i, err)
		}
	}
	vs, err := a.ListKeyVersions(ctx, "m", "", 100)
	if err != nil || len(vs) != 8 {
		t.Fatalf("versions after racing creates: %d %v", len(vs), err)
	}
	if latest, err := b.GetKeyVersion(ctx, "m", ""); err != nil || latest.Version != vs[7].Version {
		t.Errorf("latest %q %v, want the last created %q", latest.Version, err, vs[7].Version)
	}
}

func optimisticUpdate(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	if err := a.CreateKeyVersion(ctx, kv("k1", "v1", txT0), true); err != nil {
		t.Fatal(err)
	}
	for round := range 5 {
		va, err := a.GetKeyVersion(ctx, "k1", "v1")
		if err != nil {
			t.Fatal(err)
		}
		vb, err := b.GetKeyVersion(ctx, "k1", "v1")
		if err != nil {
			t.Fatal(err)
		}
		if !va.Updated.Equal(vb.Updated) {
			t.Fatalf("round %d: handles read different rows", round)
		}
		prev := va.Updated
		va.Updated, va.MAC, va.Enabled = prev.Add(time.Second), []byte{1, byte(round)}, false
		vb.Updated, vb.MAC, vb.Tags = prev.Add(2*time.Second), []byte{2, byte(round)}, map[string]string{"b": "b"}
		errs := race(2, []store.Store{a, b}, func(i int, s store.Store) error {
			return s.UpdateKeyVersion(ctx, []store.KeyVersion{va, vb}[i], prev)
		})
		oneWins(t, fmt.Sprintf("round %d: UpdateKeyVersion from one read", round), errs, store.ErrConflict)
		winner := va
		if errs[1] == nil {
			winner = vb
		}
		for _, s := range []store.Store{a, b} {
			got, err := s.GetKeyVersion(ctx, "k1", "v1")
			if err != nil || !bytes.Equal(got.MAC, winner.MAC) || !got.Updated.Equal(winner.Updated) || got.Enabled != winner.Enabled {
				t.Errorf("round %d: row %+v %v, want the winner's", round, got, err)
			}
		}
	}
}
