package appraisal

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/policy/maa"
	"github.com/kura-project/kura/internal/store"
)

// PolicyStore keeps the appraisal policy of each attestation type. Reads
// are cached for at most cacheTTL: a change made through this store applies
// at once; one made through another kura node sharing the database applies
// here within cacheTTL.
type PolicyStore struct {
	defaults map[string]string // by canonical type: the modules' default policies
	st       PolicyBackend
	now      func() time.Time
	mac      Sealer // nil: stored policies cannot be authenticated, only defaults serve

	mu    sync.Mutex
	cache map[string]cachedPolicy
}

const cacheTTL = time.Second

type cachedPolicy struct {
	p       store.Policy
	fetched time.Time
}

// PolicyBackend is the part of the store policies need.
type PolicyBackend interface {
	GetPolicy(ctx context.Context, typ string) (store.Policy, error)
	PutPolicy(ctx context.Context, p store.Policy) error
	DeletePolicy(ctx context.Context, typ string) error
}

// Sealer authenticates policy rows under the root key.
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(sealed, aad []byte) ([]byte, error)
}

// NewPolicyStore returns a policy store over st. mac authenticates stored
// rows (the database is untrusted); with a nil mac only default policies can
// be served, and a stored one is an error.
// defaults are the policies in force, by canonical type, until an operator
// sets one (each TEE module's DefaultPolicy); a type without one is unknown.
func NewPolicyStore(st PolicyBackend, mac Sealer, now func() time.Time, defaults map[string]string) *PolicyStore {
	return &PolicyStore{st: st, mac: mac, now: now, defaults: defaults, cache: map[string]cachedPolicy{}}
}

// Known reports whether typ has a policy here (a registered type).
func (p *PolicyStore) Known(typ string) bool { _, ok := p.defaults[typ]; return ok }

// rowAAD binds every column that decides a policy's meaning.
func rowAAD(p store.Policy) []byte {
	h := sha256.New()
	for _, part := range [][]byte{[]byte("kura/policy/v1"), []byte(p.Type), []byte(p.Text), []byte(p.JWS), p.Signer} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	return h.Sum(nil)
}

// ErrPolicyIntegrity reports a stored policy that failed authentication.
var ErrPolicyIntegrity = errors.New("stored policy failed its integrity check (edited outside kura?)")

// Get returns the stored policy of typ, or its default (with an empty JWS).
func (p *PolicyStore) Get(ctx context.Context, typ string) (store.Policy, error) {
	sp, err := p.st.GetPolicy(ctx, typ)
	if errors.Is(err, store.ErrNotFound) {
		def, ok := p.defaults[typ]
		if !ok {
			return store.Policy{}, fmt.Errorf("no policy for %s: %w", typ, store.ErrNotFound)
		}
		return store.Policy{Type: typ, Text: def}, nil
	}
	if err != nil {
		return sp, err
	}
	if p.mac == nil {
		return store.Policy{}, &attest.UnavailableError{Err: fmt.Errorf("%s policy: cannot authenticate a stored policy without the root key (unseal key)", typ)}
	}
	if _, err := p.mac.Open(sp.MAC, rowAAD(sp)); err != nil || sp.Type != typ {
		return store.Policy{}, &attest.UnavailableError{Err: fmt.Errorf("%s policy: %w", typ, ErrPolicyIntegrity)}
	}
	return sp, nil
}

// PolicyText implements Policies, from the cache when it is fresh.
func (p *PolicyStore) PolicyText(ctx context.Context, typ string) (string, error) {
	now := time.Now() // the cache is about wall time, not the verification clock
	p.mu.Lock()
	c, ok := p.cache[typ]
	p.mu.Unlock()
	if ok && now.Sub(c.fetched) < cacheTTL && now.Sub(c.fetched) >= 0 {
		return c.p.Text, nil
	}
	sp, err := p.Get(ctx, typ)
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	p.cache[typ] = cachedPolicy{p: sp, fetched: now}
	p.mu.Unlock()
	return sp.Text, nil
}

func (p *PolicyStore) forget(typ string) {
	p.mu.Lock()
	delete(p.cache, typ)
	p.mu.Unlock()
}

// Set validates and stores a policy. A policy that does not parse is refused
// with its line and column and nothing changes.
func (p *PolicyStore) Set(ctx context.Context, sp store.Policy) error {
	if _, err := maa.Parse(sp.Text); err != nil {
		return err
	}
	if p.mac == nil {
		return errors.New("cannot store a policy without the root key")
	}
	sp.Updated = p.now()
	mac, err := p.mac.Seal(nil, rowAAD(sp))
	if err != nil {
		return err
	}
	sp.MAC = mac
	defer p.forget(sp.Type)
	return p.st.PutPolicy(ctx, sp)
}

// Reset returns typ to its default policy.
func (p *PolicyStore) Reset(ctx context.Context, typ string) error {
	defer p.forget(typ)
	return p.st.DeletePolicy(ctx, typ)
}
