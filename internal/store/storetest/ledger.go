package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/kura-project/kura/internal/store"
)

// ledger checks the ledger's storage: append fenced by size, hashes by
// storage index, entries by seq, checkpoints kept once per size, and an
// append inside a rolled-back transaction leaving nothing.
func ledger(t *testing.T, s store.Store) {
	ctx := context.Background()
	if n, err := s.LedgerSize(ctx); err != nil || n != 0 {
		t.Fatalf("empty ledger: %d %v", n, err)
	}
	if _, _, err := s.LatestLedgerCheckpoint(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("latest checkpoint of an empty ledger: %v", err)
	}
	h := func(b byte) [32]byte { return [32]byte{b} }
	e0 := store.LedgerEntry{Seq: 0, Collection: "c", Leaf: []byte("leaf0"), Contents: []byte("contents0"), Salt: bytes.Repeat([]byte{1}, 32)}
	if err := s.AppendLedger(ctx, e0, [][32]byte{h(10)}); err != nil {
		t.Fatal(err)
	}
	// Entry 1 adds two hashes (leaf and the level-1 node), as tlog does.
	e1 := store.LedgerEntry{Seq: 1, Collection: "d", Leaf: []byte("leaf1"), Contents: []byte{}, Salt: bytes.Repeat([]byte{2}, 32)}
	if err := s.AppendLedger(ctx, e1, [][32]byte{h(11), h(12)}); err != nil {
		t.Fatal(err)
	}
	// Entry 2 adds one hash (at index 3): two, or one at another index, no.
	if err := s.AppendLedger(ctx, store.LedgerEntry{Seq: 2, Collection: "c", Leaf: []byte("x"), Salt: make([]byte, 32)}, [][32]byte{h(1), h(2)}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("append with more hashes than tlog stores: %v", err)
	}
	for _, seq := range []int64{0, 5} {
		if err := s.AppendLedger(ctx, store.LedgerEntry{Seq: seq, Collection: "c", Leaf: []byte("x"), Salt: make([]byte, 32)}, [][32]byte{h(99)}); !errors.Is(err, store.ErrConflict) {
			t.Errorf("append at %d to 2 entries: %v", seq, err)
		}
	}
	if n, _ := s.LedgerSize(ctx); n != 2 {
		t.Errorf("size %d, want 2", n)
	}
	hs, err := s.LedgerHashes(ctx, []int64{2, 0, 1})
	if err != nil || hs[0] != h(12) || hs[1] != h(10) || hs[2] != h(11) {
		t.Errorf("hashes: %v %v", hs, err)
	}
	if _, err := s.LedgerHashes(ctx, []int64{3}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a hash not stored: %v", err)
	}
	got, err := s.GetLedgerEntry(ctx, 1)
	if err != nil || got.Collection != "d" || !bytes.Equal(got.Leaf, e1.Leaf) || !bytes.Equal(got.Salt, e1.Salt) || len(got.Contents) != 0 {
		t.Errorf("entry 1: %+v %v", got, err)
	}
	if _, err := s.GetLedgerEntry(ctx, 2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("entry past the end: %v", err)
	}
	// Checkpoints: the same again is a no-op, another for the size refused.
	for _, size := range []int64{1, 2} {
		if err := s.PutLedgerCheckpoint(ctx, size, []byte(fmt.Sprint("cp", size))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutLedgerCheckpoint(ctx, 2, []byte("cp2")); err != nil {
		t.Errorf("the same checkpoint again: %v", err)
	}
	if err := s.PutLedgerCheckpoint(ctx, 2, []byte("other")); !errors.Is(err, store.ErrConflict) {
		t.Errorf("another checkpoint for a size: %v", err)
	}
	if n, cp, err := s.LatestLedgerCheckpoint(ctx); err != nil || n != 2 || string(cp) != "cp2" {
		t.Errorf("latest checkpoint: %d %q %v", n, cp, err)
	}
	if cp, err := s.GetLedgerCheckpoint(ctx, 1); err != nil || string(cp) != "cp1" {
		t.Errorf("checkpoint 1: %q %v", cp, err)
	}
	if _, err := s.GetLedgerCheckpoint(ctx, 7); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("checkpoint never signed: %v", err)
	}
	// An append in a transaction that rolls back leaves nothing.
	e2 := store.LedgerEntry{Seq: 2, Collection: "c", Leaf: []byte("leaf2"), Contents: []byte("x"), Salt: make([]byte, 32)}
	err = s.WithTx(ctx, func(tx store.Store) error {
		if err := tx.AppendLedger(ctx, e2, [][32]byte{h(13)}); err != nil {
			return err
		}
		return errors.New("refused")
	})
	if err == nil {
		t.Fatal("the refused transaction succeeded")
	}
	if n, _ := s.LedgerSize(ctx); n != 2 {
		t.Errorf("a rolled-back append was kept: size %d", n)
	}
	if err := s.AppendLedger(ctx, e2, [][32]byte{h(13)}); err != nil {
		t.Errorf("the append after the rollback: %v", err)
	}
}
