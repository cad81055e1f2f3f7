package ledger

import (
	"bytes"
	"context"
	"fmt"
	"slices"
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
	acl     [][32]byte
	aclSigs map[int64][]byte
	cosSize int64
	cos     []byte
}

func newMem() *memStore { return &memStore{cps: map[int64][]byte{}, aclSigs: map[int64][]byte{}} }

// view is the store seen inside a transaction (the lock is held).
type view struct{ m *memStore }

func (m *memStore) tx(ctx context.Context, f func(Store) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, hs, acl := len(m.records), len(m.hashes), len(m.acl)
	if err := f(view{m}); err != nil {
		m.records, m.hashes, m.acl = m.records[:rec], m.hashes[:hs], m.acl[:acl]
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

func (m *memStore) AppendLedger(ctx context.Context, es []store.LedgerEntry, hashes [][32]byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return view{m}.AppendLedger(ctx, es, hashes)
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

func (v view) AppendLedger(_ context.Context, es []store.LedgerEntry, hashes [][32]byte) error {
	n := int64(len(v.m.records))
	if len(es) == 0 || tlog.StoredHashIndex(0, n) != int64(len(v.m.hashes)) ||
		int64(len(hashes)) != tlog.StoredHashIndex(0, n+int64(len(es)))-tlog.StoredHashIndex(0, n) {
		return fmt.Errorf("append %d entries to %d: %w", len(es), n, store.ErrConflict)
	}
	for i, r := range es {
		if r.Seq != n+int64(i) {
			return fmt.Errorf("append %d to %d entries: %w", r.Seq, n+int64(i), store.ErrConflict)
		}
	}
	v.m.records = append(v.m.records, es...)
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

func (m *memStore) PutLedgerCosigned(ctx context.Context, size int64, signed []byte) error {
	_, err := locked(m, func(v view) (struct{}, error) { return struct{}{}, v.PutLedgerCosigned(ctx, size, signed) })
	return err
}

func (m *memStore) LatestLedgerCosigned(ctx context.Context) (int64, []byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return view{m}.LatestLedgerCosigned(ctx)
}

func (v view) PutLedgerCosigned(_ context.Context, size int64, signed []byte) error {
	if v.m.cos == nil || size >= v.m.cosSize {
		v.m.cosSize, v.m.cos = size, signed
	}
	return nil
}

func (v view) LatestLedgerCosigned(context.Context) (int64, []byte, error) {
	if v.m.cos == nil {
		return 0, nil, fmt.Errorf("cosigned checkpoint: %w", store.ErrNotFound)
	}
	return v.m.cosSize, v.m.cos, nil
}

// locked runs f on the view under the lock.
func locked[T any](m *memStore, f func(view) (T, error)) (T, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return f(view{m})
}

func (m *memStore) LedgerACLSize(ctx context.Context) (int64, error) {
	return locked(m, func(v view) (int64, error) { return v.LedgerACLSize(ctx) })
}

func (m *memStore) LedgerACLHashes(ctx context.Context, idx []int64) ([][32]byte, error) {
	return locked(m, func(v view) ([][32]byte, error) { return v.LedgerACLHashes(ctx, idx) })
}

func (m *memStore) AppendLedgerACL(ctx context.Context, from, to int64, hashes [][32]byte) error {
	_, err := locked(m, func(v view) (struct{}, error) { return struct{}{}, v.AppendLedgerACL(ctx, from, to, hashes) })
	return err
}

func (m *memStore) PutLedgerACLSignature(ctx context.Context, size int64, signed []byte) error {
	_, err := locked(m, func(v view) (struct{}, error) { return struct{}{}, v.PutLedgerACLSignature(ctx, size, signed) })
	return err
}

func (m *memStore) LatestLedgerACLSignature(ctx context.Context) (int64, []byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return view{m}.LatestLedgerACLSignature(ctx)
}

func (m *memStore) ListLedgerEntries(ctx context.Context, c string, from, to int64, limit int) ([]store.LedgerEntry, error) {
	return locked(m, func(v view) ([]store.LedgerEntry, error) { return v.ListLedgerEntries(ctx, c, from, to, limit) })
}

func (m *memStore) LastLedgerEntry(ctx context.Context, c string) (store.LedgerEntry, error) {
	return locked(m, func(v view) (store.LedgerEntry, error) { return v.LastLedgerEntry(ctx, c) })
}

func (m *memStore) LedgerCollections(ctx context.Context) ([]string, error) {
	return locked(m, func(v view) ([]string, error) { return v.LedgerCollections(ctx) })
}

func (v view) LedgerACLSize(context.Context) (int64, error) {
	if len(v.m.acl) == 0 {
		return 0, nil
	}
	level, n := tlog.SplitStoredHashIndex(int64(len(v.m.acl)) - 1)
	return (n + 1) << level, nil
}

func (v view) LedgerACLHashes(_ context.Context, idx []int64) ([][32]byte, error) {
	out := make([][32]byte, len(idx))
	for i, x := range idx {
		if x < 0 || x >= int64(len(v.m.acl)) {
			return nil, fmt.Errorf("ACL hash %d: %w", x, store.ErrNotFound)
		}
		out[i] = v.m.acl[x]
	}
	return out, nil
}

func (v view) AppendLedgerACL(ctx context.Context, from, to int64, hashes [][32]byte) error {
	n, _ := v.LedgerACLSize(ctx)
	if from != n || to < from || to > int64(len(v.m.records)) ||
		int64(len(hashes)) != tlog.StoredHashIndex(0, to)-tlog.StoredHashIndex(0, from) {
		return fmt.Errorf("ACL [%d, %d) to %d: %w", from, to, n, store.ErrConflict)
	}
	v.m.acl = append(v.m.acl, hashes...)
	return nil
}

func (v view) PutLedgerACLSignature(_ context.Context, size int64, signed []byte) error {
	if old, ok := v.m.aclSigs[size]; ok && !bytes.Equal(old, signed) {
		return fmt.Errorf("ACL signature %d: %w", size, store.ErrConflict)
	}
	v.m.aclSigs[size] = signed
	return nil
}

func (v view) LatestLedgerACLSignature(context.Context) (int64, []byte, error) {
	best := int64(-1)
	for n := range v.m.aclSigs {
		best = max(best, n)
	}
	if best < 0 {
		return 0, nil, fmt.Errorf("ACL signature: %w", store.ErrNotFound)
	}
	return best, v.m.aclSigs[best], nil
}

func (v view) ListLedgerEntries(_ context.Context, c string, from, to int64, limit int) ([]store.LedgerEntry, error) {
	var out []store.LedgerEntry
	for _, r := range v.m.records {
		if r.Seq >= from && r.Seq <= to && (c == "" || r.Collection == c) && len(out) < limit {
			out = append(out, r)
		}
	}
	return out, nil
}

func (v view) LastLedgerEntry(_ context.Context, c string) (store.LedgerEntry, error) {
	for i := len(v.m.records) - 1; i >= 0; i-- {
		if v.m.records[i].Collection == c {
			return v.m.records[i], nil
		}
	}
	return store.LedgerEntry{}, fmt.Errorf("collection %q: %w", c, store.ErrNotFound)
}

func (v view) LedgerCollections(context.Context) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, r := range v.m.records {
		if !seen[r.Collection] {
			seen[r.Collection] = true
			out = append(out, r.Collection)
		}
	}
	slices.Sort(out)
	return out, nil
}
