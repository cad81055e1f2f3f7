package appraisal

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/audit"
	"github.com/kura-project/kura/internal/fault"
	"github.com/kura-project/kura/internal/policy/maa"
	"github.com/kura-project/kura/internal/seal"
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
	audit    audit.Recorder

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
// Changes are recorded in st's audit log when st is a whole store (see
// WithAudit for another recorder); without a recorder they are refused.
func NewPolicyStore(st PolicyBackend, mac Sealer, now func() time.Time, defaults map[string]string) *PolicyStore {
	p := &PolicyStore{st: st, mac: mac, now: now, defaults: defaults, cache: map[string]cachedPolicy{}}
	if full, ok := st.(store.Store); ok {
		p.audit = audit.Store{St: full, Now: now}
	}
	return p
}

// WithAudit makes policy changes record their events with r.
func (p *PolicyStore) WithAudit(r audit.Recorder) *PolicyStore {
	p.audit = r
	return p
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
		// A root that cannot answer (sealed, an HSM outage) is not an
		// edited row: only a MAC that does not authenticate is tampering.
		if err != nil && !errors.Is(err, seal.ErrNotAuthentic) {
			return store.Policy{}, &attest.UnavailableError{Err: fmt.Errorf("%s policy: authenticating the stored row: %w", typ, err)}
		}
		return store.Policy{}, &attest.UnavailableError{Err: fmt.Errorf("%s policy: %w", typ, ErrPolicyIntegrity)}
	}
	return sp, nil
}

// PolicyText implements Policies, from the cache when it is fresh.
func (p *PolicyStore) PolicyText(ctx context.Context, typ string) (string, error) {
	now := p.now()
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
	return p.SetChecked(ctx, sp, nil)
}

// SetChecked is Set with a check run in the write's transaction, before
// it: a refusal there changes nothing (an upload's signer, checked against
// the policy management certificates as they are at the write).
func (p *PolicyStore) SetChecked(ctx context.Context, sp store.Policy, check func(tx store.Store) error) error {
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
	details := map[string]string{"policy_hash": PolicyHash(sp.Text)}
	if len(sp.Signer) > 0 {
		sum := sha256.Sum256(sp.Signer)
		details["signer_sha256"] = hex.EncodeToString(sum[:])
	}
	return p.record(ctx, audit.Event{Action: "policy.set", Object: "policies/" + sp.Type, Details: details},
		func(tx store.Store) error {
			if check != nil {
				if err := check(tx); err != nil {
					return err
				}
			}
			return tx.PutPolicy(ctx, sp)
		})
}

// Reset returns typ to its default policy.
func (p *PolicyStore) Reset(ctx context.Context, typ string) error {
	return p.ResetChecked(ctx, typ, nil)
}

// ResetChecked is Reset with a check in the write's transaction.
func (p *PolicyStore) ResetChecked(ctx context.Context, typ string, check func(tx store.Store) error) error {
	defer p.forget(typ)
	return p.record(ctx, audit.Event{Action: "policy.reset", Object: "policies/" + typ},
		func(tx store.Store) error {
			if check != nil {
				if err := check(tx); err != nil {
					return err
				}
			}
			return tx.DeletePolicy(ctx, typ)
		})
}

// record applies a change with its audit record, or not at all.
func (p *PolicyStore) record(ctx context.Context, e audit.Event, change func(tx store.Store) error) error {
	err := audit.Apply(ctx, p.audit, e, change)
	if err != nil && fault.Of(err) == fault.Internal {
		return &attest.UnavailableError{Err: err} // the store's write failed
	}
	return err
}
