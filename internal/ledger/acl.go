package ledger

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/kura-project/kura/internal/fault"
	"github.com/kura-project/kura/internal/store"
)

// The ACL-shaped tree is a second Merkle tree over the same entries, in
// the shape Azure Confidential Ledger (CCF) receipts prove (ledger.md
// §2.2): leaf i is SHA-256(writeSetDigest || SHA-256(commitEvidence) ||
// claimsDigest), inner nodes SHA-256(left || right) without RFC 6962's
// prefixes, and the node key signs the root. writeSetDigest is the RFC 6962
// leaf hash of the entry, so an ACL receipt and a C2SP receipt prove the
// same leaf. ACL's published verifier accepts these receipts unchanged.
//
// The ACL tree is built by the checkpoint signer (the integrator), never
// on the append path: its leaves are computed from the RFC 6962 tree's
// leaves after those are checked against the signed checkpoint, so a
// database that was edited cannot get a forged leaf signed.

// aclView is the view of every transaction id ("view.seqno"); kura has
// one sequencer, so one view.
const aclView = 1

// TxID is the ACL transaction id of entry seq: "view.seqno", seqno from 1.
func TxID(seq int64) string { return strconv.Itoa(aclView) + "." + strconv.FormatInt(seq+1, 10) }

// ParseTxID reads an ACL transaction id into an entry's seq.
func ParseTxID(id string) (int64, error) {
	v, s, ok := strings.Cut(id, ".")
	if !ok || v != strconv.Itoa(aclView) {
		return 0, fault.Bad("transactionId", "%q is not a transaction id of this ledger (%d.<seqno>)", id, aclView)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 || s != strconv.FormatInt(n, 10) {
		return 0, fault.Bad("transactionId", "%q is not a transaction id of this ledger (%d.<seqno>, seqno from 1)", id, aclView)
	}
	return n - 1, nil
}

func aclHashChildren(l, r []byte) []byte {
	h := sha256.New()
	h.Write(l)
	h.Write(r)
	return h.Sum(nil)
}

var (
	aclRanges  = &compact.RangeFactory{Hash: aclHashChildren}
	tlogRanges = &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
)

// commitEvidence is CCF's "ce:<view>.<seqno>:<64 hex>" for entry seq.
func (k *ACLKey) commitEvidence(seq int64) string {
	id := TxID(seq)
	m := hmac.New(sha256.New, k.evidence[:])
	m.Write([]byte(id))
	return "ce:" + id + ":" + hex.EncodeToString(m.Sum(nil))
}

// aclLeaf is the ACL leaf of entry seq whose RFC 6962 leaf hash is wsd;
// kura attaches no application claims, so the claims digest is zero (as
// ACL's 2022-05-13 API answers).
func (k *ACLKey) aclLeaf(seq int64, wsd [32]byte) [32]byte {
	ce := sha256.Sum256([]byte(k.commitEvidence(seq)))
	var claims [32]byte
	h := sha256.New()
	h.Write(wsd[:])
	h.Write(ce[:])
	h.Write(claims[:])
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// signRoot is the stored form of a signed ACL root: the 32-byte root,
// then the node's ASN.1 ECDSA signature over it as a SHA-256 digest.
func (k *ACLKey) signRoot(root []byte) ([]byte, error) {
	// Deterministic (RFC 6979, a nil random source): two processes that
	// sign the same root store the same row, not a conflict.
	sig, err := k.priv.Sign(nil, root, crypto.SHA256)
	if err != nil {
		return nil, err
	}
	return append(append([]byte{}, root...), sig...), nil
}

func (k *ACLKey) openRoot(signed []byte) ([32]byte, []byte, error) {
	var root [32]byte
	if len(signed) < 33 {
		return root, nil, errors.New("short")
	}
	copy(root[:], signed)
	sig := signed[32:]
	if !ecdsa.VerifyASN1(&k.priv.PublicKey, root[:], sig) {
		return root, nil, errors.New("the node key's signature does not verify")
	}
	return root, sig, nil
}

// aclIntegrateChunk bounds the leaves read and written at a time.
const aclIntegrateChunk = 4096

// integrateACL extends the ACL tree to t (which the caller checked
// extends every signed checkpoint) and signs its root. It starts from the
// last signed ACL root: the ACL frontier at that size must give the signed
// root, and the RFC 6962 frontier there with the leaves after it must give
// t's root (so both are the checkpointed tree's: no checkpoint row at that
// size is needed) before any ACL leaf made from them is stored or signed.
func (l *Log) integrateACL(ctx context.Context, t tlog.Tree) (func(Store) error, *aclState, error) {
	k := l.cfg.ACL
	if k == nil || t.N == 0 {
		return nil, nil, nil
	}
	base, signed, err := l.st.LatestLedgerACLSignature(ctx)
	if errors.Is(err, store.ErrNotFound) {
		base, signed = 0, nil
	} else if err != nil {
		return nil, nil, err
	}
	if base > t.N {
		return nil, nil, fmt.Errorf("%w: an ACL root was signed at %d, the tree has %d entries", ErrFork, base, t.N)
	}
	if base == t.N {
		return nil, nil, nil
	}
	tr, ar := tlogRanges.NewEmptyRange(0), aclRanges.NewEmptyRange(0)
	if st := l.aclSt; base > 0 && st != nil && st.size == base && bytes.Equal(st.signed, signed) {
		// The root this process signed and committed last: its ranges
		// are in memory, checked when they were made.
		if tr, err = tlogRanges.NewRange(0, uint64(base), cloneHashes(st.th)); err != nil {
			return nil, nil, err
		}
		if ar, err = aclRanges.NewRange(0, uint64(base), cloneHashes(st.ah)); err != nil {
			return nil, nil, err
		}
	} else if base > 0 {
		aclRoot, _, err := k.openRoot(signed)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: the stored ACL root of size %d: %v", ErrFork, base, err)
		}
		ids := compact.RangeNodes(0, uint64(base), nil)
		idx := make([]int64, len(ids))
		for i, id := range ids {
			idx[i] = tlog.StoredHashIndex(int(id.Level), int64(id.Index))
		}
		th, err := l.st.LedgerHashes(ctx, idx)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: the tree at %d: %v", ErrFork, base, err)
		}
		ah, err := l.st.LedgerACLHashes(ctx, idx)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: the ACL tree at %d: %v", ErrFork, base, err)
		}
		if tr, err = tlogRanges.NewRange(0, uint64(base), slices32(th)); err != nil {
			return nil, nil, err
		}
		if ar, err = aclRanges.NewRange(0, uint64(base), slices32(ah)); err != nil {
			return nil, nil, err
		}
		if r, _ := ar.GetRootHash(nil); string(r) != string(aclRoot[:]) {
			return nil, nil, fmt.Errorf("%w: the stored ACL tree at %d is not its signed root's", ErrFork, base)
		}
	}
	// Pass 1: the new leaves, checked against t before anything is kept.
	var cols [][32]byte // the ACL tree's stored hashes from leaf base on, in storage order
	for lo := base; lo < t.N; lo += aclIntegrateChunk {
		hi := min(lo+aclIntegrateChunk, t.N)
		idx := make([]int64, 0, hi-lo)
		for seq := lo; seq < hi; seq++ {
			idx = append(idx, tlog.StoredHashIndex(0, seq))
		}
		leaves, err := l.reader(ctx).ReadHashes(idx)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: leaves %d to %d: %v", ErrFork, lo, hi, err)
		}
		for i, lh := range leaves {
			seq := lo + int64(i)
			if err := tr.Append(lh[:], nil); err != nil {
				return nil, nil, err
			}
			al := k.aclLeaf(seq, lh)
			if err := ar.Append(al[:], func(_ compact.NodeID, h []byte) { cols = append(cols, [32]byte(h)) }); err != nil {
				return nil, nil, err
			}
		}
	}
	if r, _ := tr.GetRootHash(nil); string(r) != string(t.Hash[:]) {
		return nil, nil, fmt.Errorf("%w: the stored leaves after %d do not make the tree's root", ErrFork, base)
	}
	// Pass 2: keep what is not stored yet (a crash may have left some
	// after the last signature: they must be the ones computed).
	have, err := l.st.LedgerACLSize(ctx)
	if err != nil {
		return nil, nil, err
	}
	if have < base || have > t.N {
		return nil, nil, fmt.Errorf("%w: the ACL tree holds %d leaves, its last signed root %d, the tree %d", ErrFork, have, base, t.N)
	}
	start := tlog.StoredHashIndex(0, base)
	if have > base {
		n := tlog.StoredHashIndex(0, have) - start
		idx := make([]int64, n)
		for i := range idx {
			idx[i] = start + int64(i)
		}
		stored, err := l.st.LedgerACLHashes(ctx, idx)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrFork, err)
		}
		for i := range stored {
			if stored[i] != cols[i] {
				return nil, nil, fmt.Errorf("%w: a stored ACL hash after %d is not the one its leaf makes", ErrFork, base)
			}
		}
	}
	root, err := ar.GetRootHash(nil)
	if err != nil {
		return nil, nil, err
	}
	sig, err := k.signRoot(root)
	if err != nil {
		return nil, nil, err
	}
	return func(tx Store) error {
		for lo := have; lo < t.N; lo += aclIntegrateChunk {
			hi := min(lo+aclIntegrateChunk, t.N)
			a, b := tlog.StoredHashIndex(0, lo)-start, tlog.StoredHashIndex(0, hi)-start
			if err := tx.AppendLedgerACL(ctx, lo, hi, cols[a:b]); err != nil {
				return fmt.Errorf("ledger: ACL tree: %w", err)
			}
		}
		return tx.PutLedgerACLSignature(ctx, t.N, sig)
	}, &aclState{size: t.N, signed: sig, th: cloneHashes(tr.Hashes()), ah: cloneHashes(ar.Hashes())}, nil
}

// aclState is the ACL tree as this process last signed and committed it:
// the size, the signed root as stored, and both trees' compact ranges.
type aclState struct {
	size   int64
	signed []byte
	th, ah [][]byte
}

func cloneHashes(hs [][]byte) [][]byte {
	out := make([][]byte, len(hs))
	for i, h := range hs {
		out[i] = bytes.Clone(h)
	}
	return out
}

func slices32(hs [][32]byte) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}

// ACLReceipt is a receipt in ACL's shape (ledger.md §2.1): what ACL's
// verify_receipt takes, with the ledger's service certificate.
type ACLReceipt struct {
	Cert                string // PEM of the node certificate
	ServiceEndorsements []string
	NodeID              string
	WriteSetDigest      string // hex: the entry's RFC 6962 leaf hash
	CommitEvidence      string
	ClaimsDigest        string // hex; zeros: no claims
	Proof               []ACLProofStep
	Signature           string // base64 ASN.1 ECDSA over the root
	Size                int64  // the tree the proof is in
}

// ACLProofStep is one proof element: exactly one of Left and Right (hex).
type ACLProofStep struct {
	Left, Right string
}

// ACLRoot is a receipt's tree root as ACL's algorithm recomputes it.
func ACLRoot(leaf [32]byte, steps []ACLProofStep) ([32]byte, error) {
	h := leaf[:]
	for i, s := range steps {
		switch {
		case s.Left != "" && s.Right == "":
			b, err := hex.DecodeString(s.Left)
			if err != nil || len(b) != 32 {
				return [32]byte{}, fmt.Errorf("proof element %d: not a hex SHA-256", i)
			}
			h = aclHashChildren(b, h)
		case s.Right != "" && s.Left == "":
			b, err := hex.DecodeString(s.Right)
			if err != nil || len(b) != 32 {
				return [32]byte{}, fmt.Errorf("proof element %d: not a hex SHA-256", i)
			}
			h = aclHashChildren(h, b)
		default:
			return [32]byte{}, fmt.Errorf("proof element %d: exactly one of left and right", i)
		}
	}
	return [32]byte(h), nil
}

// leftRight labels an RFC 9162 inclusion path (bottom up) for leaf index
// of size: whether each sibling is on the left (RFC 9162 §2.1.3.2).
func leftRight(index, size int64, path [][]byte) ([]ACLProofStep, error) {
	fn, sn := index, size-1
	out := make([]ACLProofStep, 0, len(path))
	for _, p := range path {
		if sn == 0 {
			return nil, errors.New("ledger: ACL proof longer than the tree")
		}
		if fn&1 == 1 || fn == sn {
			out = append(out, ACLProofStep{Left: hex.EncodeToString(p)})
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			out = append(out, ACLProofStep{Right: hex.EncodeToString(p)})
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return nil, errors.New("ledger: ACL proof shorter than the tree")
	}
	return out, nil
}

// ACLReceipt returns entry seq with its receipt in ACL's shape, in the
// newest signed ACL tree (signing one first if the entry is not in it).
// The receipt is checked as a verifier would before it is given out: a
// store that lost or changed a hash yields an error, not a bad receipt.
func (l *Log) ACLReceipt(ctx context.Context, seq int64) (Record, ACLReceipt, error) {
	k := l.cfg.ACL
	if k == nil {
		return Record{}, ACLReceipt{}, errors.New("ledger: no ACL node key")
	}
	rec, err := l.get(ctx, seq)
	if err != nil {
		return Record{}, ACLReceipt{}, err
	}
	size, signed, err := l.st.LatestLedgerACLSignature(ctx)
	if errors.Is(err, store.ErrNotFound) || (err == nil && size <= seq) {
		if _, _, err := l.covering(ctx, seq+1); err != nil {
			if errors.Is(err, ErrFork) {
				return Record{}, ACLReceipt{}, err
			}
			// %v: a hash missing from the store is no "entry not found".
			return Record{}, ACLReceipt{}, fmt.Errorf("ledger: signing the tree for a receipt: %v", err)
		}
		size, signed, err = l.st.LatestLedgerACLSignature(ctx)
	}
	if err != nil {
		return Record{}, ACLReceipt{}, err
	}
	if size <= seq {
		return Record{}, ACLReceipt{}, fmt.Errorf("ledger: entry %d is not in the signed ACL tree of %d", seq, size)
	}
	root, sig, err := k.openRoot(signed)
	if err != nil {
		return Record{}, ACLReceipt{}, fmt.Errorf("%w: the ACL root of size %d: %v", ErrFork, size, err)
	}
	nodes, err := proof.Inclusion(uint64(seq), uint64(size))
	if err != nil {
		return Record{}, ACLReceipt{}, err
	}
	idx := make([]int64, len(nodes.IDs))
	for i, id := range nodes.IDs {
		idx[i] = tlog.StoredHashIndex(int(id.Level), int64(id.Index))
	}
	hs, err := l.st.LedgerACLHashes(ctx, idx)
	if err != nil {
		return Record{}, ACLReceipt{}, fmt.Errorf("ledger: ACL proof of %d in %d: %v", seq, size, err)
	}
	path, err := nodes.Rehash(slices32(hs), aclHashChildren)
	if err != nil {
		return Record{}, ACLReceipt{}, err
	}
	steps, err := leftRight(seq, size, path)
	if err != nil {
		return Record{}, ACLReceipt{}, err
	}
	leafBytes, err := rec.Leaf.Marshal()
	if err != nil {
		return Record{}, ACLReceipt{}, err
	}
	wsd := tlog.RecordHash(leafBytes)
	got, err := ACLRoot(k.aclLeaf(seq, wsd), steps)
	if err != nil || got != root {
		return Record{}, ACLReceipt{}, fmt.Errorf("%w: the ACL proof of entry %d does not lead to the signed root of %d", ErrFork, seq, size)
	}
	chain, err := k.Chain()
	if err != nil {
		return Record{}, ACLReceipt{}, err
	}
	r := ACLReceipt{
		Cert: pemCert(chain[0].Raw), NodeID: k.nodeID,
		WriteSetDigest: hex.EncodeToString(wsd[:]), CommitEvidence: k.commitEvidence(seq),
		ClaimsDigest: strings.Repeat("0", 64), Proof: steps,
		Signature: b64(sig), Size: size,
	}
	// Endorsements: the certificates between the node's and the service
	// certificate (the last of the chain, which the identity endpoint serves).
	for i := 1; i < len(chain)-1; i++ {
		r.ServiceEndorsements = append(r.ServiceEndorsements, pemCert(chain[i].Raw))
	}
	return rec, r, nil
}

func pemCert(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
