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
	records []store.LedgerEntry
	hashes  [][32]byte
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

func (m *memStore) LedgerHashes(ctx context.Context, idx []int64) ([][32]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return view{m}.LedgerHashes(ctx, idx)
}

func (m *memStore) AppendLedger(ctx context.Context, r store.LedgerEntry, hashes [][32]byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return view{m}.AppendLedger(ctx, r, hashes)
}

func (m *memStore) GetLedgerEntry(ctx context.Context, seq int64) (store.LedgerEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return view{m}.GetLedgerEntry(ctx, seq)
}

func (m *memStore) PutLedgerCheckpoint(ctx context.Context, size int64, signed []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return view{m}.PutLedgerCheckpoint(ctx, size, signed)
}

func (m *memStore) GetLedgerCheckpoint(ctx context.Context, size int64) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return view{m}.GetLedgerCheckpoint(ctx, size)
}

func (m *memStore) LatestLedgerCheckpoint(ctx context.Context) (int64, []byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return view{m}.LatestLedgerCheckpoint(ctx)
}

func (v view) LatestLedgerCheckpoint(context.Context) (int64, []byte, error) {
	best := int64(-1)
	for n := range v.m.cps {
		best = max(best, n)
	}
	if best < 0 {
		return 0, nil, fmt.Errorf("checkpoint: %w", store.ErrNotFound)
	}
	return best, v.m.cps[best], nil
}

func (v view) LedgerSize(context.Context) (int64, error) { return int64(len(v.m.records)), nil }

func (v view) LedgerHashes(_ context.Context, idx []int64) ([][32]byte, error) {
	out := make([][32]byte, len(idx))
	for i, x := range idx {
		if x < 0 || x >= int64(len(v.m.hashes)) {
			return nil, fmt.Errorf("hash %d: %w", x, store.ErrNotFound)
		}
		out[i] = v.m.hashes[x]
	}
	return out, nil
}

func (v view) AppendLedger(_ context.Context, r store.LedgerEntry, hashes [][32]byte) error {
	n := int64(len(v.m.records))
	if r.Seq != n || tlog.StoredHashIndex(0, n) != int64(len(v.m.hashes)) {
		return fmt.Errorf("append %d to %d entries: %w", r.Seq, n, store.ErrConflict)
	}
	v.m.records = append(v.m.records, r)
	v.m.hashes = append(v.m.hashes, hashes...)
	return nil
}

func (v view) GetLedgerEntry(_ context.Context, seq int64) (store.LedgerEntry, error) {
	if seq < 0 || seq >= int64(len(v.m.records)) {
		return store.LedgerEntry{}, fmt.Errorf("entry %d: %w", seq, store.ErrNotFound)
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

func (v view) GetLedgerCheckpoint(_ context.Context, size int64) ([]byte, error) {
	if cp, ok := v.m.cps[size]; ok {
		return cp, nil
	}
	return nil, fmt.Errorf("checkpoint %d: %w", size, store.ErrNotFound)
}
