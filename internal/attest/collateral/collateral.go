// Package collateral is the cache of verification collateral that evidence
// does not carry: certificates, CRLs and signed vendor documents, imported
// by an operator (air-gapped sites), fetched from a vendor when an operator
// allows it, or learned from earlier verified requests. It is generic: each
// vendor's adapter (collateral/amd, ...) says what an item is and where it
// is filed (a Classifier), and reads it back by kind and key.
//
// Nothing stored here is trusted by being stored: every item is verified
// by the TEE's verifier on use, against pinned roots.
package collateral

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kura-project/kura/internal/fault"
	"github.com/kura-project/kura/internal/store"
)

// Store is the part of the store collateral needs.
type Store interface {
	PutCollateral(ctx context.Context, c store.Collateral) error
	Collateral(ctx context.Context, kind, key string) ([]store.Collateral, error)
}

// Classifier is a vendor adapter's judgement of one DER item: its kind,
// key and expiry, or why it is refused. ErrSkip accepts an item without
// storing it (a root that is already pinned).
type Classifier interface {
	Classify(der []byte) (store.Collateral, error)
}

// ErrSkip is a Classifier's "accepted, nothing to store".
var ErrSkip = errors.New("accepted, nothing to store")

// TTL bounds how long Cached reuses an answer read from the store. An item
// put through this cache applies at once; one put through another kura
// node sharing the database applies here within TTL.
const TTL = 5 * time.Second

// Cache files items in the store and serves hot lookups from memory.
type Cache struct {
	st  Store
	cls Classifier
	now func() time.Time

	mu  sync.Mutex
	mem map[[2]string]memEntry
}

type memEntry struct {
	val     any // what Cached's decode made of the items
	fetched time.Time
}

// New returns a cache over st whose items cls classifies; now is the clock
// of the memory cache's TTL.
func New(st Store, cls Classifier, now func() time.Time) *Cache {
	if now == nil {
		now = time.Now
	}
	return &Cache{st: st, cls: cls, now: now, mem: map[[2]string]memEntry{}}
}

// Get reads the items filed under kind and key from the store.
func (c *Cache) Get(ctx context.Context, kind, key string) ([]store.Collateral, error) {
	return c.st.Collateral(ctx, kind, key)
}

// Cached is Get, decoded, served from memory for up to TTL: for items read
// on every verification (CRLs), so that they are neither read nor parsed
// per request. A kind and key are always read with the same decode (a
// value of another type is read and decoded again).
func Cached[T any](ctx context.Context, c *Cache, kind, key string, decode func([]store.Collateral) T) (T, error) {
	k, now := [2]string{kind, key}, c.now()
	c.mu.Lock()
	e, ok := c.mem[k]
	c.mu.Unlock()
	if v, typed := e.val.(T); ok && typed && now.Sub(e.fetched) < TTL && now.Sub(e.fetched) >= 0 {
		return v, nil
	}
	items, err := c.st.Collateral(ctx, kind, key)
	if err != nil {
		var zero T
		return zero, err
	}
	v := decode(items)
	c.mu.Lock()
	if len(c.mem) > 1024 {
		clear(c.mem)
	}
	c.mem[k] = memEntry{val: v, fetched: now}
	c.mu.Unlock()
	return v, nil
}

func (c *Cache) forget() {
	c.mu.Lock()
	clear(c.mem)
	c.mu.Unlock()
}

// PutItem stores an item its adapter has already judged, and forgets what
// memory holds, so the item applies at once.
func (c *Cache) PutItem(ctx context.Context, item store.Collateral) error {
	defer c.forget()
	return c.st.PutCollateral(ctx, item)
}

// Put classifies and stores one DER item.
func (c *Cache) Put(ctx context.Context, der []byte) error {
	item, err := c.cls.Classify(der)
	if errors.Is(err, ErrSkip) {
		return nil
	}
	if err != nil {
		return err
	}
	defer c.forget()
	return c.st.PutCollateral(ctx, item)
}

// Import stores every item of data (PEM blocks of the given types, or one
// DER item) and returns how many it stored. Every item is classified before
// any is stored, and on a store with transactions all are stored in one, so
// a file with one bad item, or a write that fails, changes nothing.
func (c *Cache) Import(ctx context.Context, data []byte, pemTypes ...string) (int, error) {
	ders, err := SplitPEM(data, pemTypes...)
	if err != nil {
		return 0, err
	}
	items := make([]store.Collateral, 0, len(ders))
	for i, d := range ders {
		it, err := c.cls.Classify(d)
		if errors.Is(err, ErrSkip) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("item %d: %w", i+1, err)
		}
		items = append(items, it)
	}
	defer c.forget()
	put := func(st Store) error {
		for _, it := range items {
			if err := st.PutCollateral(ctx, it); err != nil {
				return err
			}
		}
		return nil
	}
	// On a store with transactions a failed write stores nothing either.
	if txs, ok := c.st.(interface {
		WithTx(ctx context.Context, f func(tx store.Store) error) error
	}); ok {
		if err := txs.WithTx(ctx, func(tx store.Store) error { return put(tx) }); err != nil {
			return 0, fault.Down("storing the collateral failed", err)
		}
		return len(items), nil
	}
	if err := put(c.st); err != nil {
		return 0, fault.Down("storing the collateral failed", err)
	}
	return len(items), nil
}

// SplitPEM returns the DER items of data: every PEM block, each of one of
// types, or data itself when it is not PEM.
func SplitPEM(data []byte, types ...string) ([][]byte, error) {
	trimmed := bytes.TrimSpace(data)
	if !bytes.HasPrefix(trimmed, []byte("-----BEGIN")) {
		if len(trimmed) == 0 {
			return nil, errors.New("empty file")
		}
		return [][]byte{data}, nil
	}
	var out [][]byte
	rest := trimmed
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if !slices.Contains(types, blk.Type) {
			return nil, fmt.Errorf("PEM block %q is not collateral here (want %s)", blk.Type, strings.Join(types, " or "))
		}
		out = append(out, blk.Bytes)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("trailing data after the last PEM block")
	}
	return out, nil
}
