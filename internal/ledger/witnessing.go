package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/kura-project/kura/internal/ledger/receipt"
	"github.com/kura-project/kura/internal/store"
)

// Witnesses is the log's witness policy (C2SP tlog-witness): the
// witnesses asked to cosign its checkpoints, and how many must before a
// checkpoint is published. Witnesses see the same checkpoint in a round,
// and a round runs at the caller's pace (Log.Witness), not per entry, so
// that they can keep up and agree.
type Witnesses struct {
	List   []Witness
	Quorum int // 1 to len(List)
}

// Witness is one witness: the verifier of its cosignatures (named as the
// witness) and the way to ask it.
type Witness struct {
	Verifier note.Verifier
	Cosigner Cosigner
}

// Cosigner asks a witness to cosign checkpoint given a consistency proof
// from old, the size it last cosigned; it returns the witness's note
// signature lines. internal/ledger/witness is the HTTP one.
type Cosigner interface {
	AddCheckpoint(ctx context.Context, old int64, proof tlog.TreeProof, checkpoint []byte) ([]byte, error)
}

// sizeConflict is a witness's answer that it holds the log at another
// size (tlog-witness's 409 with a size).
type sizeConflict interface{ WitnessSize() int64 }

// cosigned is a checkpoint with enough cosignatures.
type cosigned struct {
	tree   tlog.Tree
	signed []byte
}

// witnessState is what a Log keeps of its witnesses between rounds.
type witnessState struct {
	mu     sync.Mutex // one round at a time
	sizes  []int64    // each witness's size of the log, as last known (0: unknown)
	loaded bool       // the stored cosigned checkpoint was read
}

// Witness runs one witnessing round: the latest checkpoint, if it is new,
// is sent to every witness with a consistency proof from the size each
// last cosigned; once Quorum of them have cosigned, the checkpoint with
// their cosignatures is stored and published. It returns the tree
// published, or an error naming every witness that did not cosign (and
// then publishes nothing).
func (l *Log) Witness(ctx context.Context) (tlog.Tree, error) {
	p := l.cfg.Witnesses
	if p == nil {
		return tlog.Tree{}, errors.New("ledger: no witnesses are configured")
	}
	w := &l.wit
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.loaded {
		// A stored one that another witness policy cosigned is not
		// published; this round replaces it.
		if _, err := l.loadCosigned(ctx); err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, errPolicy) {
			return tlog.Tree{}, err
		}
		w.loaded = true
	}
	t, signed, err := l.Checkpoint(ctx) // rounds come at the caller's pace
	if err != nil {
		return tlog.Tree{}, err
	}
	if c := l.cosigned.Load(); c != nil && c.tree.N >= t.N {
		return c.tree, nil // nothing new to witness
	}
	if t.N == 0 {
		return t, nil
	}
	lines := make([][]byte, len(p.List))
	errs := make([]error, len(p.List))
	var wg sync.WaitGroup
	for i, wi := range p.List {
		wg.Go(func() {
			lines[i], errs[i] = l.cosign(ctx, wi, &w.sizes[i], t, signed)
		})
	}
	wg.Wait()
	out := bytes.Clone(signed)
	var got int
	var failed []error
	for i := range p.List {
		if errs[i] != nil {
			failed = append(failed, errs[i])
			continue
		}
		got++
		out = append(out, lines[i]...)
	}
	if got < p.Quorum {
		return tlog.Tree{}, fmt.Errorf("ledger: %d of %d witnesses cosigned the checkpoint of %d entries, %d needed; nothing published: %w",
			got, len(p.List), t.N, p.Quorum, errors.Join(failed...))
	}
	// Checked as a verifier will, before it is stored and served.
	if _, err := l.openCosigned(out); err != nil {
		return tlog.Tree{}, err
	}
	if err := l.st.PutLedgerCosigned(ctx, t.N, out); err != nil {
		return tlog.Tree{}, err
	}
	// The store keeps a larger one instead (another process's, or a
	// tampered size): said, not ignored. Served from here meanwhile.
	l.publish(&cosigned{t, out})
	if n, _, err := l.st.LatestLedgerCosigned(ctx); err != nil || n < t.N {
		return t, fmt.Errorf("ledger: the cosigned checkpoint of %d entries was not kept by the store (it holds size %d): %v", t.N, n, err)
	}
	if len(failed) > 0 {
		return t, fmt.Errorf("ledger: published the checkpoint of %d entries with %d of %d cosignatures: %w", t.N, got, len(p.List), errors.Join(failed...))
	}
	return t, nil
}

// cosign asks one witness to cosign the checkpoint signed (of t) and
// returns its verified cosignature lines. size is the witness's size of
// the log as last known, updated from its answers.
func (l *Log) cosign(ctx context.Context, w Witness, size *int64, t tlog.Tree, signed []byte) ([]byte, error) {
	name := w.Verifier.Name()
	for try := 0; ; try++ {
		old := *size
		if old > t.N {
			// Asked again from 0 next round: a witness that was reset
			// says so then.
			*size = 0
			return nil, fmt.Errorf("witness %s holds the log at %d entries, more than the %d signed here: the log was rolled back or another signer extended it", name, old, t.N)
		}
		var p tlog.TreeProof
		if old > 0 && old < t.N {
			var err error
			if p, err = tlog.ProveTree(t.N, old, l.reader(ctx)); err != nil {
				return nil, fmt.Errorf("witness %s: consistency proof %d → %d: %w", name, old, t.N, err)
			}
		}
		answer, err := w.Cosigner.AddCheckpoint(ctx, old, p, signed)
		var sc sizeConflict
		if errors.As(err, &sc) {
			*size = sc.WitnessSize() // its size, learnt
			if try == 0 && *size != old {
				continue // once more, from there
			}
		}
		if err != nil {
			return nil, fmt.Errorf("witness %s: %w", name, err)
		}
		lines, err := cosignatures(signed, answer, w.Verifier)
		if err != nil {
			return nil, fmt.Errorf("witness %s: %w", name, err)
		}
		*size = t.N
		return lines, nil
	}
}

// cosignatures are the lines of answer that are w's valid cosignatures of
// the checkpoint signed, as note signature lines. Each line is checked on
// its own over signed, so that an answer cannot move the note's text
// (a blank line in it would make note.Open verify over other text).
// Lines by other keys are dropped; one by w's key that does not verify
// refuses the answer.
func cosignatures(signed, answer []byte, w note.Verifier) ([]byte, error) {
	if len(answer) == 0 || answer[len(answer)-1] != '\n' {
		return nil, fmt.Errorf("the answer is not note signature lines: %q", snippet(answer))
	}
	var out []byte
	seen := map[string]bool{} // one line a key: note.Open refuses notes of over 100 signatures
	for _, line := range bytes.SplitAfter(answer, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if !bytes.HasPrefix(line, []byte("— ")) {
			return nil, fmt.Errorf("the answer is not note signature lines: %q", snippet(line))
		}
		n, err := note.Open(append(bytes.Clone(signed), line...), note.VerifierList(w))
		var unverified *note.UnverifiedNoteError
		if errors.As(err, &unverified) {
			continue // another key's
		}
		if err != nil {
			return nil, fmt.Errorf("the answer's cosignature does not verify with its key: %w", err)
		}
		if k := fmt.Sprintf("%s+%08x", n.Sigs[0].Name, n.Sigs[0].Hash); !seen[k] {
			seen[k] = true
			out = append(out, line...)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("the answer holds no cosignature of the checkpoint by its key")
	}
	return out, nil
}

func snippet(b []byte) string {
	s := string(b)
	if len(s) > 120 {
		s = strings.ToValidUTF8(s[:120], "") + "…"
	}
	return strings.TrimSpace(s)
}

// errPolicy marks a cosigned checkpoint whose cosignatures do not meet
// the configured witness policy (another policy's, or tampered with).
var errPolicy = errors.New("ledger: the cosignatures do not meet the witness policy")

// openCosigned verifies a cosigned checkpoint: the log's signature
// (ErrFork if not), and valid cosignatures of at least Quorum of the
// configured witnesses (errPolicy if not).
func (l *Log) openCosigned(signed []byte) (tlog.Tree, error) {
	t, err := receipt.OpenCheckpoint(signed, l.cfg.Origin, l.cfg.Verifier)
	if err != nil {
		return tlog.Tree{}, fmt.Errorf("%w: a cosigned checkpoint: %v", ErrFork, err)
	}
	if _, err := receipt.CheckCosignatures(signed, l.cfg.Witnesses.verifiers(), l.cfg.Witnesses.Quorum); err != nil {
		return tlog.Tree{}, fmt.Errorf("%w: %v", errPolicy, err)
	}
	return t, nil
}

func (p *Witnesses) verifiers() []note.Verifier {
	vs := make([]note.Verifier, len(p.List))
	for i, w := range p.List {
		vs[i] = w.Verifier
	}
	return vs
}

// loadCosigned reads the stored cosigned checkpoint, verified, into the
// log's published state.
func (l *Log) loadCosigned(ctx context.Context) (*cosigned, error) {
	size, signed, err := l.st.LatestLedgerCosigned(ctx)
	if err != nil {
		return nil, err
	}
	if c := l.cosigned.Load(); c != nil && c.tree.N == size && bytes.Equal(c.signed, signed) {
		return c, nil
	}
	t, err := l.openCosigned(signed)
	if err != nil {
		return nil, fmt.Errorf("the stored cosigned checkpoint of size %d: %w", size, err)
	}
	if t.N != size {
		return nil, fmt.Errorf("%w: the stored cosigned checkpoint is filed under size %d and is of %d", ErrFork, size, t.N)
	}
	if err := l.extendsSigned(ctx, t); err != nil {
		return nil, err
	}
	c := &cosigned{t, signed}
	l.publish(c)
	return c, nil
}

// extendsSigned checks that the current tree extends t.
func (l *Log) extendsSigned(ctx context.Context, t tlog.Tree) error {
	cur, err := l.Tree(ctx)
	if err != nil {
		return err
	}
	if cur.N < t.N {
		return fmt.Errorf("%w: the tree has %d entries, a cosigned checkpoint was signed at %d", ErrFork, cur.N, t.N)
	}
	return l.extends(ctx, t, cur)
}

// Published is the checkpoint the log publishes: with witnesses, the
// latest that a quorum cosigned (until the first is, the latest signed);
// without, the latest signed (Latest). Either way Latest's cadenced check
// runs, so a tree rewritten under a cosigned checkpoint is refused
// (ErrFork) within a second, as without witnesses.
func (l *Log) Published(ctx context.Context) (tlog.Tree, []byte, error) {
	lt, lsigned, err := l.Latest(ctx)
	if err != nil || l.cfg.Witnesses == nil {
		return lt, lsigned, err
	}
	c, err := l.loadCosigned(ctx)
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, errPolicy) {
		return tlog.Tree{}, nil, err
	}
	// The larger of the stored and the one this process verified: a row
	// deleted or spoilt in the database does not take it back.
	if mem := l.cosigned.Load(); mem != nil && (c == nil || mem.tree.N > c.tree.N) {
		c = mem
	}
	if c == nil {
		return lt, lsigned, nil // none yet under this policy
	}
	return c.tree, c.signed, nil
}

// publish makes c the cosigned checkpoint known here unless a larger one
// is.
func (l *Log) publish(c *cosigned) {
	for {
		old := l.cosigned.Load()
		if old != nil && old.tree.N >= c.tree.N {
			return
		}
		if l.cosigned.CompareAndSwap(old, c) {
			return
		}
	}
}
