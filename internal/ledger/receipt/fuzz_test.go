package receipt

import (
	"bytes"
	"crypto/rand"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/formats/proof"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// oneEntryLog is a signed checkpoint of a tree of one leaf and that
// leaf's receipt, built from the formats alone.
func oneEntryLog(f *testing.F) (receipt, checkpoint []byte, v note.Verifier, contents []byte, salt [32]byte) {
	const origin = "kura.test/ledger"
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		f.Fatal(err)
	}
	s, _ := note.NewSigner(skey)
	v, _ = note.NewVerifier(vkey)
	contents, salt = []byte(`{"action":"key.release"}`), [32]byte{7}
	leaf, err := Leaf{Seq: 0, Time: time.UnixMilli(1_800_000_000_000).UTC(), Collection: "kura-audit", Commitment: Commit(salt, contents)}.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	root := tlog.RecordHash(leaf)
	checkpoint, err = note.Sign(&note.Note{Text: string(log.Checkpoint{Origin: origin, Size: 1, Hash: root[:]}.Marshal())}, s)
	if err != nil {
		f.Fatal(err)
	}
	return proof.TLogProof{Index: 0, Checkpoint: checkpoint, ExtraData: leaf}.Marshal(), checkpoint, v, contents, salt
}

// FuzzVerify: a receipt, however malformed, is refused with an error or
// accepted only as a proof of the entry (never a panic).
func FuzzVerify(f *testing.F) {
	rc, _, v, contents, salt := oneEntryLog(f)
	if _, _, err := Verify(rc, v.Name(), v, contents, salt); err != nil {
		f.Fatalf("the seed receipt: %v", err)
	}
	f.Add(rc)
	f.Add(bytes.Replace(rc, []byte("index 0"), []byte("index 1"), 1))
	f.Add([]byte("c2sp.org/tlog-proof@v1\nindex 0\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		leaf, tree, err := Verify(b, v.Name(), v, contents, salt)
		if err != nil {
			return
		}
		if leaf.Commitment != Commit(salt, contents) || leaf.Seq >= uint64(tree.N) {
			t.Fatalf("accepted a receipt of another entry: %+v in %d", leaf, tree.N)
		}
	})
}

// FuzzOpenCheckpoint: a checkpoint, however malformed, is refused or
// opens to the tree it states, signed by the key.
func FuzzOpenCheckpoint(f *testing.F) {
	_, cp, v, _, _ := oneEntryLog(f)
	f.Add(cp)
	f.Add(append(bytes.Clone(cp), "— other AAAA\n"...))
	f.Add([]byte("kura.test/ledger\n-1\nAAAA\n\n— kura.test/ledger AAAA\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tree, err := OpenCheckpoint(b, v.Name(), v)
		if err != nil {
			return
		}
		if _, err := note.Open(b, note.VerifierList(v)); err != nil || tree.N < 0 {
			t.Fatalf("opened %q to %+v, which its key does not sign: %v", b, tree, err)
		}
	})
}
