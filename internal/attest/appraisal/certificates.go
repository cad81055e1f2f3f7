package appraisal

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/audit"
	"github.com/kura-project/kura/internal/fault"
	"github.com/kura-project/kura/internal/seal"
	"github.com/kura-project/kura/internal/store"
)

// PolicyCertificates is the set of policy management certificates of MAA's
// isolated mode: only a policy signed by one of them is accepted, and only
// a request signed by one of them changes the set.
//
// The configured set (policy_signers) is the initial one, as an isolated
// MAA instance is created with its signers. Changes are kept in one row of
// the policy table, authenticated under the root like a policy row (the
// database is untrusted: an edited row is refused, never trusted), and
// bound to a digest of the configured set, so an operator who changes
// policy_signers starts the set again from the new configuration. With no
// configured set the instance is in MAA's default (AAD) mode: there are no
// policy management certificates and the set cannot be changed.
//
// Not covered by the MAC: a database writer can delete the row (the
// configured set is back in force) or put back an older authenticated row;
// policies share that limit.
type PolicyCertificates struct {
	p       *PolicyStore
	initial []*x509.Certificate
	digest  string // of the initial set, hex
}

// MaxPolicyCertificates bounds the set.
const MaxPolicyCertificates = 100

// certificatesRow is the policy-table key of the stored set; no
// attestation type is spelled with a dot.
const certificatesRow = "kura.policy-certificates"

// ErrCertificatesIntegrity reports a stored certificate set that failed
// authentication.
var ErrCertificatesIntegrity = errors.New("the stored policy management certificates failed their integrity check (edited outside kura?)")

// Certificates returns the policy management certificates over p, with
// initial as the configured set (none: default mode).
func (p *PolicyStore) Certificates(initial []*x509.Certificate) *PolicyCertificates {
	return &PolicyCertificates{p: p, initial: initial, digest: setDigest(initial)}
}

// Isolated reports whether the instance is in isolated mode.
func (c *PolicyCertificates) Isolated() bool { return len(c.initial) > 0 }

// storedSet is the stored row's text.
type storedSet struct {
	Initial      string   `json:"initial_sha256"` // setDigest of the configured set it grew from
	Certificates [][]byte `json:"certificates"`   // DER
}

// setDigest is a digest of a certificate set: of its distinct members,
// in no particular order, so that listing the configured files in another
// order (or twice) is the same configuration and keeps the stored set.
func setDigest(certs []*x509.Certificate) string {
	ders := make([][]byte, 0, len(certs))
	for _, c := range certs {
		ders = append(ders, c.Raw)
	}
	slices.SortFunc(ders, bytes.Compare)
	ders = slices.CompactFunc(ders, bytes.Equal)
	h := sha256.New()
	for _, d := range ders {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(d)))
		h.Write(n[:])
		h.Write(d)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// certificatesAAD binds every column of the stored set, under a label of
// its own so that no policy row's MAC can stand for it.
func certificatesAAD(p store.Policy) []byte {
	h := sha256.New()
	for _, part := range [][]byte{[]byte("kura/policy-certificates/v1"), []byte(p.Type), []byte(p.Text), []byte(p.JWS), p.Signer} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	return h.Sum(nil)
}

// List returns the current set: empty in default mode.
func (c *PolicyCertificates) List(ctx context.Context) ([]*x509.Certificate, error) {
	if !c.Isolated() {
		return nil, nil
	}
	return c.current(ctx, c.p.st)
}

// Trusted reports whether cert is a current policy management certificate.
// An error is a set that cannot be read or authenticated.
func (c *PolicyCertificates) Trusted(ctx context.Context, cert *x509.Certificate) (bool, error) {
	set, err := c.List(ctx)
	if err != nil {
		return false, err
	}
	return indexOf(set, cert) >= 0, nil
}

// TrustedIn is Trusted as read through st (a transaction's view), so that
// a write can be refused if its signer was removed meanwhile.
func (c *PolicyCertificates) TrustedIn(ctx context.Context, st store.Store, cert *x509.Certificate) (bool, error) {
	if !c.Isolated() {
		return true, nil
	}
	set, err := c.current(ctx, st)
	if err != nil {
		return false, err
	}
	return indexOf(set, cert) >= 0, nil
}

func indexOf(set []*x509.Certificate, cert *x509.Certificate) int {
	if cert == nil {
		return -1
	}
	for i, s := range set {
		if bytes.Equal(s.Raw, cert.Raw) {
			return i
		}
	}
	return -1
}

// current reads the set through st (the store, or a transaction's view).
func (c *PolicyCertificates) current(ctx context.Context, st interface {
	GetPolicy(ctx context.Context, typ string) (store.Policy, error)
}) ([]*x509.Certificate, error) {
	row, err := st.GetPolicy(ctx, certificatesRow)
	if errors.Is(err, store.ErrNotFound) {
		return c.initial, nil
	}
	if err != nil {
		return nil, &attest.UnavailableError{Err: fmt.Errorf("policy management certificates: %w", err)}
	}
	if c.p.mac == nil {
		return nil, &attest.UnavailableError{Err: errors.New("policy management certificates: cannot authenticate the stored set without the root key (unseal key)")}
	}
	if _, err := c.p.mac.Open(row.MAC, certificatesAAD(row)); err != nil || row.Type != certificatesRow {
		if err != nil && !errors.Is(err, seal.ErrNotAuthentic) {
			return nil, &attest.UnavailableError{Err: fmt.Errorf("policy management certificates: authenticating the stored set: %w", err)}
		}
		return nil, &attest.UnavailableError{Err: ErrCertificatesIntegrity}
	}
	var s storedSet
	if err := json.Unmarshal([]byte(row.Text), &s); err != nil {
		return nil, &attest.UnavailableError{Err: fmt.Errorf("policy management certificates: the authenticated stored set does not decode: %w", err)}
	}
	if s.Initial != c.digest {
		// policy_signers changed since the set was stored: the
		// operator's configuration starts it again.
		return c.initial, nil
	}
	out := make([]*x509.Certificate, 0, len(s.Certificates))
	for _, der := range s.Certificates {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, &attest.UnavailableError{Err: fmt.Errorf("policy management certificates: an authenticated stored certificate does not parse: %w", err)}
		}
		out = append(out, cert)
	}
	return out, nil
}

// Change is a request to add or remove a policy management certificate.
type Change struct {
	Cert   *x509.Certificate // the certificate to add or remove
	Signer *x509.Certificate // whose key signed the request (verified by the caller)
	JWS    string            // the request as sent, kept with the stored set
}

// Thumbprint is MAA's x-ms-certificate-thumbprint of cert: the SHA-1 of
// its DER, upper-case hex.
func Thumbprint(cert *x509.Certificate) string {
	sum := sha1.Sum(cert.Raw)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// errUnchanged ends a transaction that has nothing to change.
var errUnchanged = errors.New("unchanged")

// Add adds ch.Cert to the set, if ch.Signer is in it. Adding a member
// changes nothing and records nothing. It is refused in default mode.
func (c *PolicyCertificates) Add(ctx context.Context, ch Change) error {
	if err := c.check(ch); err != nil {
		return err
	}
	if err := usableKey(ch.Cert); err != nil {
		return err
	}
	return c.change(ctx, "policy.certificate.add", ch, func(set []*x509.Certificate) ([]*x509.Certificate, error) {
		if indexOf(set, ch.Cert) >= 0 {
			return nil, errUnchanged
		}
		if len(set) >= MaxPolicyCertificates {
			return nil, fault.Conflicting("the set already holds %d policy management certificates, the most kura keeps; remove one first", len(set))
		}
		return append(append([]*x509.Certificate{}, set...), ch.Cert), nil
	})
}

// Remove removes ch.Cert from the set, if ch.Signer is in it. Removing a
// certificate that is not in the set changes nothing; the last one cannot
// be removed. It is refused in default mode.
func (c *PolicyCertificates) Remove(ctx context.Context, ch Change) error {
	if err := c.check(ch); err != nil {
		return err
	}
	return c.change(ctx, "policy.certificate.remove", ch, func(set []*x509.Certificate) ([]*x509.Certificate, error) {
		i := indexOf(set, ch.Cert)
		if i < 0 {
			return nil, errUnchanged
		}
		if len(set) == 1 {
			return nil, fault.Conflicting("certificate %s is the last policy management certificate; it cannot be removed (add another first)", Thumbprint(ch.Cert))
		}
		return append(append([]*x509.Certificate{}, set[:i]...), set[i+1:]...), nil
	})
}

// ErrNotIsolated refuses a change of the set in default mode.
var ErrNotIsolated = fault.Conflicting("this instance is not in isolated mode (no policy_signers are configured): it has no policy management certificates to add or remove")

func (c *PolicyCertificates) check(ch Change) error {
	if !c.Isolated() {
		return ErrNotIsolated
	}
	if ch.Cert == nil || ch.Signer == nil {
		return fault.Bad("", "a policy management certificate change needs the certificate and the request's signer")
	}
	return nil
}

// usableKey refuses certificates whose key cannot verify a policy (RS256,
// ES256, ES384).
func usableKey(cert *x509.Certificate) error {
	switch k := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fault.Bad("policyCertificate", "the RSA key of certificate %s has %d bits; at least 2048 are required", Thumbprint(cert), k.N.BitLen())
		}
		return nil
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() || k.Curve == elliptic.P384() {
			return nil
		}
		return fault.Bad("policyCertificate", "the EC key of certificate %s is on %s; P-256 or P-384 is required", Thumbprint(cert), k.Curve.Params().Name)
	}
	return fault.Bad("policyCertificate", "certificate %s has a %T key; an RSA or EC key is required", Thumbprint(cert), cert.PublicKey)
}

// change applies edit to the set in one transaction with its audit record:
// the signer's membership is checked against the set the transaction reads.
func (c *PolicyCertificates) change(ctx context.Context, action string, ch Change, edit func([]*x509.Certificate) ([]*x509.Certificate, error)) error {
	if c.p.mac == nil {
		return &attest.UnavailableError{Err: errors.New("cannot store policy management certificates without the root key")}
	}
	certSum, signerSum := sha256.Sum256(ch.Cert.Raw), sha256.Sum256(ch.Signer.Raw)
	e := audit.Event{Action: action, Object: "policy-certificates/" + hex.EncodeToString(certSum[:]), Details: map[string]string{
		"thumbprint":    Thumbprint(ch.Cert),
		"subject":       ch.Cert.Subject.String(),
		"signer_sha256": hex.EncodeToString(signerSum[:]),
	}}
	err := audit.Apply(ctx, c.p.audit, e, func(tx store.Store) error {
		set, err := c.current(ctx, tx)
		if err != nil {
			return err
		}
		if indexOf(set, ch.Signer) < 0 {
			return fault.Bad("x5c", "the request is signed by certificate %s (%s), which is not a policy management certificate of this instance", Thumbprint(ch.Signer), ch.Signer.Subject)
		}
		next, err := edit(set)
		if err != nil {
			return err
		}
		s := storedSet{Initial: c.digest}
		for _, cert := range next {
			s.Certificates = append(s.Certificates, cert.Raw)
		}
		text, err := json.Marshal(s)
		if err != nil {
			return err
		}
		row := store.Policy{Type: certificatesRow, Text: string(text), JWS: ch.JWS, Signer: ch.Signer.Raw, Updated: c.p.now()}
		if row.MAC, err = c.p.mac.Seal(nil, certificatesAAD(row)); err != nil {
			return &attest.UnavailableError{Err: fmt.Errorf("authenticating the policy management certificates: %w", err)}
		}
		return tx.PutPolicy(ctx, row)
	})
	switch {
	case errors.Is(err, errUnchanged):
		return nil
	case err != nil && fault.Of(err) == fault.Internal:
		return &attest.UnavailableError{Err: err} // the store failed
	}
	return err
}
