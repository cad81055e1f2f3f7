package appraisal

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kura-project/kura/internal/policy/maa"
	"github.com/kura-project/kura/internal/store"
)

// DefaultPolicies are the appraisal policies in force until an operator sets
// one. They permit every piece of evidence that verified: hardware
// verification has already refused anything forged, and the token's claims
// carry everything a relying party (such as a key-release policy) judges.
// Operators who want the attestation service itself to refuse, say,
// debuggable guests set their own policy.
var DefaultPolicies = map[string]string{
	"SevSnpVm": "version=1.0;\nauthorizationrules\n{\n    => permit();\n};\nissuancerules\n{\n};\n",
}

// PolicyStore keeps the appraisal policy of each attestation type. Reads
// are cached for at most cacheTTL: a change made through this store applies
// at once; one made through another kura node sharing the database applies
// here within cacheTTL.
type PolicyStore struct {
	st  PolicyBackend
	now func() time.Time

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

// NewPolicyStore returns a policy store over st.
func NewPolicyStore(st PolicyBackend, now func() time.Time) *PolicyStore {
	return &PolicyStore{st: st, now: now, cache: map[string]cachedPolicy{}}
}

// Get returns the stored policy of typ, or its default (with an empty JWS).
func (p *PolicyStore) Get(ctx context.Context, typ string) (store.Policy, error) {
	sp, err := p.st.GetPolicy(ctx, typ)
	if errors.Is(err, store.ErrNotFound) {
		def, ok := DefaultPolicies[typ]
		if !ok {
			return store.Policy{}, fmt.Errorf("no policy for %s: %w", typ, store.ErrNotFound)
		}
		return store.Policy{Type: typ, Text: def}, nil
	}
	return sp, err
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
	sp.Updated = p.now()
	defer p.forget(sp.Type)
	return p.st.PutPolicy(ctx, sp)
}

// Reset returns typ to its default policy.
func (p *PolicyStore) Reset(ctx context.Context, typ string) error {
	defer p.forget(typ)
	return p.st.DeletePolicy(ctx, typ)
}
