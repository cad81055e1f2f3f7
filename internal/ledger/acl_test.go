package ledger

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/ledger/acltest"
	"github.com/kura-project/kura/internal/store/sqlite"
)

// verifyACLReceipt judges r with acltest (ACL's algorithm, not kura's
// code), over the JSON ACL serves.
func verifyACLReceipt(r ACLReceipt, serviceCertPEM string) error {
	proof := []map[string]string{}
	for _, p := range r.Proof {
		switch {
		case p.Left != "":
			proof = append(proof, map[string]string{"left": p.Left})
		case p.Right != "":
			proof = append(proof, map[string]string{"right": p.Right})
		default:
			proof = append(proof, map[string]string{})
		}
	}
	b, err := json.Marshal(map[string]any{"cert": r.Cert, "nodeId": r.NodeID, "signature": r.Signature,
		"serviceEndorsements": r.ServiceEndorsements, "proof": proof,
		"leafComponents": map[string]string{"claimsDigest": r.ClaimsDigest, "commitEvidence": r.CommitEvidence, "writeSetDigest": r.WriteSetDigest}})
	if err != nil {
		return err
	}
	return acltest.Verify(b, serviceCertPEM)
}

// testCA issues node certificates, as the TLS CA does in kura.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test service"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: k}
}

func (ca *testCA) certify(pub *ecdsa.PublicKey, now time.Time) ([]*x509.Certificate, error) {
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: "node"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(90 * 24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(der)
	return []*x509.Certificate{c, ca.cert}, err
}

func (ca *testCA) pem() string { return pemCert(ca.cert.Raw) }

// aadSealer binds the associated data, as the real sealer does.
type aadSealer struct{}

func (aadSealer) Seal(p, aad []byte) ([]byte, error) {
	return append([]byte(string(aad)+"|"), p...), nil
}
func (aadSealer) Open(c, aad []byte) ([]byte, error) {
	pre := []byte(string(aad) + "|")
	if !bytes.HasPrefix(c, pre) {
		return nil, errors.New("wrong associated data")
	}
	return bytes.Clone(c[len(pre):]), nil
}

func newACLLog(t *testing.T) (*Log, *memStore, *testCA) {
	t.Helper()
	l, m, _ := newLog(t)
	ca := newTestCA(t)
	// The key rows in a SQLite store of their own (the tree in m).
	keys, err := sqlite.Open(filepath.Join(t.TempDir(), "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keys.Close() })
	k, err := OpenACLKey(context.Background(), keys, aadSealer{}, ca.certify, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.cfg.ACL = k
	return l, m, ca
}

// TestACLReceipts: every entry's ACL-shaped receipt verifies with ACL's
// algorithm against the service certificate alone, whether the entry was
// signed in its own checkpoint or in a later one; a change to any part
// of it does not.
func TestACLReceipts(t *testing.T) {
	l, _, ca := newACLLog(t)
	ctx := context.Background()
	var got []ACLReceipt
	for i := range 37 {
		if _, err := l.Append(ctx, "c", []byte(fmt.Sprint("entry ", i))); err != nil {
			t.Fatal(err)
		}
		if i%5 == 0 { // receipts in trees of many sizes
			_, r, err := l.ACLReceipt(ctx, int64(i))
			if err != nil {
				t.Fatal(err)
			}
			if r.Size != int64(i+1) {
				t.Errorf("entry %d: receipt in a tree of %d", i, r.Size)
			}
			got = append(got, r)
		}
	}
	for seq := range int64(37) {
		rec, r, err := l.ACLReceipt(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if err := verifyACLReceipt(r, ca.pem()); err != nil {
			t.Fatalf("entry %d (tree %d): %v", seq, r.Size, err)
		}
		leaf, _ := rec.Leaf.Marshal()
		if wsd := sha256.Sum256(append([]byte{0}, leaf...)); r.WriteSetDigest != hex.EncodeToString(wsd[:]) {
			t.Errorf("entry %d: writeSetDigest is not the entry's RFC 6962 leaf hash", seq)
		}
		if !strings.HasPrefix(r.CommitEvidence, "ce:"+TxID(seq)+":") || len(r.CommitEvidence) != len("ce:"+TxID(seq)+":")+64 {
			t.Errorf("entry %d: commit evidence %q", seq, r.CommitEvidence)
		}
	}
	for i, r := range got {
		if err := verifyACLReceipt(r, ca.pem()); err != nil {
			t.Errorf("earlier receipt %d (tree %d) no longer verifies: %v", i, r.Size, err)
		}
	}
	_, r, err := l.ACLReceipt(ctx, 20)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(s string) string {
		b := []byte(s)
		if b[3] == 'a' {
			b[3] = 'b'
		} else {
			b[3] = 'a'
		}
		return string(b)
	}
	other := newTestCA(t)
	for name, bad := range map[string]func(*ACLReceipt){
		"writeSetDigest": func(r *ACLReceipt) { r.WriteSetDigest = flip(r.WriteSetDigest) },
		"commitEvidence": func(r *ACLReceipt) { r.CommitEvidence = strings.Replace(r.CommitEvidence, TxID(20), TxID(21), 1) },
		"claimsDigest":   func(r *ACLReceipt) { r.ClaimsDigest = flip(r.ClaimsDigest) },
		"proof element": func(r *ACLReceipt) {
			r.Proof = append([]ACLProofStep{}, r.Proof...)
			if p := &r.Proof[1]; p.Left != "" {
				p.Left = flip(p.Left)
			} else {
				p.Right = flip(p.Right)
			}
		},
		"proof side": func(r *ACLReceipt) {
			r.Proof = append([]ACLProofStep{}, r.Proof...)
			r.Proof[0].Left, r.Proof[0].Right = r.Proof[0].Right, r.Proof[0].Left
		},
		"signature": func(r *ACLReceipt) { r.Signature = base64.StdEncoding.EncodeToString([]byte("x")) },
		"node id":   func(r *ACLReceipt) { r.NodeID = flip(r.NodeID) },
		"cert":      func(r *ACLReceipt) { r.Cert = other.pem() },
	} {
		c := r
		bad(&c)
		if err := verifyACLReceipt(c, ca.pem()); err == nil {
			t.Errorf("a receipt with a changed %s verifies", name)
		}
	}
	if err := verifyACLReceipt(r, other.pem()); err == nil {
		t.Error("the receipt verifies against another service certificate")
	}
}

// TestACLTamper: an ACL hash changed in the store yields an error, never a
// receipt; a leaf changed before it was integrated is never signed; and
// ACL hashes left by a crash before their root was signed are checked.
func TestACLTamper(t *testing.T) {
	ctx := context.Background()
	t.Run("stored proof node", func(t *testing.T) {
		l, m, _ := newACLLog(t)
		for i := range 8 {
			l.Append(ctx, "c", []byte{byte(i)})
		}
		if _, _, err := l.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		m.acl[0][0] ^= 1 // leaf 0: in every proof of leaf 1
		if _, _, err := l.ACLReceipt(ctx, 1); !errors.Is(err, ErrFork) {
			t.Errorf("receipt over a changed proof node: %v, want ErrFork", err)
		}
	})
	for _, warm := range []bool{false, true} {
		t.Run(fmt.Sprintf("leaf before integration, warm=%v", warm), func(t *testing.T) {
			l, m, _ := newACLLog(t)
			for i := range 5 {
				l.Append(ctx, "c", []byte{byte(i)})
			}
			if _, _, err := l.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				l.Append(ctx, "c", []byte{byte(10 + i)})
			}
			genuine := m.hashes[int(storedIndex(6))]
			m.hashes[int(storedIndex(6))][0] ^= 1 // a level-0 hash only: the tree's upper hashes still say otherwise
			if warm {
				// This process hashed entry 6 itself and still holds it:
				// it signs the ACL tree of the leaf it made, never the
				// stored one.
				if _, _, err := l.Checkpoint(ctx); err != nil {
					t.Fatal(err)
				}
				if _, r, err := l.ACLReceipt(ctx, 6); err != nil || r.WriteSetDigest != hex.EncodeToString(genuine[:]) {
					t.Errorf("the receipt of entry 6 after its stored hash changed: %v (%s)", err, r.WriteSetDigest)
				}
				return
			}
			l.forget() // as a process that did not make the entry
			if _, _, err := l.Checkpoint(ctx); !errors.Is(err, ErrFork) {
				t.Errorf("checkpoint over a changed leaf hash: %v, want ErrFork", err)
			}
			if n, _, _ := m.LatestLedgerACLSignature(ctx); n != 5 {
				t.Errorf("an ACL root was signed at %d", n)
			}
		})
	}
	t.Run("crash before the signature", func(t *testing.T) {
		l, m, ca := newACLLog(t)
		for i := range 6 {
			l.Append(ctx, "c", []byte{byte(i)})
		}
		l.Checkpoint(ctx)
		for i := range 4 {
			l.Append(ctx, "c", []byte{byte(10 + i)})
		}
		l.Checkpoint(ctx)
		delete(m.aclSigs, 10) // hashes of leaves 6..9 stored, their root not signed
		delete(m.cps, 10)
		l.last = nil
		_, r, err := l.ACLReceipt(ctx, 8)
		if err != nil {
			t.Fatal(err)
		}
		if err := verifyACLReceipt(r, ca.pem()); err != nil {
			t.Fatal(err)
		}
		delete(m.aclSigs, 10)
		delete(m.cps, 10)
		l.last = nil
		m.acl[len(m.acl)-1][5] ^= 1
		if _, _, err := l.Checkpoint(ctx); !errors.Is(err, ErrFork) {
			t.Errorf("checkpoint over a changed unsigned ACL hash: %v, want ErrFork", err)
		}
	})
}

func storedIndex(seq int64) int64 {
	// tlog.StoredHashIndex(0, seq), written out for the test
	var idx int64
	for n := seq; n > 0; n >>= 1 {
		idx += n
	}
	return idx
}

func TestTxID(t *testing.T) {
	for seq := range int64(1000) {
		got, err := ParseTxID(TxID(seq))
		if err != nil || got != seq {
			t.Fatalf("ParseTxID(TxID(%d)) = %d, %v", seq, got, err)
		}
	}
	for _, bad := range []string{"", "1", "1.", "1.0", "2.5", "1.-3", "1.01", "1.5x", ".5", "1.5.6", "1.99999999999999999999"} {
		if _, err := ParseTxID(bad); err == nil {
			t.Errorf("ParseTxID(%q) succeeded", bad)
		}
	}
}

// TestLeftRight: the labelled path of every leaf in trees up to 70 leads
// to the tree's root (the root from the proof, without prefixes).
func TestLeftRight(t *testing.T) {
	for size := int64(1); size <= 70; size++ {
		leaves := make([][]byte, size)
		r := aclRanges.NewEmptyRange(0)
		for i := range leaves {
			h := sha256.Sum256([]byte{byte(i)})
			leaves[i] = h[:]
			r.Append(h[:], nil)
		}
		root, _ := r.GetRootHash(nil)
		for i := int64(0); i < size; i++ {
			steps, err := leftRight(i, size, inclusionPath(leaves, i))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ACLRoot([32]byte(leaves[i]), steps)
			if err != nil || !bytes.Equal(got[:], root) {
				t.Fatalf("size %d leaf %d: root %x, want %x (%v)", size, i, got, root, err)
			}
		}
	}
}

// inclusionPath is RFC 9162's PATH(m, D[n]) with the ACL tree's hash,
// recursively, as the RFC defines it.
func inclusionPath(d [][]byte, m int64) [][]byte {
	n := int64(len(d))
	if n == 1 {
		return nil
	}
	k := int64(1)
	for k<<1 < n {
		k <<= 1
	}
	if m < k {
		return append(inclusionPath(d[:k], m), mth(d[k:]))
	}
	return append(inclusionPath(d[k:], m-k), mth(d[:k]))
}

func mth(d [][]byte) []byte {
	if len(d) == 1 {
		return d[0]
	}
	k := 1
	for k<<1 < len(d) {
		k <<= 1
	}
	return aclHashChildren(mth(d[:k]), mth(d[k:]))
}

// TestACLSignedBeforeCheckpoint: an ACL root kept when the checkpoint of
// the same size was not (a crash, a cancelled request between the two
// writes) does not stop later checkpoints; and two signers of one root
// store the same row.
func TestACLSignedBeforeCheckpoint(t *testing.T) {
	ctx := context.Background()
	l, m, ca := newACLLog(t)
	for i := range 6 {
		l.Append(ctx, "c", []byte{byte(i)})
	}
	if _, _, err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	delete(m.cps, 6)
	l.last = nil
	for i := range 3 {
		l.Append(ctx, "c", []byte{byte(20 + i)})
	}
	if _, _, err := l.Checkpoint(ctx); err != nil {
		t.Fatalf("checkpoint after an ACL root without its checkpoint: %v", err)
	}
	_, r, err := l.ACLReceipt(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyACLReceipt(r, ca.pem()); err != nil {
		t.Fatal(err)
	}
	root := sha256.Sum256([]byte("root"))
	a, err1 := l.cfg.ACL.signRoot(root[:])
	b, err2 := l.cfg.ACL.signRoot(root[:])
	if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
		t.Errorf("two signatures of one root differ (%v, %v): racing signers would conflict", err1, err2)
	}
}

func FuzzParseTxID(f *testing.F) {
	for _, s := range []string{"1.1", "1.42", "2.15", "1.0", "", "1.", ".1", "1.1.1", "1.99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		seq, err := ParseTxID(s)
		if err != nil {
			return
		}
		if seq < 0 || TxID(seq) != s {
			t.Fatalf("ParseTxID(%q) = %d, whose id is %q", s, seq, TxID(seq))
		}
	})
}
