package ledger

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/kura-project/kura/internal/store"
)

// The ACL node key signs the roots of the ACL-shaped tree, as a CCF node
// signs its Merkle roots: an ECDSA P-256 key, sealed under the root like the
// checkpoint key, with a certificate issued by the CA whose certificate the
// ledger's identity endpoint publishes (the service certificate ACL clients
// pin), so that ACL's receipt verifier checks the chain node → service.

const aclKeyPurpose = "ledger-acl"

func aclKeyAAD(id string) []byte { return []byte("kura/ledger-acl-node-key/v1/" + id) }

// Certifier issues a certificate chain (leaf first, up to and including
// the service certificate) for a public key.
type Certifier func(pub *ecdsa.PublicKey, now time.Time) ([]*x509.Certificate, error)

// ACLKeyStore is what the node key needs of the store.
type ACLKeyStore interface {
	SigningKeys(ctx context.Context) ([]store.SigningKey, error)
	WithTx(ctx context.Context, f func(tx store.Store) error) error
	LatestLedgerACLSignature(ctx context.Context) (int64, []byte, error)
}

// ACLKey is the node key with its certificate chain.
type ACLKey struct {
	priv     *ecdsa.PrivateKey
	nodeID   string   // hex SHA-256 of the public key's SubjectPublicKeyInfo (CCF's node id)
	evidence [32]byte // key of the commit evidence
	certify  Certifier
	now      func() time.Time

	mu    sync.Mutex
	chain []*x509.Certificate
}

// reissueBefore renews the node certificate this long before it ends.
const reissueBefore = 7 * 24 * time.Hour

// OpenACLKey loads the node key, making one for a ledger that has no
// signed ACL root yet. certify may be nil: the certificate is then
// self-signed and receipts verify against it alone.
func OpenACLKey(ctx context.Context, st ACLKeyStore, sealer Sealer, certify Certifier, now func() time.Time) (*ACLKey, error) {
	if now == nil {
		now = time.Now
	}
	row, ok, err := storedKeyOf(ctx, st, aclKeyPurpose)
	if err != nil {
		return nil, err
	}
	if !ok {
		if _, _, err := st.LatestLedgerACLSignature(ctx); err == nil {
			return nil, errors.New("ledger ACL key: the ledger holds ACL roots signed by a node key that is missing from the database: restore it; kura makes one only for a ledger without ACL signatures")
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("ledger ACL key: %w", err)
		}
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		spki, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalECPrivateKey(priv)
		if err != nil {
			return nil, err
		}
		id := nodeID(spki)
		sealed, err := sealer.Seal(der, aclKeyAAD(id))
		clear(der)
		if err != nil {
			return nil, fmt.Errorf("ledger ACL key: seal: %w", err)
		}
		// As for the checkpoint key: racing processes all keep one.
		if row, err = createOnce(ctx, st, store.SigningKey{Purpose: aclKeyPurpose, ID: id, Alg: "ES256", CertDER: spki, Sealed: sealed, Created: now()}); err != nil {
			return nil, fmt.Errorf("ledger ACL key: %w", err)
		}
	}
	if nodeID(row.CertDER) != row.ID || row.Alg != "ES256" {
		return nil, errors.New("ledger ACL key: the stored row is inconsistent (edited outside kura?)")
	}
	der, err := sealer.Open(row.Sealed, aclKeyAAD(row.ID))
	if err != nil {
		return nil, fmt.Errorf("ledger ACL key: open: %w", err)
	}
	priv, err := x509.ParseECPrivateKey(der)
	clear(der)
	if err != nil {
		return nil, fmt.Errorf("ledger ACL key: %w", err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil || nodeID(spki) != row.ID {
		return nil, errors.New("ledger ACL key: the sealed key is not the stored public key's")
	}
	raw, err := priv.Bytes()
	if err != nil {
		return nil, err
	}
	ev, err := hkdf.Key(sha256.New, raw, nil, "kura ledger ACL commit evidence v1", 32)
	clear(raw)
	if err != nil {
		return nil, err
	}
	k := &ACLKey{priv: priv, nodeID: row.ID, certify: certify, now: now}
	copy(k.evidence[:], ev)
	if _, err := k.Chain(); err != nil {
		return nil, err
	}
	return k, nil
}

func nodeID(spki []byte) string {
	h := sha256.Sum256(spki)
	return hex.EncodeToString(h[:])
}

// NodeID is CCF's node id of the key: hex SHA-256 of its
// SubjectPublicKeyInfo.
func (k *ACLKey) NodeID() string { return k.nodeID }

// Public is the node's public key.
func (k *ACLKey) Public() *ecdsa.PublicKey { return &k.priv.PublicKey }

// Chain is the node certificate, then the certificates up to and including
// the service certificate (the last); reissued a week before it ends.
func (k *ACLKey) Chain() ([]*x509.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	if len(k.chain) > 0 && now.Add(reissueBefore).Before(k.chain[0].NotAfter) {
		return k.chain, nil
	}
	var chain []*x509.Certificate
	var err error
	if k.certify != nil {
		chain, err = k.certify(&k.priv.PublicKey, now)
	} else {
		var c *x509.Certificate
		c, err = selfSigned(k.priv, now)
		chain = []*x509.Certificate{c}
	}
	if err != nil {
		if len(k.chain) > 0 && now.Before(k.chain[0].NotAfter) {
			return k.chain, nil // keep serving the current one until it ends
		}
		return nil, fmt.Errorf("ledger ACL key: certificate: %w", err)
	}
	k.chain = chain
	return chain, nil
}

func selfSigned(priv *ecdsa.PrivateKey, now time.Time) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "kura ledger node"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}
