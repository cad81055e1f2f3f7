// Package receipt is what verifies kura's ledger offline, with nothing
// but the log's origin and verifier key: the leaf format (leaf.go),
// signed checkpoints, c2sp.org/tlog-proof receipts and consistency proofs
// (verify.go), and witnesses' cosignatures (cosignatures.go). It links
// nothing of the server, so the agent and third-party verifiers use it.
package receipt

import (
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/transparency-dev/formats/proof"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Verify checks a c2sp.org/tlog-proof receipt offline: the
// checkpoint is signed by the log (origin, verifier), the leaf in the
// proof's extra data is included in that tree at the proof's index, and it
// commits to contents under salt. It returns the leaf and the tree.
func Verify(receipt []byte, origin string, verifier note.Verifier, contents []byte, salt [32]byte) (Leaf, tlog.Tree, error) {
	var p proof.TLogProof
	if err := p.Unmarshal(receipt); err != nil {
		return Leaf{}, tlog.Tree{}, fmt.Errorf("ledger: receipt: %w", err)
	}
	t, err := OpenCheckpoint(p.Checkpoint, origin, verifier)
	if err != nil {
		return Leaf{}, tlog.Tree{}, err
	}
	leaf, err := ParseLeaf(p.ExtraData)
	if err != nil {
		return Leaf{}, tlog.Tree{}, fmt.Errorf("ledger: receipt: %w", err)
	}
	if leaf.Seq != p.Index || p.Index >= uint64(t.N) {
		return Leaf{}, tlog.Tree{}, fmt.Errorf("ledger: receipt: the leaf is entry %d, the proof is for index %d of %d", leaf.Seq, p.Index, t.N)
	}
	c := Commit(salt, contents)
	if subtle.ConstantTimeCompare(c[:], leaf.Commitment[:]) != 1 {
		return Leaf{}, tlog.Tree{}, errors.New("ledger: receipt: the contents (with this salt) are not the entry's")
	}
	rp := make(tlog.RecordProof, len(p.Hashes))
	for i, h := range p.Hashes {
		rp[i] = h
	}
	if err := tlog.CheckRecord(rp, t.N, t.Hash, int64(p.Index), tlog.RecordHash(p.ExtraData)); err != nil {
		return Leaf{}, tlog.Tree{}, fmt.Errorf("ledger: receipt: inclusion: %w", err)
	}
	return leaf, t, nil
}

// VerifyConsistency checks offline that the signed checkpoint older is a
// prefix of newer, with a consistency proof between them.
func VerifyConsistency(older, newer []byte, p tlog.TreeProof, origin string, verifier note.Verifier) error {
	o, err := OpenCheckpoint(older, origin, verifier)
	if err != nil {
		return err
	}
	n, err := OpenCheckpoint(newer, origin, verifier)
	if err != nil {
		return err
	}
	if o.N > n.N {
		return fmt.Errorf("ledger: the older checkpoint (%d) is larger than the newer (%d)", o.N, n.N)
	}
	if err := tlog.CheckTree(p, n.N, n.Hash, o.N, o.Hash); err != nil {
		return fmt.Errorf("ledger: consistency %d → %d: %w", o.N, n.N, err)
	}
	return nil
}
