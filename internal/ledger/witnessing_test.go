package ledger

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/kura-project/kura/internal/ledger/receipt"
	"github.com/kura-project/kura/internal/ledger/witness"
)

// testWitness is a witness as C2SP tlog-witness specifies one, in
// memory: it checks the log's signature, the old size against the one it
// last cosigned and the consistency proof, then cosigns (formats'
// cosignature/v1 signer).
type testWitness struct {
	mu     sync.Mutex
	signer *fnote.Signer
	logV   note.Verifier
	size   int64
	root   tlog.Hash
	down   error         // answered instead, when set
	answer func() []byte // answered instead of the cosignature, when set
	calls  int
}

func newTestWitness(t testing.TB, name string, logV note.Verifier) *testWitness {
	t.Helper()
	skey, _, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	return &testWitness{signer: s, logV: logV}
}

func (w *testWitness) witness() Witness { return Witness{Verifier: w.signer.Verifier(), Cosigner: w} }

func (w *testWitness) AddCheckpoint(_ context.Context, old int64, proof tlog.TreeProof, cp []byte) ([]byte, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	if w.down != nil {
		return nil, w.down
	}
	t, err := receipt.OpenCheckpoint(cp, w.logV.Name(), w.logV)
	if err != nil {
		return nil, fmt.Errorf("403: %v", err)
	}
	if old != w.size {
		return nil, &witness.ConflictError{Size: w.size}
	}
	switch {
	case old > t.N:
		return nil, errors.New("400: old size over the checkpoint's")
	case old == t.N && t.Hash != w.root:
		return nil, errors.New("409: another root")
	case old > 0 && old < t.N:
		if err := tlog.CheckTree(proof, t.N, t.Hash, old, w.root); err != nil {
			return nil, fmt.Errorf("422: %v", err)
		}
	case old == 0 && len(proof) != 0:
		return nil, errors.New("422: a proof from 0")
	}
	w.size, w.root = t.N, t.Hash
	if w.answer != nil {
		return w.answer(), nil
	}
	n, err := note.Open(cp, note.VerifierList(w.logV))
	if err != nil {
		return nil, err
	}
	signed, err := note.Sign(&note.Note{Text: n.Text}, w.signer)
	if err != nil {
		return nil, err
	}
	return signed[bytes.Index(signed, []byte("\n\n"))+2:], nil
}

// witnessedLog is a log over m with witnesses ws (quorum q).
func witnessedLog(t *testing.T, m *memStore, signer note.Signer, v note.Verifier, q int, ws ...*testWitness) *Log {
	t.Helper()
	p := &Witnesses{Quorum: q}
	for _, w := range ws {
		p.List = append(p.List, w.witness())
	}
	l, err := New(m, Config{Origin: origin, Signer: signer, Verifier: v, Tx: m.tx, Witnesses: p})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func logKey(t testing.TB) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func appendN(t *testing.T, l *Log, n int) {
	t.Helper()
	for range n {
		if _, err := l.Append(context.Background(), "c", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWitnessing: a checkpoint is published once a quorum of witnesses
// cosigned it; the cosignatures verify with the witnesses' keys (x/mod's
// note.Open over formats' cosignature verifier); receipts carry the
// cosigned checkpoint; witnesses get consistency proofs from the size
// they hold, and one that is down, lies or is ahead of the log is named
// and not counted.
func TestWitnessing(t *testing.T) {
	ctx := context.Background()
	signer, v := logKey(t)
	m := newMem()
	w1, w2 := newTestWitness(t, "w1.example/w", v), newTestWitness(t, "w2.example/w", v)
	l := witnessedLog(t, m, signer, v, 2, w1, w2)

	// Nothing cosigned yet: the latest signed checkpoint is published.
	appendN(t, l, 3)
	if _, cp, err := l.Published(ctx); err != nil || bytes.Contains(cp, []byte("— w1")) {
		t.Fatalf("published before witnessing: %v\n%s", err, cp)
	}
	tr, err := l.Witness(ctx)
	if err != nil || tr.N != 3 {
		t.Fatalf("witness: %v %d", err, tr.N)
	}
	pt, cp, err := l.Published(ctx)
	if err != nil || pt != tr {
		t.Fatalf("published: %v %+v", err, pt)
	}
	n, err := note.Open(cp, note.VerifierList(v, w1.signer.Verifier(), w2.signer.Verifier()))
	if err != nil || len(n.Sigs) != 3 {
		t.Fatalf("the published checkpoint with the log's and witnesses' keys: %v %+v", err, n)
	}
	if names, err := receipt.CheckCosignatures(cp, []note.Verifier{w1.signer.Verifier(), w2.signer.Verifier()}, 2); err != nil || len(names) != 2 {
		t.Errorf("cosignatures: %v %v", names, err)
	}
	// A receipt of an entry the cosigned checkpoint holds carries it.
	rec, rcpt, err := l.Receipt(ctx, 1)
	if err != nil || !bytes.Contains(rcpt, []byte("— w2.example/w ")) {
		t.Fatalf("receipt: %v\n%s", err, rcpt)
	}
	if _, _, err := receipt.Verify(rcpt, origin, v, rec.Contents, rec.Salt); err != nil {
		t.Errorf("the cosigned rcpt: %v", err)
	}

	// Nothing new: the witnesses are not asked again.
	if _, err := l.Witness(ctx); err != nil || w1.calls != 1 {
		t.Errorf("a round with nothing new: %v, %d calls", err, w1.calls)
	}
	// More entries: each witness gets the proof from 3 (the fake checks it).
	appendN(t, l, 4)
	if tr, err := l.Witness(ctx); err != nil || tr.N != 7 || w1.size != 7 || w2.size != 7 {
		t.Fatalf("second round: %v %d (%d %d)", err, tr.N, w1.size, w2.size)
	}

	// w2 down with a quorum of 2: nothing new is published, and the error
	// names it.
	w2.down = errors.New("connection refused")
	appendN(t, l, 1)
	if _, err := l.Witness(ctx); err == nil || !strings.Contains(err.Error(), "w2.example/w") || !strings.Contains(err.Error(), "1 of 2") {
		t.Errorf("w2 down: %v", err)
	}
	if pt, _, _ := l.Published(ctx); pt.N != 7 {
		t.Errorf("published %d with a witness down, want the cosigned 7", pt.N)
	}
	w2.down = nil

	// A new process (it knows no witness's size): w1 and w2 answer 409
	// with theirs; it resends from there. It publishes what is stored
	// until then.
	l2 := witnessedLog(t, m, signer, v, 2, w1, w2)
	if pt, _, err := l2.Published(ctx); err != nil || pt.N != 7 {
		t.Errorf("published by a new process: %v %d", err, pt.N)
	}
	if tr, err := l2.Witness(ctx); err != nil || tr.N != 8 {
		t.Fatalf("round after a restart: %v %d", err, tr.N)
	}

	// Refusals: a cosignature by another key, a witness ahead of the log.
	liar := newTestWitness(t, "w2.example/w", v)
	w2.answer = func() []byte {
		n, _ := note.Open(mustCheckpoint(t, l2), note.VerifierList(v))
		signed, _ := note.Sign(&note.Note{Text: n.Text}, liar.signer)
		return signed[bytes.Index(signed, []byte("\n\n"))+2:]
	}
	appendN(t, l2, 1)
	if _, err := l2.Witness(ctx); err == nil || !strings.Contains(err.Error(), "no cosignature of the checkpoint by its key") {
		t.Errorf("a cosignature by another key: %v", err)
	}
	w2.answer = func() []byte { return []byte("ok\n") }
	appendN(t, l2, 1)
	if _, err := l2.Witness(ctx); err == nil || !strings.Contains(err.Error(), "not note signature lines") {
		t.Errorf("an answer that is no signature: %v", err)
	}
	w2.answer = nil
	w1.size = 1000
	appendN(t, l2, 1)
	if _, err := l2.Witness(ctx); err == nil || !strings.Contains(err.Error(), "holds the log at 1000 entries") {
		t.Errorf("a witness ahead of the log: %v", err)
	}
	// None of the refused rounds published anything.
	if pt, _, err := l2.Published(ctx); err != nil || pt.N != 8 {
		t.Errorf("published after refused rounds: %v %d, want 8", err, pt.N)
	}
	// The witness reset (it holds nothing now): the next round asks it
	// from 0 again and it cosigns.
	w1.size, w1.root = 0, tlog.Hash{}
	if tr, err := l2.Witness(ctx); err != nil || tr.N != 11 {
		t.Errorf("after the witness was reset: %v %d", err, tr.N)
	}
}

// TestWitnessAnswerCannotMoveTheText: a witness whose answer holds a
// blank line (so that note.Open would read the lines after it as
// signatures over other text) is not counted, and does not stop the
// other witnesses' quorum from publishing.
func TestWitnessAnswerCannotMoveTheText(t *testing.T) {
	ctx := context.Background()
	signer, v := logKey(t)
	m := newMem()
	w1, w2, bad := newTestWitness(t, "w1.example/w", v), newTestWitness(t, "w2.example/w", v), newTestWitness(t, "w3.example/w", v)
	l := witnessedLog(t, m, signer, v, 2, w1, w2, bad)
	appendN(t, l, 2)
	bad.answer = func() []byte {
		// A valid signature over the checkpoint, its log signature and a
		// junk line: what note.Open would verify if the answer's blank
		// line became the note's split.
		cp := mustCheckpoint(t, l)
		junk := "— w3.example/w AAAAAAAA\n"
		n := &note.Note{Text: string(cp) + junk}
		sig, err := note.Sign(n, bad.signer)
		if err != nil {
			t.Fatal(err)
		}
		return []byte(junk + "\n" + string(sig[len(n.Text)+1:]))
	}
	tr, err := l.Witness(ctx)
	if tr.N != 2 || err == nil || !strings.Contains(err.Error(), "w3.example/w") || !strings.Contains(err.Error(), "2 of 3") {
		t.Fatalf("round: %d %v", tr.N, err)
	}
	if _, cp, err := l.Published(ctx); err != nil || bytes.Contains(cp, []byte("— w3.example/w")) || !bytes.Contains(cp, []byte("— w2.example/w")) {
		t.Errorf("published: %v\n%s", err, cp)
	}
}

// TestPublishedChecksTheTree: a tree cut back under the cosigned
// checkpoint is refused (ErrFork) by Published once its cadenced check
// runs; a cosigned row deleted from the database does not take back the
// checkpoint this process verified.
func TestPublishedChecksTheTree(t *testing.T) {
	ctx := context.Background()
	signer, v := logKey(t)
	m := newMem()
	w1 := newTestWitness(t, "w1.example/w", v)
	l := witnessedLog(t, m, signer, v, 1, w1)
	appendN(t, l, 3)
	if _, err := l.Witness(ctx); err != nil {
		t.Fatal(err)
	}
	m.cos = nil // the row deleted
	if pt, cp, err := l.Published(ctx); err != nil || pt.N != 3 || !bytes.Contains(cp, []byte("— w1.example/w")) {
		t.Errorf("published with the row deleted: %v %d\n%s", err, pt.N, cp)
	}
	// The tree cut back to 2 entries.
	m.mu.Lock()
	m.records = m.records[:2]
	m.hashes = m.hashes[:tlog.StoredHashIndex(0, 2)]
	m.mu.Unlock()
	l.forget()
	l.signedAt.Store(0) // the cadenced check is due
	if _, _, err := l.Published(ctx); !errors.Is(err, ErrFork) {
		t.Errorf("published over a tree cut back: %v, want a fork", err)
	}
}

func mustCheckpoint(t *testing.T, l *Log) []byte {
	_, cp, err := l.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// TestWitnessedTamper: the stored cosigned checkpoint is checked when
// read: a changed cosignature, or another witness policy, is not
// published (the latest signed checkpoint is, until a round replaces
// it); a changed log signature is refused as a fork.
func TestWitnessedTamper(t *testing.T) {
	ctx := context.Background()
	signer, v := logKey(t)
	m := newMem()
	w1 := newTestWitness(t, "w1.example/w", v)
	l := witnessedLog(t, m, signer, v, 1, w1)
	appendN(t, l, 2)
	if _, err := l.Witness(ctx); err != nil {
		t.Fatal(err)
	}
	good := bytes.Clone(m.cos)
	lines := strings.Split(strings.TrimSuffix(string(good), "\n"), "\n")
	flip := func(line string) string { // changes a signature byte, keeps the key id
		name, b64, _ := strings.Cut(strings.TrimPrefix(line, "— "), " ")
		i := len(b64) - 6
		c := byte('A')
		if b64[i] == 'A' {
			c = 'B'
		}
		return "— " + name + " " + b64[:i] + string(c) + b64[i+1:]
	}
	cases := []struct {
		name    string
		edit    func() []byte
		fork    bool
		witness []*testWitness // another policy, when set
	}{
		{name: "cosignature changed", edit: func() []byte {
			ls := slicesClone(lines)
			ls[len(ls)-1] = flip(ls[len(ls)-1])
			return []byte(strings.Join(ls, "\n") + "\n")
		}},
		{name: "cosignature removed", edit: func() []byte { return []byte(strings.Join(lines[:len(lines)-1], "\n") + "\n") }},
		{name: "log signature changed", fork: true, edit: func() []byte {
			ls := slicesClone(lines)
			ls[len(ls)-2] = flip(ls[len(ls)-2])
			return []byte(strings.Join(ls, "\n") + "\n")
		}},
		{name: "another witness policy", witness: []*testWitness{newTestWitness(t, "w3.example/w", v)}, edit: func() []byte { return good }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m.cosSize, m.cos = 2, c.edit()
			ws := c.witness
			if ws == nil {
				ws = []*testWitness{w1}
			}
			l := witnessedLog(t, m, signer, v, 1, ws...)
			pt, cp, err := l.Published(ctx)
			if c.fork {
				if !errors.Is(err, ErrFork) {
					t.Errorf("published: %v, want a fork", err)
				}
				return
			}
			if err != nil || bytes.Contains(cp, []byte("— w")) || pt.N < 2 {
				t.Fatalf("published: %v %d\n%s", err, pt.N, cp)
			}
			// The next round replaces it.
			appendN(t, l, 1)
			if _, err := l.Witness(ctx); err != nil {
				t.Fatal(err)
			}
			if _, cp, err := l.Published(ctx); err != nil || !bytes.Contains(cp, []byte("— "+ws[0].signer.Name()+" ")) {
				t.Errorf("after a round: %v\n%s", err, cp)
			}
		})
	}
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }

// TestWitnessPolicy: New refuses a quorum the list cannot meet and a
// witness listed twice; CheckCosignatures refuses too few.
func TestWitnessPolicy(t *testing.T) {
	signer, v := logKey(t)
	w1, w2 := newTestWitness(t, "w1.example/w", v), newTestWitness(t, "w2.example/w", v)
	for _, c := range []struct {
		name string
		p    Witnesses
	}{
		{"quorum 0", Witnesses{List: []Witness{w1.witness()}}},
		{"quorum over the list", Witnesses{List: []Witness{w1.witness()}, Quorum: 2}},
		{"no witnesses", Witnesses{Quorum: 1}},
		{"listed twice", Witnesses{List: []Witness{w1.witness(), w1.witness()}, Quorum: 1}},
		{"no client", Witnesses{List: []Witness{{Verifier: w1.signer.Verifier()}}, Quorum: 1}},
	} {
		m := newMem()
		if _, err := New(m, Config{Origin: origin, Signer: signer, Verifier: v, Tx: m.tx, Witnesses: &c.p}); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
	m := newMem()
	l := witnessedLog(t, m, signer, v, 1, w1)
	appendN(t, l, 1)
	if _, err := l.Witness(context.Background()); err != nil {
		t.Fatal(err)
	}
	vs := []note.Verifier{w1.signer.Verifier(), w2.signer.Verifier()}
	if _, err := receipt.CheckCosignatures(m.cos, vs, 2); err == nil || !strings.Contains(err.Error(), "1 of the witnesses") {
		t.Errorf("1 cosignature, 2 needed: %v", err)
	}
	if _, err := receipt.CheckCosignatures(m.cos, vs[1:], 1); err == nil || !strings.Contains(err.Error(), "no cosignature") {
		t.Errorf("none by the witness asked for: %v", err)
	}
	if _, err := receipt.CheckCosignatures(m.cos, vs, 3); err == nil {
		t.Error("a quorum over the list: accepted")
	}
}

// FuzzCosignatures: a witness's answer, whatever it holds, is either
// refused or yields only lines that are the witness's valid cosignatures.
func FuzzCosignatures(f *testing.F) {
	signer, v := logKey(f)
	w := newTestWitness(f, "w.example/w", v)
	cp, err := signCheckpoint(origin, tlog.Tree{N: 3}, signer)
	if err != nil {
		f.Fatal(err)
	}
	good, err := w.AddCheckpoint(context.Background(), 0, nil, cp)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte("— w.example/w AAAA\n"))
	f.Add([]byte("— w.example/w " + strings.Repeat("A", 200) + "\n— other x\n"))
	f.Add([]byte("\n\n— \n"))
	f.Fuzz(func(t *testing.T, answer []byte) {
		lines, err := cosignatures(cp, answer, w.signer.Verifier())
		if err != nil {
			return
		}
		n, err := note.Open(append(bytes.Clone(cp), lines...), note.VerifierList(w.signer.Verifier()))
		if err != nil || len(n.Sigs) == 0 || len(n.UnverifiedSigs) != 1 {
			t.Fatalf("accepted lines %q: %v", lines, err)
		}
	})
}

// TestWitnessRepeatedLines: a witness that repeats its valid cosignature
// (a note of over 100 signatures would not open) counts once, and the
// published checkpoint carries it once.
func TestWitnessRepeatedLines(t *testing.T) {
	ctx := context.Background()
	signer, v := logKey(t)
	m := newMem()
	w1, w2 := newTestWitness(t, "w1.example/w", v), newTestWitness(t, "w2.example/w", v)
	l := witnessedLog(t, m, signer, v, 2, w1, w2)
	appendN(t, l, 2)
	w2.answer = func() []byte {
		n, _ := note.Open(mustCheckpoint(t, l), note.VerifierList(v))
		sig, _ := note.Sign(&note.Note{Text: n.Text}, w2.signer)
		return bytes.Repeat(sig[len(n.Text)+1:], 120)
	}
	if tr, err := l.Witness(ctx); err != nil || tr.N != 2 {
		t.Fatalf("round: %v %d", err, tr.N)
	}
	if _, cp, err := l.Published(ctx); err != nil || bytes.Count(cp, []byte("— w2.example/w ")) != 1 {
		t.Errorf("published: %v\n%s", err, cp)
	}
}
