// Package store defines what kura keeps and the interface every storage
// engine implements. Engines live in subpackages (sqlite, later postgres);
// storetest is the conformance suite they all pass. Secrets arrive here
// already sealed (internal/seal): the store never sees plaintext keys.
package store

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned when a requested row does not exist.
var ErrNotFound = errors.New("not found")

// SigningKey is a token-signing key. Sealed holds the private key sealed
// under the root with the key id as associated data.
type SigningKey struct {
	ID      string
	Alg     string
	CertDER []byte
	Sealed  []byte
	Created time.Time
	Retired time.Time // zero while active
}

// Policy is the stored appraisal policy of one attestation type.
type Policy struct {
	Type    string // canonical attestation type, e.g. "SevSnpVm"
	Text    string // the policy text
	JWS     string // the JWS it was uploaded as
	Signer  []byte // DER of the signing certificate; nil for unsigned uploads
	Updated time.Time
	// MAC authenticates the row under the root key (internal/seal), so an
	// edit in the database is detected when the policy is loaded.
	MAC []byte
}

// Collateral is one item of cached verification collateral (an AMD
// certificate or CRL), looked up by kind and key.
type Collateral struct {
	Kind     string // "vcek", "vlek", "crl"
	Key      string // kind-specific lookup key, e.g. "Milan/<hwid hex>/<tcb hex>"
	DER      []byte
	NotAfter time.Time
}

// Store is the storage engine interface.
type Store interface {
	PutSigningKey(ctx context.Context, k SigningKey) error
	RetireSigningKey(ctx context.Context, id string, at time.Time) error
	SigningKeys(ctx context.Context) ([]SigningKey, error)

	GetPolicy(ctx context.Context, typ string) (Policy, error)
	PutPolicy(ctx context.Context, p Policy) error
	DeletePolicy(ctx context.Context, typ string) error

	// PutCollateral stores an item; storing the same DER under the same
	// kind and key again is a no-op.
	PutCollateral(ctx context.Context, c Collateral) error
	Collateral(ctx context.Context, kind, key string) ([]Collateral, error)

	Ping(ctx context.Context) error
	Close() error
}
