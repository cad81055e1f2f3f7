package ledger

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/kura-project/kura/internal/ledger/receipt"
	"github.com/kura-project/kura/internal/store"
)

const origin = "kura.test/ledger"

func newLog(t *testing.T) (*Log, *memStore, note.Verifier) {
	t.Helper()
	signer, verifier := logKey(t)
	m := newMem()
	l, err := New(m, Config{Origin: origin, Signer: signer, Verifier: verifier, Tx: m.tx, Now: func() time.Time { return time.Unix(1_800_000_000, 123_456_789) }})
	if err != nil {
		t.Fatal(err)
	}
	return l, m, verifier
}

// TestReceipts: every entry's receipt verifies offline with only the
// origin and the verifier key; an altered content, salt, proof, leaf,
// checkpoint, origin or key does not.
func TestReceipts(t *testing.T) {
	l, _, v := newLog(t)
	ctx := context.Background()
	var recs []Record
	for i := range 37 {
		r, err := l.Append(ctx, fmt.Sprint("c", i%3), []byte(fmt.Sprint("entry ", i)))
		if err != nil {
			t.Fatal(err)
		}
		if r.Leaf.Seq != uint64(i) {
			t.Fatalf("entry %d got seq %d", i, r.Leaf.Seq)
		}
		recs = append(recs, r)
	}
	for _, seq := range []int64{0, 1, 17, 31, 36} {
		rec, rcpt, err := l.Receipt(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		leaf, tree, err := receipt.Verify(rcpt, origin, v, rec.Contents, rec.Salt)
		if err != nil || leaf.Seq != uint64(seq) || tree.N != 37 || leaf.Collection != recs[seq].Leaf.Collection {
			t.Fatalf("receipt %d: %v (%+v, %d)", seq, err, leaf, tree.N)
		}
		if !strings.HasPrefix(string(rcpt), "c2sp.org/tlog-proof@v1\nextra ") {
			t.Errorf("receipt %d is not a c2sp.org/tlog-proof: %.60q", seq, rcpt)
		}
		other := recs[(seq+1)%37]
		if _, _, err := receipt.Verify(rcpt, origin, v, other.Contents, rec.Salt); err == nil {
			t.Errorf("receipt %d verified other contents", seq)
		}
		if _, _, err := receipt.Verify(rcpt, origin, v, rec.Contents, other.Salt); err == nil {
			t.Errorf("receipt %d verified with another salt", seq)
		}
		if _, _, err := receipt.Verify(rcpt, "other.test/ledger", v, rec.Contents, rec.Salt); err == nil {
			t.Errorf("receipt %d verified for another origin", seq)
		}
		_, vkey2, _ := note.GenerateKey(rand.Reader, origin)
		v2, _ := note.NewVerifier(vkey2)
		if _, _, err := receipt.Verify(rcpt, origin, v2, rec.Contents, rec.Salt); err == nil {
			t.Errorf("receipt %d verified with another log's key", seq)
		}
		// Flip one byte in each line of the proof: nothing still verifies.
		lines := strings.SplitAfter(string(rcpt), "\n")
		for i, line := range lines {
			if len(line) < 8 || i == 0 {
				continue
			}
			bad := append([]string(nil), lines...)
			b := []byte(line)
			b[len(b)/2] ^= 0x01
			bad[i] = string(b)
			if _, _, err := receipt.Verify([]byte(strings.Join(bad, "")), origin, v, rec.Contents, rec.Salt); err == nil {
				t.Errorf("receipt %d verified with line %d altered: %q", seq, i, line)
			}
		}
	}
	if _, _, err := l.Receipt(ctx, 37); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("receipt past the end: %v", err)
	}
}

// TestAgreesWithTransparencyDev: the tree, inclusion and consistency
// proofs are RFC 6962's as transparency-dev/merkle computes and checks
// them (what standard log tooling and witnesses use).
func TestAgreesWithTransparencyDev(t *testing.T) {
	l, m, v := newLog(t)
	ctx := context.Background()
	for i := range 10 {
		l.Append(ctx, "c", []byte(fmt.Sprint(i)))
	}
	_, old, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 10; i < 300; i++ {
		l.Append(ctx, "c", []byte(fmt.Sprint(i)))
	}
	tree, newer, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := rfc6962.DefaultHasher
	for _, seq := range []int64{0, 9, 10, 255, 256, 299} {
		leaf := m.records[seq].Leaf
		p, err := tlog.ProveRecord(tree.N, seq, reader{ctx, m})
		if err != nil {
			t.Fatal(err)
		}
		hashes := make([][]byte, len(p))
		for i := range p {
			hashes[i] = p[i][:]
		}
		if err := proof.VerifyInclusion(h, uint64(seq), uint64(tree.N), h.HashLeaf(leaf), hashes, tree.Hash[:]); err != nil {
			t.Errorf("entry %d: transparency-dev/merkle refuses the inclusion proof: %v", seq, err)
		}
	}
	cp, err := l.Consistency(ctx, 10, tree.N)
	if err != nil {
		t.Fatal(err)
	}
	if err := receipt.VerifyConsistency(old, newer, cp, origin, v); err != nil {
		t.Fatal(err)
	}
	oldTree, _ := receipt.OpenCheckpoint(old, origin, v)
	hashes := make([][]byte, len(cp))
	for i := range cp {
		hashes[i] = cp[i][:]
	}
	if err := proof.VerifyConsistency(h, 10, uint64(tree.N), hashes, oldTree.Hash[:], tree.Hash[:]); err != nil {
		t.Errorf("transparency-dev/merkle refuses the consistency proof: %v", err)
	}
	if err := receipt.VerifyConsistency(newer, old, cp, origin, v); err == nil {
		t.Error("a consistency proof verified backwards")
	}
	if _, err := l.Consistency(ctx, 0, 5); err == nil {
		t.Error("a consistency proof from the empty tree")
	}
}

// TestConcurrentAppends: concurrent appenders get distinct, contiguous
// sequence numbers and every receipt verifies; a store that refuses an
// append out of sequence (the fence) refuses it.
func TestConcurrentAppends(t *testing.T) {
	l, m, v := newLog(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	seqs := make([]uint64, 64)
	for i := range seqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := l.Append(ctx, "c", []byte(fmt.Sprint(i)))
			if err != nil {
				t.Error(err)
			}
			seqs[i] = r.Leaf.Seq
		}()
	}
	wg.Wait()
	seen := map[uint64]bool{}
	for _, s := range seqs {
		seen[s] = true
	}
	if len(seen) != 64 {
		t.Fatalf("%d distinct sequence numbers for 64 appends", len(seen))
	}
	for seq := range int64(64) {
		rec, rcpt, err := l.Receipt(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := receipt.Verify(rcpt, origin, v, rec.Contents, rec.Salt); err != nil {
			t.Fatalf("entry %d: %v", seq, err)
		}
	}
	if err := m.AppendLedger(ctx, []store.LedgerEntry{{Seq: 3}}, nil); !errors.Is(err, store.ErrConflict) {
		t.Errorf("an append out of sequence: %v", err)
	}
}

// TestCancelledAppendNotWritten: an append whose caller has gone before
// its batch is taken is answered with the context's error and never
// written; the next append takes its place.
func TestCancelledAppendNotWritten(t *testing.T) {
	l, _, _ := newLog(t)
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Append(gone, "c", []byte("gone")); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled append: %v", err)
	}
	r, err := l.Append(context.Background(), "c", []byte("kept"))
	if err != nil || r.Leaf.Seq != 0 || string(r.Contents) != "kept" {
		t.Fatalf("the next append: %+v %v", r, err)
	}
	if tr, err := l.Tree(context.Background()); err != nil || tr.N != 1 {
		t.Errorf("tree %d %v, want 1 entry", tr.N, err)
	}
}

// TestNoSignatureOverAFork: a tree rewritten in the store (a leaf and its
// hashes replaced) is not signed: the new tree must extend the last
// signed checkpoint.
func TestNoSignatureOverAFork(t *testing.T) {
	l, m, _ := newLog(t)
	ctx := context.Background()
	for i := range 8 {
		l.Append(ctx, "c", []byte(fmt.Sprint(i)))
	}
	if _, _, err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	rewrite(t, m, 3) // entry 3 and every hash after it, consistently
	l.Append(ctx, "c", []byte("next"))
	warmAfterRewrite(t, l, 3)
	l.forget() // as a process whose caches missed
	if _, _, err := l.Checkpoint(ctx); !errors.Is(err, ErrFork) {
		t.Fatalf("checkpoint over a rewritten tree: %v", err)
	}
	// A tree that shrank is refused too.
	m.records, m.hashes = m.records[:5], m.hashes[:tlog.StoredHashIndex(0, 5)]
	if _, _, err := l.Checkpoint(ctx); !errors.Is(err, ErrFork) {
		t.Fatalf("checkpoint over a shorter tree: %v", err)
	}
}

// TestForkAfterCheckpointsDeleted: deleting the stored checkpoints does
// not let a rewritten tree be signed by the process that signed the old
// one; a stored checkpoint that is not the log's is not served.
func TestForkAfterCheckpointsDeleted(t *testing.T) {
	l, m, _ := newLog(t)
	ctx := context.Background()
	for i := range 6 {
		l.Append(ctx, "c", []byte(fmt.Sprint(i)))
	}
	if _, _, err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	clear(m.cps)
	rewrite(t, m, 2)
	l.Append(ctx, "c", []byte("next"))
	warmAfterRewrite(t, l, 2)
	l.forget()
	if _, _, err := l.Checkpoint(ctx); !errors.Is(err, ErrFork) {
		t.Fatalf("checkpoint over a rewritten tree after the checkpoints were deleted: %v", err)
	}

	// A checkpoint of another key stored for the current size.
	l2, m2, _ := newLog(t)
	for i := range 3 {
		l2.Append(ctx, "c", []byte(fmt.Sprint(i)))
	}
	other, _, _ := newLog(t)
	tree, _ := l2.Tree(ctx)
	foreign, err := signCheckpoint(origin, tree, other.cfg.Signer)
	if err != nil {
		t.Fatal(err)
	}
	m2.cps[tree.N] = foreign
	if _, _, err := l2.Checkpoint(ctx); !errors.Is(err, ErrFork) {
		t.Errorf("a stored checkpoint of another key: %v", err)
	}
}

// TestCheckpointsUnderConcurrency: checkpoints signed while others append
// and sign never look like a fork.
func TestCheckpointsUnderConcurrency(t *testing.T) {
	l, _, v := newLog(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				var err error
				if w%2 == 0 {
					_, err = l.Append(ctx, "c", []byte(fmt.Sprint(w, i)))
				} else {
					var signed []byte
					if _, signed, err = l.Checkpoint(ctx); err == nil {
						_, err = receipt.OpenCheckpoint(signed, origin, v)
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// rewrite replaces entry at's contents in m and recomputes every hash, as
// someone with write access to the database could: a consistent fork.
// warmAfterRewrite: a process that still holds the rewritten part of the
// tree in its hash cache either refuses the checkpoint as a fork or signs
// the tree it knows (the genuine one, with the new entry hashed onto it);
// either way the rewritten entry gets no receipt, an untouched one does.
func warmAfterRewrite(t *testing.T, l *Log, at int64) {
	t.Helper()
	ctx := context.Background()
	if _, _, err := l.Checkpoint(ctx); err != nil {
		if !errors.Is(err, ErrFork) {
			t.Fatalf("checkpoint after a rewrite: %v", err)
		}
		return
	}
	// From memory, the receipt is of the entry as it was appended; from
	// the store, it is refused.
	if rec, _, err := l.Receipt(ctx, at); err == nil && string(rec.Contents) == "forged" {
		t.Errorf("a rcpt for the rewritten entry %d", at)
	} else if err != nil && !errors.Is(err, ErrFork) {
		t.Errorf("receipt of the rewritten entry %d: %v", at, err)
	}
	l.recent = recentRecords{}
	if _, _, err := l.Receipt(ctx, at); !errors.Is(err, ErrFork) {
		t.Errorf("receipt of the rewritten entry %d, read from the store: %v", at, err)
	}
	if _, _, err := l.Receipt(ctx, 0); err != nil {
		t.Errorf("receipt of an untouched entry: %v", err)
	}
}

// forget drops the process's caches: as a process that did not make the
// entries it reads.
func (l *Log) forget() {
	l.hashes = hashCache{}
	l.recent = recentRecords{}
	l.aclSt = nil
}

func rewrite(t *testing.T, m *memStore, at int) {
	t.Helper()
	ctx := context.Background()
	forged := newMem()
	for i, e := range m.records {
		r, err := record(e)
		if err != nil {
			t.Fatal(err)
		}
		if i == at {
			r.Contents = []byte("forged")
			r.Leaf.Commitment = receipt.Commit(r.Salt, r.Contents)
		}
		fe, _ := entry(r)
		hs, err := tlog.StoredHashes(int64(i), fe.Leaf, reader{ctx, forged})
		if err != nil {
			t.Fatal(err)
		}
		forged.records = append(forged.records, fe)
		for _, h := range hs {
			forged.hashes = append(forged.hashes, h)
		}
	}
	m.records, m.hashes = forged.records, forged.hashes
}

// TestTwoProcessesNoFork: a process that signed a tree does not sign a
// rewritten one because another process (or a restart) signed over the
// rewrite after the checkpoints were deleted.
func TestTwoProcessesNoFork(t *testing.T) {
	p1, m, _ := newLog(t)
	ctx := context.Background()
	for i := range 6 {
		p1.Append(ctx, "c", []byte(fmt.Sprint(i)))
	}
	if _, _, err := p1.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	clear(m.cps)
	rewrite(t, m, 2)
	p2, err := New(m, p1.cfg) // a second process: same key and store, no memory
	if err != nil {
		t.Fatal(err)
	}
	p2.Append(ctx, "c", []byte("x"))
	p2.Append(ctx, "c", []byte("y"))
	if _, _, err := p2.Checkpoint(ctx); err != nil {
		t.Fatal(err) // it cannot know: it never saw the old tree
	}
	p1.Append(ctx, "c", []byte("z"))
	if _, _, err := p1.Checkpoint(ctx); !errors.Is(err, ErrFork) {
		t.Errorf("the first process signed over a history that does not extend what it signed: %v", err)
	}
}
