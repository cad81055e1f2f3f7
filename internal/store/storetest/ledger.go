package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

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
	if err := s.AppendLedger(ctx, []store.LedgerEntry{e0}, [][32]byte{h(10)}); err != nil {
		t.Fatal(err)
	}
	// Entry 1 adds two hashes (leaf and the level-1 node), as tlog does.
	e1 := store.LedgerEntry{Seq: 1, Collection: "d", Leaf: []byte("leaf1"), Contents: []byte{}, Salt: bytes.Repeat([]byte{2}, 32)}
	if err := s.AppendLedger(ctx, []store.LedgerEntry{e1}, [][32]byte{h(11), h(12)}); err != nil {
		t.Fatal(err)
	}
	// Entry 2 adds one hash (at index 3): two, or one at another index, no.
	if err := s.AppendLedger(ctx, []store.LedgerEntry{{Seq: 2, Collection: "c", Leaf: []byte("x"), Salt: make([]byte, 32)}}, [][32]byte{h(1), h(2)}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("append with more hashes than tlog stores: %v", err)
	}
	for _, seq := range []int64{0, 5} {
		if err := s.AppendLedger(ctx, []store.LedgerEntry{{Seq: seq, Collection: "c", Leaf: []byte("x"), Salt: make([]byte, 32)}}, [][32]byte{h(99)}); !errors.Is(err, store.ErrConflict) {
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
	// The cosigned checkpoint: one, replaced by one as large or larger,
	// never by a smaller one.
	if _, _, err := s.LatestLedgerCosigned(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("cosigned checkpoint before any: %v", err)
	}
	for _, c := range []struct {
		size int64
		put  string
		want string
	}{{2, "co2", "co2"}, {2, "co2+w", "co2+w"}, {1, "co1", "co2+w"}, {5, "co5", "co5"}} {
		if err := s.PutLedgerCosigned(ctx, c.size, []byte(c.put)); err != nil {
			t.Fatalf("cosigned %d: %v", c.size, err)
		}
		if n, cp, err := s.LatestLedgerCosigned(ctx); err != nil || string(cp) != c.want || n != int64(c.want[2]-'0') {
			t.Errorf("after cosigned %d %q: %d %q %v, want %q", c.size, c.put, n, cp, err, c.want)
		}
	}
	// An append in a transaction that rolls back leaves nothing.
	e2 := store.LedgerEntry{Seq: 2, Collection: "c", Leaf: []byte("leaf2"), Contents: []byte("x"), Salt: make([]byte, 32)}
	err = s.WithTx(ctx, func(tx store.Store) error {
		if err := tx.AppendLedger(ctx, []store.LedgerEntry{e2}, [][32]byte{h(13)}); err != nil {
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
	if err := s.AppendLedger(ctx, []store.LedgerEntry{e2}, [][32]byte{h(13)}); err != nil {
		t.Errorf("the append after the rollback: %v", err)
	}
	// A batch: consecutive entries and all their hashes in one call; a
	// gap, a wrong hash count or an empty batch is refused whole.
	batch := func(seqs ...int64) []store.LedgerEntry {
		var es []store.LedgerEntry
		for _, q := range seqs {
			es = append(es, store.LedgerEntry{Seq: q, Collection: "b", Leaf: []byte(fmt.Sprint("leaf", q)), Contents: []byte("x"), Salt: make([]byte, 32)})
		}
		return es
	}
	nh := func(from, to int64) [][32]byte {
		hs := make([][32]byte, tlog.StoredHashIndex(0, to)-tlog.StoredHashIndex(0, from))
		for i := range hs {
			hs[i] = h(byte(100 + i))
		}
		return hs
	}
	for name, c := range map[string]struct {
		es []store.LedgerEntry
		hs [][32]byte
	}{
		"gap":          {batch(3, 5, 5), nh(3, 6)}, // the right hash count: only contiguity refuses it
		"hash missing": {batch(3, 4, 5), nh(3, 6)[1:]},
		"empty":        {nil, nil},
	} {
		if err := s.AppendLedger(ctx, c.es, c.hs); !errors.Is(err, store.ErrConflict) {
			t.Errorf("batch (%s): %v, want ErrConflict", name, err)
		}
	}
	if n, _ := s.LedgerSize(ctx); n != 3 {
		t.Errorf("a refused batch left entries: size %d", n)
	}
	if err := s.AppendLedger(ctx, batch(3, 4, 5), nh(3, 6)); err != nil {
		t.Fatalf("batch: %v", err)
	}
	if n, _ := s.LedgerSize(ctx); n != 6 {
		t.Errorf("after a batch of 3: size %d", n)
	}
	want := nh(3, 6)
	for i, hh := range want {
		got, err := s.LedgerHashes(ctx, []int64{tlog.StoredHashIndex(0, 3) + int64(i)})
		if err != nil || got[0] != hh {
			t.Errorf("batch hash %d: %v", i, err)
		}
	}
	if e, err := s.GetLedgerEntry(ctx, 4); err != nil || string(e.Leaf) != "leaf4" {
		t.Errorf("entry 4 of the batch: %+v %v", e, err)
	}
	// A large batch (an engine may split its writes; every entry and hash
	// lands, in order): 1100 entries, some 2200 hashes.
	var seqs []int64
	for q := int64(6); q < 1106; q++ {
		seqs = append(seqs, q)
	}
	big := nh(6, 1106)
	for i := range big {
		big[i] = [32]byte{byte(i), byte(i >> 8), 7}
	}
	if err := s.AppendLedger(ctx, batch(seqs...), big); err != nil {
		t.Fatalf("a batch of 1100: %v", err)
	}
	if n, _ := s.LedgerSize(ctx); n != 1106 {
		t.Errorf("after a batch of 1100: size %d", n)
	}
	idx := make([]int64, len(big))
	for i := range idx {
		idx[i] = tlog.StoredHashIndex(0, 6) + int64(i)
	}
	if got, err := s.LedgerHashes(ctx, idx); err != nil || len(got) != len(big) {
		t.Errorf("the batch's hashes: %d %v", len(got), err)
	} else {
		for i := range got {
			if got[i] != big[i] {
				t.Errorf("the batch's hash %d is not the one stored", i)
				break
			}
		}
	}
	for _, q := range []int64{6, 155, 156, 157, 600, 1105} {
		if e, err := s.GetLedgerEntry(ctx, q); err != nil || string(e.Leaf) != fmt.Sprint("leaf", q) {
			t.Errorf("entry %d of the large batch: %+v %v", q, e, err)
		}
	}
}

// ledgerACL checks the ACL tree's storage: leaves appended in ranges
// fenced by the ACL size and the ledger's, hashes by storage index, and
// signed roots kept once per size.
func ledgerACL(t *testing.T, s store.Store) {
	ctx := context.Background()
	h := func(b byte) [32]byte { return [32]byte{b} }
	for seq := int64(0); seq < 3; seq++ {
		e := store.LedgerEntry{Seq: seq, Collection: "c", Leaf: []byte{byte(seq)}, Contents: []byte("x"), Salt: make([]byte, 32)}
		if err := s.AppendLedger(ctx, []store.LedgerEntry{e}, make([][32]byte, tlog.StoredHashIndex(0, seq+1)-tlog.StoredHashIndex(0, seq))); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.LedgerACLSize(ctx); err != nil || n != 0 {
		t.Fatalf("empty ACL tree: %d %v", n, err)
	}
	if _, _, err := s.LatestLedgerACLSignature(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("no ACL signature yet: %v", err)
	}
	// Leaves 0 and 1: three hashes (leaf 0; leaf 1 and their parent).
	if err := s.AppendLedgerACL(ctx, 0, 2, [][32]byte{h(1), h(2), h(3)}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.LedgerACLSize(ctx); err != nil || n != 2 {
		t.Errorf("ACL size %d %v, want 2", n, err)
	}
	for _, bad := range []struct {
		from, to int64
		n        int
	}{
		{0, 1, 1}, // not at the end
		{3, 4, 1}, // past the end
		{2, 3, 2}, // wrong hash count (leaf 2 stores one)
		{2, 4, 3}, // past the ledger's 3 entries
		{2, 1, 0}, // backwards
	} {
		if err := s.AppendLedgerACL(ctx, bad.from, bad.to, make([][32]byte, bad.n)); !errors.Is(err, store.ErrConflict) {
			t.Errorf("AppendLedgerACL(%d, %d, %d hashes): %v, want ErrConflict", bad.from, bad.to, bad.n, err)
		}
	}
	if err := s.AppendLedgerACL(ctx, 2, 3, [][32]byte{h(4)}); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.LedgerACLSize(ctx); n != 3 {
		t.Errorf("ACL size %d, want 3", n)
	}
	hs, err := s.LedgerACLHashes(ctx, []int64{3, 0, 2})
	if err != nil || hs[0] != h(4) || hs[1] != h(1) || hs[2] != h(3) {
		t.Errorf("ACL hashes: %v %v", hs, err)
	}
	if _, err := s.LedgerACLHashes(ctx, []int64{4}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an ACL hash not stored: %v", err)
	}
	// The RFC 6962 tree's hashes are apart from the ACL tree's.
	if hs, err := s.LedgerHashes(ctx, []int64{0}); err != nil || hs[0] == h(1) {
		t.Errorf("the trees share hashes: %v %v", hs, err)
	}
	if err := s.PutLedgerACLSignature(ctx, 2, []byte("sig2")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutLedgerACLSignature(ctx, 3, []byte("sig3")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutLedgerACLSignature(ctx, 3, []byte("sig3")); err != nil {
		t.Errorf("the same signature again: %v", err)
	}
	if err := s.PutLedgerACLSignature(ctx, 2, []byte("other")); !errors.Is(err, store.ErrConflict) {
		t.Errorf("another signature for a size: %v", err)
	}
	if n, sig, err := s.LatestLedgerACLSignature(ctx); err != nil || n != 3 || string(sig) != "sig3" {
		t.Errorf("latest ACL signature: %d %q %v", n, sig, err)
	}
}

// ledgerList checks listing by collection and range, the newest entry of
// a collection, and the collections.
func ledgerList(t *testing.T, s store.Store) {
	ctx := context.Background()
	colls := []string{"b", "a", "b", "b", "c", "a"}
	for seq, c := range colls {
		e := store.LedgerEntry{Seq: int64(seq), Collection: c, Leaf: []byte{byte(seq)}, Contents: []byte(fmt.Sprint("contents", seq)), Salt: bytes.Repeat([]byte{byte(seq)}, 32)}
		if err := s.AppendLedger(ctx, []store.LedgerEntry{e}, make([][32]byte, tlog.StoredHashIndex(0, int64(seq)+1)-tlog.StoredHashIndex(0, int64(seq)))); err != nil {
			t.Fatal(err)
		}
	}
	seqs := func(es []store.LedgerEntry) []int64 {
		var out []int64
		for _, e := range es {
			out = append(out, e.Seq)
		}
		return out
	}
	for _, tc := range []struct {
		coll     string
		from, to int64
		limit    int
		want     []int64
	}{
		{"b", 0, 100, 10, []int64{0, 2, 3}},
		{"b", 1, 2, 10, []int64{2}},
		{"b", 0, 100, 2, []int64{0, 2}},
		{"", 1, 4, 10, []int64{1, 2, 3, 4}},
		{"a", 0, 4, 10, []int64{1}},
		{"z", 0, 100, 10, nil},
	} {
		got, err := s.ListLedgerEntries(ctx, tc.coll, tc.from, tc.to, tc.limit)
		if err != nil || fmt.Sprint(seqs(got)) != fmt.Sprint(tc.want) {
			t.Errorf("ListLedgerEntries(%q, %d, %d, %d) = %v %v, want %v", tc.coll, tc.from, tc.to, tc.limit, seqs(got), err, tc.want)
		}
	}
	got, err := s.ListLedgerEntries(ctx, "c", 0, 10, 10)
	if err != nil || len(got) != 1 || string(got[0].Contents) != "contents4" || got[0].Collection != "c" || !bytes.Equal(got[0].Salt, bytes.Repeat([]byte{4}, 32)) {
		t.Errorf("entry 4 listed: %+v %v", got, err)
	}
	if e, err := s.LastLedgerEntry(ctx, "b"); err != nil || e.Seq != 3 || string(e.Contents) != "contents3" {
		t.Errorf("last of b: %+v %v", e, err)
	}
	if _, err := s.LastLedgerEntry(ctx, "z"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("last of an empty collection: %v", err)
	}
	if cs, err := s.LedgerCollections(ctx); err != nil || fmt.Sprint(cs) != "[a b c]" {
		t.Errorf("collections: %v %v", cs, err)
	}
}
