// Package attesttest holds test doubles for the TEE modules' tests.
package attesttest

import (
	"context"
	"sync"

	"github.com/kura-project/kura/internal/store"
)

// Collateral is an in-memory attest.CollateralStore.
type Collateral struct {
	mu    sync.Mutex
	items []store.Collateral
}

// PutCollateral keeps c.
func (m *Collateral) PutCollateral(_ context.Context, c store.Collateral) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.items = append(m.items, c)
	return nil
}

// Collateral returns the items of kind and key.
func (m *Collateral) Collateral(_ context.Context, kind, key string) ([]store.Collateral, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.Collateral
	for _, c := range m.items {
		if c.Kind == kind && c.Key == key {
			out = append(out, c)
		}
	}
	return out, nil
}
