package ledger

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/kura-project/kura/internal/store"
)

// The ledger's signing key is an Ed25519 note key (what C2SP logs and
// witnesses use), kept with the other signing keys, sealed under the root
// with its verifier key as associated data: a row whose key or name was
// swapped does not open.

// KeyStore is the part of the store that holds signing keys (and tells
// whether the ledger holds anything a lost key signed).
type KeyStore interface {
	SigningKeys(ctx context.Context) ([]store.SigningKey, error)
	WithTx(ctx context.Context, f func(tx store.Store) error) error
	LedgerSize(ctx context.Context) (int64, error)
	LatestLedgerCheckpoint(ctx context.Context) (int64, []byte, error)
}

// StoredOrigin is the origin of the ledger's stored key, if there is one:
// a log's origin is its identity, kept across changes of the address.
func StoredOrigin(ctx context.Context, st KeyStore) (string, bool, error) {
	k, ok, err := storedKey(ctx, st)
	if err != nil || !ok {
		return "", false, err
	}
	v, err := note.NewVerifier(k.ID)
	if err != nil {
		return "", false, fmt.Errorf("ledger key: verifier: %w", err)
	}
	return v.Name(), true, nil
}

func storedKey(ctx context.Context, st KeyStore) (store.SigningKey, bool, error) {
	return storedKeyOf(ctx, st, keyPurpose)
}

// storedKeyOf is the oldest live signing key of purpose: every process
// makes the same choice.
func storedKeyOf(ctx context.Context, st interface {
	SigningKeys(ctx context.Context) ([]store.SigningKey, error)
}, purpose string) (store.SigningKey, bool, error) {
	rows, err := st.SigningKeys(ctx)
	if err != nil {
		return store.SigningKey{}, false, fmt.Errorf("ledger key: %w", err)
	}
	var mine []store.SigningKey
	for _, r := range rows {
		if r.Purpose == purpose && r.Retired.IsZero() {
			mine = append(mine, r)
		}
	}
	if len(mine) == 0 {
		return store.SigningKey{}, false, nil
	}
	slices.SortFunc(mine, func(a, b store.SigningKey) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID) // the same choice in every process
	})
	return mine[0], true, nil
}

// createOnce stores row unless a live key of its purpose exists, in one
// transaction, and returns the key that is stored: processes starting at
// once on an empty ledger all end up with one key. A transaction that lost
// the race to another process's (a write conflict) is read again.
func createOnce(ctx context.Context, st interface {
	SigningKeys(ctx context.Context) ([]store.SigningKey, error)
	WithTx(ctx context.Context, f func(tx store.Store) error) error
}, row store.SigningKey) (store.SigningKey, error) {
	var lastErr error
	for range 10 {
		err := st.WithTx(ctx, func(tx store.Store) error {
			if _, ok, err := storedKeyOf(ctx, tx, row.Purpose); err != nil || ok {
				return err // one exists: keep it
			}
			return tx.PutSigningKey(ctx, row)
		})
		if got, ok, rerr := storedKeyOf(ctx, st, row.Purpose); rerr == nil && ok {
			return got, nil
		}
		lastErr = err
		if err := ctx.Err(); err != nil {
			return store.SigningKey{}, err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return store.SigningKey{}, fmt.Errorf("storing a new key: %v", lastErr)
}

// Sealer seals the private key at rest.
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(sealed, aad []byte) ([]byte, error)
}

const keyPurpose = "ledger"

func keyAAD(vkey string) []byte { return []byte("kura/ledger-signing-key/v1/" + vkey) }

// Key is the ledger's signer and verifier; VerifierKey is the verifier
// key's text (note.NewVerifier takes it), which clients need to verify
// checkpoints and receipts offline.
type Key struct {
	Signer      note.Signer
	Verifier    note.Verifier
	VerifierKey string
}

// OpenKey loads the ledger's key for origin, making and storing one on
// first use. A log's origin never changes: a stored key for another
// origin is refused, not replaced.
func OpenKey(ctx context.Context, st KeyStore, sealer Sealer, origin string, now time.Time) (Key, error) {
	row, ok, err := storedKey(ctx, st)
	if err != nil {
		return Key{}, err
	}
	if ok {
		return openKey(row, sealer, origin)
	}
	// A new key only for an empty ledger: one whose key row vanished
	// (deleted, retired in the database) must not get a fresh signer for
	// whatever the database now says.
	n, err := st.LedgerSize(ctx)
	if err != nil {
		return Key{}, fmt.Errorf("ledger key: %w", err)
	}
	_, _, cerr := st.LatestLedgerCheckpoint(ctx)
	if n > 0 || cerr == nil {
		return Key{}, fmt.Errorf("ledger key: the ledger holds %d entries or signed checkpoints but its signing key is missing from the database: restore it; kura makes a ledger key only for an empty ledger", n)
	}
	if !errors.Is(cerr, store.ErrNotFound) {
		return Key{}, fmt.Errorf("ledger key: %w", cerr)
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return Key{}, fmt.Errorf("ledger key: %w", err)
	}
	sealed, err := sealer.Seal([]byte(skey), keyAAD(vkey))
	if err != nil {
		return Key{}, fmt.Errorf("ledger key: seal: %w", err)
	}
	row = store.SigningKey{Purpose: keyPurpose, ID: vkey, Alg: "Ed25519", CertDER: []byte(vkey), Sealed: sealed, Created: now}
	if row, err = createOnce(ctx, st, row); err != nil {
		return Key{}, fmt.Errorf("ledger key: %w", err)
	}
	return openKey(row, sealer, origin)
}

func openKey(r store.SigningKey, sealer Sealer, origin string) (Key, error) {
	vkey := r.ID
	if string(r.CertDER) != vkey || r.Alg != "Ed25519" {
		return Key{}, errors.New("ledger key: the stored row is inconsistent (edited outside kura?)")
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return Key{}, fmt.Errorf("ledger key: verifier: %w", err)
	}
	if v.Name() != origin {
		return Key{}, fmt.Errorf("ledger key: the ledger signs for origin %q, not the configured %q; a log's origin never changes (set ledger_origin back)", v.Name(), origin)
	}
	skey, err := sealer.Open(r.Sealed, keyAAD(vkey))
	if err != nil {
		return Key{}, fmt.Errorf("ledger key: open: %w", err)
	}
	defer clear(skey)
	s, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		return Key{}, fmt.Errorf("ledger key: signer: %w", err)
	}
	if s.KeyHash() != v.KeyHash() || s.Name() != v.Name() {
		return Key{}, errors.New("ledger key: the sealed key is not the stored verifier's")
	}
	return Key{Signer: s, Verifier: v, VerifierKey: vkey}, nil
}
