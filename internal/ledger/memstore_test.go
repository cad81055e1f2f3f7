package ledger

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/kura-project/kura/internal/store"
)

// memStore is an in-memory Store for the ledger's own tests; the engines'
// conformance suite checks the real ones.
type memStore struct {
	mu      sync.Mutex // held by tx for a whole transaction
	records []Record
	hashes  []tlog.Hash
	cps     map[int64][]byte
}

func newMem() *memStore { return &memStore{cps: map[int64][]byte{}} }

// view is the store seen inside a transaction (the lock is held).
type view struct{ m *memStore }

func (m *memStore) tx(ctx context.Context, f func(Store) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, hs := len(m.records), len(m.hashes)
	if err := f(view{m}); err != nil {
		m.records, m.hashes = m.records[:rec], m.hashes[:hs]
		return err
	}
	return nil
}

func (m *memStore) LedgerSize(ctx context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return view{m}.LedgerSize(ctx)
}

func (m *memStore) LedgerHashes(ctx context.Context, idx []int64) ([]tlog.Hash, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return view{m}.LedgerHashes(ctx, idx)
}

func (m *memStore) AppendLedger(ctx context.Context, r Record, hashes []tlog.Hash) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return view{m}.AppendLedger(ctx, r, hashes)
}

func (m *memStore) LedgerRecord(ctx context.Context, seq int64) (Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return view{m}.LedgerRecord(ctx, seq)
}

func (m *memStore) PutLedgerCheckpoint(ctx context.Context, size int64, signed []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return view{m}.PutLedgerCheckpoint(ctx, size, signed)
}

func (m *memStore) LedgerCheckpoint(ctx context.Context, size int64) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return view{m}.LedgerCheckpoint(ctx, size)
}

func (v view) LedgerSize(context.Context) (int64, error) { return int64(len(v.m.records)), nil }

func (v view) LedgerHashes(_ context.Context, idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x < 0 || x >= int64(len(v.m.hashes)) {
			return nil, fmt.Errorf("hash %d: %w", x, store.ErrNotFound)
		}
		out[i] = v.m.hashes[x]
	}
	return out, nil
}

func (v view) AppendLedger(_ context.Context, r Record, hashes []tlog.Hash) error {
	n := int64(len(v.m.records))
	if int64(r.Leaf.Seq) != n || tlog.StoredHashIndex(0, n) != int64(len(v.m.hashes)) {
		return fmt.Errorf("append %d to %d entries: %w", r.Leaf.Seq, n, store.ErrConflict)
	}
	v.m.records = append(v.m.records, r)
	v.m.hashes = append(v.m.hashes, hashes...)
	return nil
}

func (v view) LedgerRecord(_ context.Context, seq int64) (Record, error) {
	if seq < 0 || seq >= int64(len(v.m.records)) {
		return Record{}, fmt.Errorf("entry %d: %w", seq, store.ErrNotFound)
	}
	return v.m.records[seq], nil
}

func (v view) PutLedgerCheckpoint(_ context.Context, size int64, signed []byte) error {
	if old, ok := v.m.cps[size]; ok && !bytes.Equal(old, signed) {
		return fmt.Errorf("checkpoint %d: %w", size, store.ErrConflict)
	}
	v.m.cps[size] = signed
	return nil
}

func (v view) LedgerCheckpoint(_ context.Context, size int64) ([]byte, error) {
	if cp, ok := v.m.cps[size]; ok {
		return cp, nil
	}
	return nil, fmt.Errorf("checkpoint %d: %w", size, store.ErrNotFound)
}
