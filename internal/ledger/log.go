// Package ledger is kura's confidential ledger: an append-only RFC 9162
// (RFC 6962 hashing) Merkle log of entries, each a leaf that commits to
// its contents under a salt of its own; signed C2SP checkpoints
// (checkpoint.go); inclusion receipts in the c2sp.org/tlog-proof form and
// consistency proofs, both verifiable offline with nothing but the log's
// origin and verifier key (the leaf format and the verifiers are package
// receipt, which links nothing of the server); witnesses' cosignatures
// (witnessing.go).
//
// The logic is written once over Store, which a storage engine implements
// (sequencing is fenced by the tree size there, so two appenders can never
// both extend the tree). The hashes are x/mod/sumdb/tlog's stored hashes,
// so the log's tiles are the standard ones.
package ledger

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/formats/proof"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/kura-project/kura/internal/fault"
	"github.com/kura-project/kura/internal/ledger/receipt"
	"github.com/kura-project/kura/internal/store"
)

// Record is one entry as stored: its leaf, its contents and the salt of
// its commitment.
type Record struct {
	Leaf     receipt.Leaf
	Contents []byte
	Salt     [32]byte
}

// Store is what the ledger needs of storage: store.Ledger, which every
// engine implements and store/storetest checks.
type Store interface {
	LedgerSize(ctx context.Context) (int64, error)
	LedgerHashes(ctx context.Context, indexes []int64) ([][32]byte, error)
	AppendLedger(ctx context.Context, es []store.LedgerEntry, hashes [][32]byte) error
	GetLedgerEntry(ctx context.Context, seq int64) (store.LedgerEntry, error)
	PutLedgerCheckpoint(ctx context.Context, size int64, signed []byte) error
	GetLedgerCheckpoint(ctx context.Context, size int64) ([]byte, error)
	LatestLedgerCheckpoint(ctx context.Context) (int64, []byte, error)
	PutLedgerCosigned(ctx context.Context, size int64, signed []byte) error
	LatestLedgerCosigned(ctx context.Context) (int64, []byte, error)

	LedgerACLSize(ctx context.Context) (int64, error)
	LedgerACLHashes(ctx context.Context, indexes []int64) ([][32]byte, error)
	AppendLedgerACL(ctx context.Context, from, to int64, hashes [][32]byte) error
	PutLedgerACLSignature(ctx context.Context, size int64, signed []byte) error
	LatestLedgerACLSignature(ctx context.Context) (int64, []byte, error)

	ListLedgerEntries(ctx context.Context, collection string, from, to int64, limit int) ([]store.LedgerEntry, error)
	LastLedgerEntry(ctx context.Context, collection string) (store.LedgerEntry, error)
	LedgerCollections(ctx context.Context) ([]string, error)
}

// entry is r as the store keeps it.
func entry(r Record) (store.LedgerEntry, error) {
	leaf, err := r.Leaf.Marshal()
	if err != nil {
		return store.LedgerEntry{}, err
	}
	return store.LedgerEntry{Seq: int64(r.Leaf.Seq), Collection: r.Leaf.Collection, Leaf: leaf, Contents: r.Contents, Salt: r.Salt[:]}, nil
}

// record reads a stored entry; the store is untrusted, so what it says of
// the entry must agree with the leaf (which the tree authenticates).
func record(e store.LedgerEntry) (Record, error) {
	leaf, err := receipt.ParseLeaf(e.Leaf)
	if err != nil {
		return Record{}, fmt.Errorf("ledger entry %d: %w", e.Seq, err)
	}
	if int64(leaf.Seq) != e.Seq || leaf.Collection != e.Collection || len(e.Salt) != 32 {
		return Record{}, fmt.Errorf("ledger entry %d: the stored row disagrees with its leaf", e.Seq)
	}
	r := Record{Leaf: leaf, Contents: e.Contents}
	copy(r.Salt[:], e.Salt)
	if receipt.Commit(r.Salt, r.Contents) != leaf.Commitment {
		return Record{}, fmt.Errorf("ledger entry %d: the stored contents are not the ones its leaf commits to", e.Seq)
	}
	return r, nil
}

// Config configures a Log.
type Config struct {
	Origin   string        // the checkpoints' origin line, e.g. "kura.example/ledger"
	Signer   note.Signer   // Ed25519 note signer named Origin
	Verifier note.Verifier // its verifier: a new checkpoint is signed only over an extension of the last
	Now      func() time.Time
	// Tx runs f in one transaction of the store (appends are read, then
	// written, together); with SQLite's group commit concurrent appends
	// share one durable commit.
	Tx func(ctx context.Context, f func(Store) error) error
	// ACL, when set, signs the ACL-shaped tree with every checkpoint, for
	// receipts in Azure Confidential Ledger's shape (acl.go).
	ACL *ACLKey
	// Witnesses, when set, cosign checkpoints (witnessing.go): Published
	// then serves the latest cosigned one, and receipts carry it when it
	// holds their entry.
	Witnesses *Witnesses
}

// Log is the ledger over a Store.
type Log struct {
	cfg Config
	st  Store

	hashes hashCache
	recent recentRecords

	mu         sync.Mutex // one checkpoint signer at a time in this process
	last       *tlog.Tree // the largest tree this process signed or verified as signed
	lastSigned []byte     // its checkpoint
	aclSt      *aclState  // the ACL tree as last signed and committed here

	qmu      sync.Mutex // the append queue
	queue    []*queued
	leading  bool         // a goroutine is committing batches
	signedAt atomic.Int64 // when Checkpoint last ran (Unix ns), for Latest's cadence

	wit      witnessState
	cosigned atomic.Pointer[cosigned] // the latest cosigned checkpoint known here
}

// New returns the log over st.
func New(st Store, cfg Config) (*Log, error) {
	if cfg.Signer == nil || cfg.Signer.Name() != cfg.Origin || cfg.Origin == "" {
		return nil, errors.New("ledger: the signer must be named as the origin")
	}
	if cfg.Verifier == nil || cfg.Verifier.Name() != cfg.Origin || cfg.Verifier.KeyHash() != cfg.Signer.KeyHash() {
		return nil, errors.New("ledger: the verifier must be the signer's")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Tx == nil {
		return nil, errors.New("ledger: no transaction runner")
	}
	l := &Log{cfg: cfg, st: st}
	if p := cfg.Witnesses; p != nil {
		if len(p.List) == 0 || p.Quorum < 1 || p.Quorum > len(p.List) {
			return nil, fmt.Errorf("ledger: a witness quorum of %d of %d witnesses", p.Quorum, len(p.List))
		}
		seen := map[string]bool{}
		for _, w := range p.List {
			if w.Verifier == nil || w.Cosigner == nil {
				return nil, errors.New("ledger: a witness without its key or its client")
			}
			k := w.Verifier.Name() // one key a witness: the quorum counts witnesses
			if seen[k] {
				return nil, fmt.Errorf("ledger: witness %s is listed twice", w.Verifier.Name())
			}
			seen[k] = true
		}
		l.wit.sizes = make([]int64, len(p.List))
	}
	return l, nil
}

// reader reads the committed tree through the hash cache.
func (l *Log) reader(ctx context.Context) tlog.HashReader {
	return cachedReader{&l.hashes, reader{ctx, l.st}, true}
}

// reader adapts a Store to tlog's hash reader.
type reader struct {
	ctx context.Context
	st  Store
}

func (r reader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	hs, err := r.st.LedgerHashes(r.ctx, indexes)
	if err != nil {
		return nil, err
	}
	out := make([]tlog.Hash, len(hs))
	for i, h := range hs {
		out[i] = h
	}
	return out, nil
}

// Append adds an entry and returns it as stored, sequenced, once it is
// durable. Concurrent appends are sequenced together: one goroutine takes
// every append queued (up to maxAppendBatch), hashes them into the tree
// and stores them in one transaction and so one durable commit, so a
// writer waits for about one commit, whatever the number of writers.
func (l *Log) Append(ctx context.Context, collection string, contents []byte) (Record, error) {
	if err := checkCollection(collection); err != nil {
		return Record{}, err // one bad entry must not fail the batch it would join
	}
	p := &queued{ctx: ctx, collection: collection, contents: contents, done: make(chan struct{})}
	l.qmu.Lock()
	l.queue = append(l.queue, p)
	if !l.leading {
		l.leading = true
		go l.leadAppends()
	}
	l.qmu.Unlock()
	select {
	case <-p.done:
		return p.rec, p.err
	case <-ctx.Done():
		// Taken into a batch or not, the caller has gone: unacknowledged.
		return Record{}, fmt.Errorf("ledger append: %w", ctx.Err())
	}
}

// maxAppendBatch bounds the entries of one commit.
const maxAppendBatch = 4096

// queued is one Append waiting for its batch.
type queued struct {
	ctx        context.Context // a caller gone before its batch is taken is left out
	collection string
	contents   []byte
	rec        Record
	err        error
	done       chan struct{}
}

// leadAppends commits batches until no append is queued.
func (l *Log) leadAppends() {
	for {
		l.qmu.Lock()
		n := min(len(l.queue), maxAppendBatch)
		if n == 0 {
			l.leading = false
			l.qmu.Unlock()
			return
		}
		batch := make([]*queued, 0, n)
		for _, q := range l.queue[:n] {
			if err := q.ctx.Err(); err != nil {
				q.err = fmt.Errorf("ledger append: %w", err) // never written
				close(q.done)
				continue
			}
			batch = append(batch, q)
		}
		l.queue = append(l.queue[:0], l.queue[n:]...)
		l.qmu.Unlock()
		if len(batch) == 0 {
			continue
		}
		items := make([]item, len(batch))
		for i, q := range batch {
			items[i] = item{q.collection, q.contents}
		}
		var recs []Record
		var made *batchReader
		// No caller's context may end a commit the others share.
		err := l.cfg.Tx(context.Background(), func(tx Store) error {
			var err error
			recs, made, err = l.appendBatch(context.Background(), tx, items)
			return err
		})
		if err == nil {
			l.hashes.put(made.base, made.batch) // committed
			l.recent.put(recs)
		}
		for i, q := range batch {
			if err != nil {
				q.err = err
			} else {
				q.rec = recs[i]
			}
			close(q.done)
		}
	}
}

// AppendTx adds an entry inside a transaction of the caller's (the audit
// record of a change, written with the change): it is durable when that
// transaction commits, and gone if it rolls back.
func (l *Log) AppendTx(ctx context.Context, tx store.Store, collection string, contents []byte) (int64, error) {
	recs, _, err := l.appendBatch(ctx, tx, []item{{collection, contents}})
	if err != nil {
		return 0, err
	}
	return int64(recs[0].Leaf.Seq), nil
}

// item is an entry to append.
type item struct {
	collection string
	contents   []byte
}

func checkCollection(c string) error {
	if _, err := (receipt.Leaf{Collection: c}).Marshal(); err != nil {
		return fault.Bad("collectionId", "%v", err)
	}
	return nil
}

// appendBatch sequences items after the tree's last entry, computes their
// hashes (reading the ones stored, and the batch's own as it goes) and
// stores them in one fenced call.
func (l *Log) appendBatch(ctx context.Context, tx Store, items []item) ([]Record, *batchReader, error) {
	salts := make([]byte, 32*len(items))
	if _, err := rand.Read(salts); err != nil {
		return nil, nil, err
	}
	n, err := tx.LedgerSize(ctx)
	if err != nil {
		return nil, nil, err
	}
	now := l.cfg.Now().UTC().Truncate(time.Millisecond)
	r := &batchReader{base: tlog.StoredHashIndex(0, n), st: cachedReader{&l.hashes, reader{ctx, tx}, false}}
	recs := make([]Record, len(items))
	es := make([]store.LedgerEntry, len(items))
	for i, it := range items {
		rec := Record{Contents: it.contents}
		copy(rec.Salt[:], salts[32*i:])
		seq := n + int64(i)
		rec.Leaf = receipt.Leaf{Seq: uint64(seq), Time: now, Collection: it.collection, Commitment: receipt.Commit(rec.Salt, it.contents)}
		if es[i], err = entry(rec); err != nil {
			return nil, nil, err
		}
		hashes, err := tlog.StoredHashes(seq, es[i].Leaf, r)
		if err != nil {
			return nil, nil, fmt.Errorf("ledger: hashes of entry %d: %w", seq, err)
		}
		r.batch = append(r.batch, hashes...)
		recs[i] = rec
	}
	hs := make([][32]byte, len(r.batch))
	for i, h := range r.batch {
		hs[i] = h
	}
	if err := tx.AppendLedger(ctx, es, hs); err != nil {
		return nil, nil, err
	}
	return recs, r, nil
}

// batchReader reads the hashes a batch made itself (storage index base
// on) from memory, and the others from the store.
type batchReader struct {
	base  int64
	batch []tlog.Hash
	st    tlog.HashReader
}

func (r *batchReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var ask []int64
	var at []int
	for i, idx := range indexes {
		if idx >= r.base {
			if idx-r.base >= int64(len(r.batch)) {
				return nil, fmt.Errorf("ledger: hash %d is not made yet", idx)
			}
			out[i] = r.batch[idx-r.base]
			continue
		}
		ask = append(ask, idx)
		at = append(at, i)
	}
	if len(ask) > 0 {
		got, err := r.st.ReadHashes(ask)
		if err != nil {
			return nil, err
		}
		for j, i := range at {
			out[i] = got[j]
		}
	}
	return out, nil
}

// Tree returns the current tree: size and root.
func (l *Log) Tree(ctx context.Context) (tlog.Tree, error) {
	n, err := l.st.LedgerSize(ctx)
	if err != nil {
		return tlog.Tree{}, err
	}
	h, err := tlog.TreeHash(n, l.reader(ctx))
	if err != nil {
		return tlog.Tree{}, fmt.Errorf("ledger: root of %d entries: %w", n, err)
	}
	return tlog.Tree{N: n, Hash: h}, nil
}

// Checkpoint returns the signed checkpoint of the current tree, signing
// (and keeping) it if it is new. A receipt needs no timer: the tree that
// holds an entry is signed when the receipt is asked for.
//
// The database is untrusted: a tree rewritten there (a fork) must never
// be signed. The tree must extend the larger of the last checkpoint this
// process signed and the last one stored (verified with the log's key),
// and a stored checkpoint is served only if it is the log's and its root
// is the tree's.
func (l *Log) Checkpoint(ctx context.Context) (tlog.Tree, []byte, error) {
	return l.checkpoint(ctx, false, 0)
}

// covering returns a signed checkpoint of at least size entries: the last
// this process signed if it is that large, else a new one. Receipt callers
// that queued behind a signer so share its checkpoint, as appends share a
// commit: time to a receipt is one checkpoint, not a queue of them.
func (l *Log) covering(ctx context.Context, size int64) (tlog.Tree, []byte, error) {
	return l.checkpoint(ctx, false, size)
}

// checkpoint is Checkpoint; with ifDue, only if none ran within
// checkpointEvery (checked under the lock), else the stored latest; with
// need > 0, the last signed here if it holds need entries.
func (l *Log) checkpoint(ctx context.Context, ifDue bool, need int64) (tlog.Tree, []byte, error) {
	// A caller that goes away must not cut a checkpoint (and the ACL
	// integration in it) short: others wait on the lock for this work.
	ctx = context.WithoutCancel(ctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	if need > 0 && l.last != nil && l.last.N >= need {
		return *l.last, l.lastSigned, nil
	}
	now := l.cfg.Now()
	if ifDue && now.Sub(time.Unix(0, l.signedAt.Load())) < checkpointEvery {
		if t, signed, err := l.stored(ctx); !errors.Is(err, store.ErrNotFound) {
			return t, signed, err
		}
	}
	l.signedAt.Store(now.UnixNano())
	t, err := l.Tree(ctx) // read under the lock: a checkpoint signed meanwhile is not newer than it
	if err != nil {
		return t, nil, err
	}
	bases, err := l.bases(ctx)
	if err != nil {
		return t, nil, err
	}
	// The tree must extend every tree known signed: this process's last
	// and the last stored (another process's, or an older one of ours).
	for _, b := range bases {
		if b.N > t.N {
			return t, nil, fmt.Errorf("%w: the tree has %d entries, a checkpoint was signed at %d", ErrFork, t.N, b.N)
		}
		if err := l.extends(ctx, b, t); err != nil {
			return t, nil, err
		}
	}
	writeACL, acl, err := l.integrateACL(ctx, t)
	if err != nil {
		return t, nil, err
	}
	signed, err := l.st.GetLedgerCheckpoint(ctx, t.N)
	stored := err == nil
	switch {
	case err == nil:
		got, err := receipt.OpenCheckpoint(signed, l.cfg.Origin, l.cfg.Verifier)
		if err != nil || got != t {
			return t, nil, fmt.Errorf("%w: the stored checkpoint of size %d is not the log's for this tree", ErrFork, t.N)
		}
	case errors.Is(err, store.ErrNotFound):
		if signed, err = signCheckpoint(l.cfg.Origin, t, l.cfg.Signer); err != nil {
			return t, nil, err
		}
	default:
		return t, nil, err
	}
	// The ACL tree's new hashes, its signed root and the checkpoint: one
	// commit.
	if stored && writeACL == nil {
		// Nothing new: no write transaction.
		l.last, l.lastSigned = &t, signed
		return t, signed, nil
	}
	if err := l.cfg.Tx(ctx, func(tx Store) error {
		if writeACL != nil {
			if err := writeACL(tx); err != nil {
				return err
			}
		}
		return tx.PutLedgerCheckpoint(ctx, t.N, signed)
	}); err != nil {
		return t, nil, err
	}
	l.last, l.lastSigned = &t, signed
	if acl != nil {
		l.aclSt = acl
	}
	return t, signed, nil
}

// checkpointEvery is the cadence of Latest: at most one new checkpoint a
// second for callers that do not need the newest entry in it (witnesses,
// monitors, anonymous polls), so that polling cannot make kura write.
const checkpointEvery = time.Second

// Latest returns a recent signed checkpoint: the last stored one, verified,
// or, at most once per checkpointEvery, the current tree's. A poll that is
// not due takes no lock and makes no write.
func (l *Log) Latest(ctx context.Context) (tlog.Tree, []byte, error) {
	if l.cfg.Now().Sub(time.Unix(0, l.signedAt.Load())) >= checkpointEvery {
		return l.checkpoint(ctx, true, 0)
	}
	t, signed, err := l.stored(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return l.checkpoint(ctx, false, 0) // none yet: the first is signed once
	}
	return t, signed, err
}

// stored is the last stored checkpoint, verified (store.ErrNotFound: none).
func (l *Log) stored(ctx context.Context) (tlog.Tree, []byte, error) {
	size, signed, err := l.st.LatestLedgerCheckpoint(ctx)
	if err != nil {
		return tlog.Tree{}, nil, err
	}
	t, err := receipt.OpenCheckpoint(signed, l.cfg.Origin, l.cfg.Verifier)
	if err != nil || t.N != size {
		return tlog.Tree{}, nil, fmt.Errorf("%w: the stored checkpoint of size %d does not verify", ErrFork, size)
	}
	return t, signed, nil
}

// ErrFork marks a stored tree that is not an extension of a checkpoint
// the log signed: the store was rewritten; nothing is signed.
var ErrFork = errors.New("ledger: the stored tree does not extend a signed checkpoint (the database was rewritten?); refusing to sign")

// bases are the trees known signed: this process's last, and the last
// stored (which must verify with the log's key).
func (l *Log) bases(ctx context.Context) ([]tlog.Tree, error) {
	var out []tlog.Tree
	if l.last != nil {
		out = append(out, *l.last)
	}
	size, signed, err := l.st.LatestLedgerCheckpoint(ctx)
	if err == nil && l.last != nil && size == l.last.N && bytes.Equal(signed, l.lastSigned) {
		return out, nil // the stored latest is the one this process signed
	}
	stored, _, err := l.stored(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	return append(out, stored), nil
}

// extends checks that t extends the signed tree base.
func (l *Log) extends(ctx context.Context, base, t tlog.Tree) error {
	if base.N == 0 {
		return nil // every tree extends the empty one
	}
	if base.N == t.N {
		if base.Hash != t.Hash {
			return fmt.Errorf("%w: the tree of %d entries has another root than its checkpoint", ErrFork, t.N)
		}
		return nil
	}
	p, err := tlog.ProveTree(t.N, base.N, l.reader(ctx))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrFork, err)
	}
	if err := tlog.CheckTree(p, t.N, t.Hash, base.N, base.Hash); err != nil {
		return fmt.Errorf("%w: %v", ErrFork, err)
	}
	return nil
}

// Receipt is entry seq with its c2sp.org/tlog-proof: the inclusion proof
// in the current tree, that tree's signed checkpoint, and the leaf as the
// proof's extra data. With the entry's contents and salt, receipt.Verify
// checks it offline.
func (l *Log) Receipt(ctx context.Context, seq int64) (Record, []byte, error) {
	rec, err := l.get(ctx, seq)
	if err != nil {
		return Record{}, nil, err
	}
	var t tlog.Tree
	var signed []byte
	if c := l.cosigned.Load(); c != nil && c.tree.N > seq {
		t, signed = c.tree, c.signed // the strongest proof there is: cosigned
	} else {
		t, signed, err = l.covering(ctx, seq+1)
	}
	if errors.Is(err, store.ErrNotFound) {
		return Record{}, nil, fmt.Errorf("ledger: the tree is incomplete: %v", err)
	}
	if err != nil {
		return Record{}, nil, err
	}
	p, err := tlog.ProveRecord(t.N, seq, l.reader(ctx))
	if err != nil {
		// %v: a hash missing from the store is no "entry not found".
		return Record{}, nil, fmt.Errorf("ledger: inclusion proof of %d in %d: %v", seq, t.N, err)
	}
	leaf, err := rec.Leaf.Marshal()
	if err != nil {
		return Record{}, nil, err
	}
	// Checked as a verifier will: a store that changed a hash yields an
	// error here, not a receipt that fails there.
	if err := tlog.CheckRecord(p, t.N, t.Hash, seq, tlog.RecordHash(leaf)); err != nil {
		return Record{}, nil, fmt.Errorf("%w: the inclusion proof of entry %d does not lead to the signed root of %d", ErrFork, seq, t.N)
	}
	tp := proof.TLogProof{Index: uint64(seq), Checkpoint: signed, ExtraData: leaf}
	for _, h := range p {
		tp.Hashes = append(tp.Hashes, h)
	}
	return rec, tp.Marshal(), nil
}

// Entry is entry seq as stored, its contents checked against its leaf
// but not yet proved in the tree (Receipt proves it): for deciding who
// may have its receipt.
func (l *Log) Entry(ctx context.Context, seq int64) (Record, error) { return l.get(ctx, seq) }

// get is entry seq: from the records this process committed last, else
// read and checked against its leaf (record).
func (l *Log) get(ctx context.Context, seq int64) (Record, error) {
	if r, ok := l.recent.get(seq); ok {
		return r, nil
	}
	e, err := l.st.GetLedgerEntry(ctx, seq)
	if err != nil {
		return Record{}, err
	}
	return record(e)
}

// Consistency proves that the tree of size `from` is a prefix of the tree
// of size `to` (RFC 6962 consistency proof).
func (l *Log) Consistency(ctx context.Context, from, to int64) (tlog.TreeProof, error) {
	n, err := l.st.LedgerSize(ctx)
	if err != nil {
		return nil, err
	}
	if from < 1 || from > to || to > n {
		return nil, fault.Bad("", "no consistency proof from %d to %d in a log of %d entries (1 <= from <= to <= size)", from, to, n)
	}
	return tlog.ProveTree(to, from, l.reader(ctx))
}
