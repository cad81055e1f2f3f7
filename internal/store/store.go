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
	Purpose string // "token" (attestation tokens) or "release" (key-release responses)
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
	// AllCollateral returns every item, by kind, key and expiry (for
	// `kura collateral export`).
	AllCollateral(ctx context.Context) ([]Collateral, error)
	// CollateralExpiry returns, for each kind on file, when the first of
	// its keys runs out: the earliest NotAfter among each key's newest item.
	CollateralExpiry(ctx context.Context) (map[string]time.Time, error)

	Keys
	Principals
	Audit
	Ledger

	// UseNonce records a single-use nonce until expires; ErrConflict if
	// it was used before. Records that expired before now are forgotten.
	UseNonce(ctx context.Context, nonce string, now, expires time.Time) error

	// WithTx runs f against a view of the store whose every call goes
	// through one database transaction: committed if f returns nil, rolled
	// back if it returns an error or panics (the panic goes on). A call
	// that fails inside f leaves the transaction as it was, so f may
	// handle the error and go on. WithTx on a view runs f in the same
	// transaction (no nesting: the outermost WithTx commits or rolls
	// back). The view is for f's goroutine only and is dead once f
	// returns; Close and Ping on it fail with ErrTxView.
	WithTx(ctx context.Context, f func(tx Store) error) error

	Ping(ctx context.Context) error
	Close() error
}

// ErrTxView is returned by Close and Ping on a WithTx view.
var ErrTxView = errors.New("not allowed on a transaction view")

// ErrConflict is returned when a create collides with an existing row.
var ErrConflict = errors.New("conflict")

// KeyVersion is one version of a managed key. Sealed holds the private key
// material sealed under the root with "name/version" as associated data.
type KeyVersion struct {
	Name, Version string
	Kty           string   // as requested: RSA, RSA-HSM, EC, EC-HSM, oct, oct-HSM
	KeyOps        []string // nil: every operation the key type supports
	Enabled       bool
	NotBefore     time.Time // zero: none
	Expires       time.Time // zero: none
	Exportable    bool
	Created       time.Time
	Updated       time.Time
	Tags          map[string]string
	ReleasePolicy []byte // JSON of the stored release policy; nil: none
	PublicJWK     []byte // JSON of the public key
	Sealed        []byte
	// MAC authenticates every other field under the root (internal/seal),
	// so an edit of, say, exportable or the release policy is detected.
	MAC []byte
}

// DeletedKey is a soft-deleted key: its latest version and its schedule.
type DeletedKey struct {
	Latest    KeyVersion
	DeletedAt time.Time
	PurgeAt   time.Time
}

// RotationPolicy is a key's rotation policy as stored (JSON document).
type RotationPolicy struct {
	Name    string
	JSON    []byte
	Created time.Time
	Updated time.Time
}

// Keys is the part of the store that holds managed keys.
type Keys interface {
	// CreateKeyVersion adds a version. With newKey it creates the key if
	// the name is free and adds a version to it if the key is active (as
	// Key Vault does), failing with ErrConflict if the key is deleted;
	// without, the key must exist and not be deleted (ErrNotFound).
	CreateKeyVersion(ctx context.Context, v KeyVersion, newKey bool) error
	// GetKeyVersion returns a version of a key that is not deleted; an
	// empty version means the latest.
	GetKeyVersion(ctx context.Context, name, version string) (KeyVersion, error)
	// UpdateKeyVersion replaces a version's mutable fields if it was last
	// updated at prevUpdated (optimistic concurrency): ErrConflict when
	// another writer got there first, ErrNotFound when it is gone.
	UpdateKeyVersion(ctx context.Context, v KeyVersion, prevUpdated time.Time) error
	// ListKeys returns the latest version of each non-deleted key with a
	// name after the given one, in name order, at most limit.
	ListKeys(ctx context.Context, after string, limit int) ([]KeyVersion, error)
	// ListKeyVersions returns the versions of a non-deleted key after the
	// given version id (in creation order), at most limit.
	ListKeyVersions(ctx context.Context, name, after string, limit int) ([]KeyVersion, error)
	DeleteKey(ctx context.Context, name string, at, purgeAt time.Time) (DeletedKey, error)
	GetDeletedKey(ctx context.Context, name string) (DeletedKey, error)
	ListDeletedKeys(ctx context.Context, after string, limit int) ([]DeletedKey, error)
	RecoverKey(ctx context.Context, name string) error
	PurgeKey(ctx context.Context, name string) error
	// PurgeDue returns deleted keys whose purge date has passed.
	PurgeDue(ctx context.Context, now time.Time) ([]string, error)
	GetRotationPolicy(ctx context.Context, name string) (RotationPolicy, error)
	PutRotationPolicy(ctx context.Context, p RotationPolicy) error
	ListRotationPolicies(ctx context.Context) ([]RotationPolicy, error)
	// RestoreKey inserts a key with all its versions; ErrConflict if the
	// name exists (active or deleted).
	RestoreKey(ctx context.Context, versions []KeyVersion, policy *RotationPolicy) error
}

// LedgerEntry is one entry of the confidential ledger as stored: its leaf
// (internal/ledger's canonical bytes, which hold the sequence number and
// the collection), its contents and the salt of the leaf's commitment.
type LedgerEntry struct {
	Seq        int64
	Collection string
	Leaf       []byte
	Contents   []byte
	Salt       []byte
}

// Ledger is the part of the store that holds the ledger: entries, the
// Merkle tree's stored hashes (x/mod/sumdb/tlog storage indexes) and
// signed checkpoints. Integrity comes from the tree and the checkpoints'
// signatures, not from the store (internal/ledger checks them).
type Ledger interface {
	LedgerSize(ctx context.Context) (int64, error)
	LedgerHashes(ctx context.Context, indexes []int64) ([][32]byte, error) // ErrNotFound for one not stored
	// AppendLedger stores es (one or more entries, consecutive from
	// es[0].Seq) and their hashes (from storage index
	// tlog.StoredHashIndex(0, es[0].Seq) on) only if the ledger holds
	// exactly es[0].Seq entries; ErrConflict otherwise, so that two
	// appenders cannot both extend the tree.
	AppendLedger(ctx context.Context, es []LedgerEntry, hashes [][32]byte) error
	GetLedgerEntry(ctx context.Context, seq int64) (LedgerEntry, error) // ErrNotFound past the end
	// PutLedgerCheckpoint keeps a signed checkpoint; the same again is a
	// no-op, another for the same size ErrConflict.
	PutLedgerCheckpoint(ctx context.Context, size int64, signed []byte) error
	GetLedgerCheckpoint(ctx context.Context, size int64) ([]byte, error) // ErrNotFound
	LatestLedgerCheckpoint(ctx context.Context) (int64, []byte, error)   // ErrNotFound when none
	// PutLedgerCosigned keeps signed (a checkpoint with its witnesses'
	// cosignatures) as the latest cosigned checkpoint, unless one of a
	// larger size is kept: one row, replaced as witnesses cosign.
	PutLedgerCosigned(ctx context.Context, size int64, signed []byte) error
	LatestLedgerCosigned(ctx context.Context) (int64, []byte, error) // ErrNotFound when none

	// The ACL-shaped tree (Azure Confidential Ledger receipts) over the
	// same entries, kept by the ledger's integrator: its stored hashes at
	// tlog storage indexes, and its signed roots.
	LedgerACLSize(ctx context.Context) (int64, error)
	LedgerACLHashes(ctx context.Context, indexes []int64) ([][32]byte, error) // ErrNotFound for one not stored
	// AppendLedgerACL stores the hashes of leaves [from, to) (storage
	// indexes tlog.StoredHashIndex(0, from) to tlog.StoredHashIndex(0, to))
	// only if the ACL tree holds exactly from leaves and the ledger at
	// least to entries; ErrConflict otherwise.
	AppendLedgerACL(ctx context.Context, from, to int64, hashes [][32]byte) error
	// PutLedgerACLSignature keeps the signed ACL root of a size; the same
	// again is a no-op, another for the same size ErrConflict.
	PutLedgerACLSignature(ctx context.Context, size int64, signed []byte) error
	LatestLedgerACLSignature(ctx context.Context) (int64, []byte, error) // ErrNotFound when none

	// ListLedgerEntries returns up to limit entries of collection ("" for
	// every collection) with from <= seq <= to, in order.
	ListLedgerEntries(ctx context.Context, collection string, from, to int64, limit int) ([]LedgerEntry, error)
	// LastLedgerEntry is the collection's newest entry (ErrNotFound: none).
	LastLedgerEntry(ctx context.Context, collection string) (LedgerEntry, error)
	LedgerCollections(ctx context.Context) ([]string, error) // in order
}

// Principal is a service principal (or a binding of an external identity).
// SecretHash is SHA-256 of its client secret; secrets are 256-bit random
// values, so a fast hash is enough.
type Principal struct {
	ID          string
	Name        string
	SecretHash  []byte // nil: no client secret
	OIDCSubject string // "issuer|subject" of an external identity; empty: none
	Created     time.Time
	// MAC authenticates the row and the principal's role set under the
	// root (internal/auth): the store is untrusted.
	MAC []byte
}

// RoleAssignment grants a role to a principal over a scope ("/" for all
// keys, "/keys/<name>" for one).
type RoleAssignment struct {
	PrincipalID string
	Role        string
	Scope       string
}

// AccessToken is an issued bearer token, stored by hash.
type AccessToken struct {
	Hash        []byte
	PrincipalID string
	Expires     time.Time
	MAC         []byte // authenticates the row under the root (internal/auth)
}

// Principals is the part of the store that holds identities.
type Principals interface {
	CreatePrincipal(ctx context.Context, p Principal) error // ErrConflict on a taken name or subject
	GetPrincipal(ctx context.Context, id string) (Principal, error)
	GetPrincipalByName(ctx context.Context, name string) (Principal, error)
	GetPrincipalBySubject(ctx context.Context, subject string) (Principal, error)
	ListPrincipals(ctx context.Context) ([]Principal, error)
	DeletePrincipal(ctx context.Context, id string) error                 // also its roles and tokens
	SetPrincipalSecret(ctx context.Context, id string, hash []byte) error // also revokes its access tokens
	SetPrincipalMAC(ctx context.Context, id string, mac []byte) error
	AddRole(ctx context.Context, a RoleAssignment) error // idempotent
	RemoveRole(ctx context.Context, a RoleAssignment) error
	Roles(ctx context.Context, principalID string) ([]RoleAssignment, error)
	PutAccessToken(ctx context.Context, t AccessToken) error
	GetAccessToken(ctx context.Context, hash []byte) (AccessToken, error)
	DeleteExpiredTokens(ctx context.Context, now time.Time) error
}
