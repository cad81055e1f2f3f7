package snp

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sync"
	"time"

	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/p384"
)

// KeySource finds endorsement key certificates (DER) for reports that arrive
// without one: a local cache of imported or previously seen keys, and, when
// an operator enables it, AMD's key distribution service.
type KeySource interface {
	EndorsementKeys(ctx context.Context, r *Report) ([][]byte, error)
}

// CRLSource returns the CRLs on file for a product line. The verifier uses
// the newest one signed by the ARK the endorsement key chains to; a CRL that
// applies is always enforced, and an expired one fails closed.
type CRLSource interface {
	CRLs(ctx context.Context, productLine string) ([]*x509.RevocationList, error)
}

// KeyRecorder is implemented by key sources that keep endorsement keys: the
// verifier hands them every key it has newly chained to a pinned root, so a
// key fetched once (or sent once) serves later reports that arrive without it.
type KeyRecorder interface {
	RecordEndorsementKey(ctx context.Context, der []byte) error
}

// Verifier checks reports against pinned roots. It caches endorsement keys it
// has already chained to a root, so a repeat verification costs one P-384
// signature check. Safe for concurrent use.
type Verifier struct {
	roots *Roots
	keys  KeySource
	crls  CRLSource

	mu       sync.RWMutex
	verified map[[32]byte]*endorsement
	crlOK    map[[32]byte]bool
	certs    map[[32]byte]*x509.Certificate // parsed certificates by SHA-256 of their DER

	// RequireCRL makes verification fail when no current CRL from the
	// endorsement key's ARK is on file. Off by default: AMD supersedes keys
	// through TCB updates far more often than it revokes an ASK.
	RequireCRL bool
	// Hint, when set, explains an endorsement key that chains to no
	// trusted root (e.g. simulated evidence); "" adds nothing.
	Hint      func(leaf *x509.Certificate) string
	maxCached int
	fast      *fastKeys
}

// endorsement is a VCEK or VLEK whose chain has been verified once. A key
// may chain through more than one pinned intermediate (AMD reissues ASK
// certificates for the same key); each path has its own validity window.
type endorsement struct {
	cert  *x509.Certificate
	pub   *ecdsa.PublicKey
	ext   *Extensions
	id    certIdentity
	paths []path
	fast  fastKeyState
}

type path struct {
	root      Root
	notBefore time.Time // latest NotBefore of leaf, intermediate, ARK
	notAfter  time.Time // earliest NotAfter of the three
}

// pathAt returns the first path valid at now.
func (e *endorsement) pathAt(now time.Time) (path, bool) {
	for _, p := range e.paths {
		if !now.Before(p.notBefore) && !now.After(p.notAfter) {
			return p, true
		}
	}
	return e.paths[0], false
}

// NewVerifier returns a verifier trusting roots. keys and crls may be nil.
func NewVerifier(roots *Roots, keys KeySource, crls CRLSource) *Verifier {
	if roots == nil {
		roots = &Roots{}
	}
	return &Verifier{roots: roots, keys: keys, crls: crls,
		verified: map[[32]byte]*endorsement{}, crlOK: map[[32]byte]bool{},
		certs: map[[32]byte]*x509.Certificate{}, maxCached: 4096, fast: newFastKeys()}
}

// Evidence is a report with the certificates that came with it.
type Evidence struct {
	Report *Report
	// Certs are certificates sent with the report. Only VCEK/VLEK leaves are
	// used; ASK and ARK certificates here are ignored in favour of pinned roots.
	Certs []*x509.Certificate
}

// Result is a verified report.
type Result struct {
	Report      *Report
	ProductLine string
	Key         *x509.Certificate
	Extensions  *Extensions
	Simulated   bool
	root        Root
}

// Verify checks the report's signature and its endorsement key's chain to a
// pinned root at time now, and that the key was issued for this chip and TCB.
func (v *Verifier) Verify(ctx context.Context, ev Evidence, now time.Time) (*Result, error) {
	r := ev.Report
	if r == nil {
		return nil, attest.Bad("SnpReport", "missing")
	}
	candidates, err := v.candidates(ctx, ev)
	if err != nil {
		return nil, err
	}
	var firstErr error
	for _, c := range candidates {
		res, fresh, err := v.verifyWith(ctx, r, c, now)
		if err == nil {
			if err := checkSentChain(ev.Certs, c, res); err != nil {
				return nil, err
			}
			if rec, ok := v.keys.(KeyRecorder); ok && fresh {
				// Best effort: the key is re-verified on every use, so a
				// failed write only costs a later cache miss.
				_ = rec.RecordEndorsementKey(ctx, c.Raw)
			}
			return res, nil
		}
		var ue *attest.UnavailableError
		if errors.As(err, &ue) {
			return nil, err
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

// checkSentChain refuses evidence whose accompanying ASK/ARK certificates are
// not the pinned ones for the endorsement key's product line. They are never
// used for trust, but a chain from another product line means the evidence was
// assembled wrongly, and saying so beats silently ignoring it.
func checkSentChain(sent []*x509.Certificate, leaf *x509.Certificate, res *Result) error {
	for _, c := range sent {
		if c == leaf || c.Subject.CommonName == leaf.Subject.CommonName {
			continue
		}
		if !bytes.Equal(c.Raw, res.root.Intermediate.Raw) && !bytes.Equal(c.Raw, res.root.ARK.Raw) {
			return attest.Bad("VcekCertChain", "certificate %q (issuer %q) is not part of the %s chain of this %s", c.Subject.CommonName, c.Issuer.CommonName, res.ProductLine, res.Report.SigningKey)
		}
	}
	return nil
}

// candidates lists the endorsement key certificates to try, evidence first.
func (v *Verifier) candidates(ctx context.Context, ev Evidence) ([]*x509.Certificate, error) {
	r := ev.Report
	want := "SEV-VCEK"
	if r.SigningKey == VLEK {
		want = "SEV-VLEK"
	}
	var out []*x509.Certificate
	var other []string
	for _, c := range ev.Certs {
		if c.Subject.CommonName == want {
			out = append(out, c)
		} else {
			other = append(other, c.Subject.CommonName)
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	if v.keys != nil {
		ders, err := v.keys.EndorsementKeys(ctx, r)
		if err != nil {
			return nil, &attest.UnavailableError{Err: fmt.Errorf("look up %s: %w", r.SigningKey, err)}
		}
		for _, d := range ders {
			c, err := x509.ParseCertificate(d)
			if err != nil {
				continue // a corrupt cache entry must not decide; the next one may
			}
			if c.Subject.CommonName == want {
				out = append(out, c)
			}
		}
	}
	if len(out) == 0 {
		if len(other) > 0 {
			return nil, attest.Bad("VcekCertChain", "the report is signed by a %s but the chain holds none (found %q)", r.SigningKey, other)
		}
		return nil, attest.Bad("VcekCertChain", "the report is signed by a %s; none was sent and none is cached for chip %s at TCB 0x%016x (import it with `kura collateral import`)", r.SigningKey, shortHex(r.ChipID), r.ReportedTCB)
	}
	return out, nil
}

func shortHex(b []byte) string {
	h := hexs(b)
	if len(h) > 16 {
		return h[:16] + "…"
	}
	return h
}

// verifyWith verifies r with one candidate key; fresh reports that the key's
// chain was verified now rather than found in the cache.
func (v *Verifier) verifyWith(ctx context.Context, r *Report, leaf *x509.Certificate, now time.Time) (*Result, bool, error) {
	e, fresh, err := v.endorse(leaf)
	if err != nil {
		return nil, false, err
	}
	p, ok := e.pathAt(now)
	if !ok {
		return nil, false, validityError(e, p, now)
	}
	if err := v.checkRevocation(ctx, e, p, now); err != nil {
		return nil, false, err
	}
	if e.id.kind != r.SigningKey {
		return nil, false, attest.Bad("VcekCertChain", "report is signed by a %s but the certificate is a %s", r.SigningKey, e.id.kind)
	}
	if err := checkBinding(r, e); err != nil {
		return nil, false, err
	}
	if err := v.fast.verify(&e.fast, r, e.pub, now); err != nil {
		return nil, false, err
	}
	return &Result{Report: r, ProductLine: e.id.productLine, Key: e.cert, Extensions: e.ext, Simulated: p.root.Simulated, root: p.root}, fresh, nil
}

// MaxCertificateSize bounds certificates taken from requests.
const MaxCertificateSize = 8 << 10

// parseCertificate parses DER, reusing the parse of identical bytes seen
// before: clients send the same VCEK, ASK and ARK with every report, and
// parsing them costs more than the rest of the request's decoding. The
// parsed certificate is only a cache of the bytes; trust is decided later.
func (v *Verifier) parseCertificate(der []byte) (*x509.Certificate, error) {
	if len(der) > MaxCertificateSize {
		return nil, fmt.Errorf("certificate of %d bytes exceeds %d (AMD certificates are under 2 KiB)", len(der), MaxCertificateSize)
	}
	key := sha256.Sum256(der)
	v.mu.RLock()
	c := v.certs[key]
	v.mu.RUnlock()
	if c != nil {
		return c, nil
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	if len(v.certs) >= v.maxCached {
		clear(v.certs)
	}
	v.certs[key] = c
	v.mu.Unlock()
	return c, nil
}

// endorse returns the verified endorsement for leaf, checking its chain on
// first sight. Time validity is not cached: it is checked on every call.
func (v *Verifier) endorse(leaf *x509.Certificate) (*endorsement, bool, error) {
	key := sha256.Sum256(leaf.Raw)
	v.mu.RLock()
	e := v.verified[key]
	v.mu.RUnlock()
	if e != nil {
		return e, false, nil
	}
	e, err := v.chain(leaf)
	if err != nil {
		return nil, false, err
	}
	v.mu.Lock()
	if len(v.verified) >= v.maxCached {
		clear(v.verified) // simple bound; re-verifying costs ~1 ms per key
	}
	v.verified[key] = e
	v.mu.Unlock()
	return e, true, nil
}

func (v *Verifier) chain(leaf *x509.Certificate) (_ *endorsement, err error) {
	const field = "VcekCertChain"
	id, err := identify(leaf)
	if err != nil {
		return nil, attest.BadWrap(field, err, "endorsement key certificate")
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P384() {
		return nil, attest.Bad(field, "%s public key is not ECDSA P-384", id.kind)
	}
	ext, err := ParseExtensions(leaf)
	if err != nil {
		return nil, attest.BadWrap(field, err, "%s extensions", id.kind)
	}
	if id.productLine == "Turin" && !ext.HasFMC {
		return nil, attest.Bad(field, "Turin %s has no fmcSPL extension (%v.3.9)", id.kind, kdsArc)
	}
	if !productNameMatches(ext.ProductName, id.productLine) {
		return nil, attest.Bad(field, "%s productName %q does not match its issuer %q", id.kind, ext.ProductName, leaf.Issuer.CommonName)
	}
	if v.Hint != nil {
		if h := v.Hint(leaf); h != "" {
			defer func() {
				var ee *attest.EvidenceError
				if errors.As(err, &ee) {
					ee.Reason = h + " (" + ee.Reason + ")"
				}
			}()
		}
	}
	roots := v.roots.For(id.productLine, id.kind)
	if len(roots) == 0 {
		return nil, attest.Bad(field, "no trusted AMD root for product line %q (%s)", id.productLine, id.kind)
	}
	var lastErr error
	e := &endorsement{cert: leaf, pub: pub, ext: ext, id: id}
	e.fast.id = fastKeyID(pub)
	for _, root := range roots {
		if err := leaf.CheckSignatureFrom(root.Intermediate); err != nil {
			lastErr = err
			continue
		}
		e.paths = append(e.paths, path{root: root,
			notBefore: latest(leaf.NotBefore, root.Intermediate.NotBefore, root.ARK.NotBefore),
			notAfter:  earliest(leaf.NotAfter, root.Intermediate.NotAfter, root.ARK.NotAfter)})
	}
	if len(e.paths) > 0 {
		return e, nil
	}
	inter := "ASK"
	if id.kind == VLEK {
		inter = "ASVK"
	}
	return nil, attest.BadWrap(field, lastErr, "%s is not signed by any trusted %s-%s", id.kind, inter, id.productLine)
}

func validityError(e *endorsement, p path, now time.Time) error {
	for _, c := range []struct {
		name string
		cert *x509.Certificate
	}{{e.id.kind.String(), e.cert}, {"ASK/ASVK", p.root.Intermediate}, {"ARK", p.root.ARK}} {
		if now.Before(c.cert.NotBefore) {
			return attest.Bad("VcekCertChain", "%s is not valid before %s (verification time %s)", c.name, c.cert.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
		if now.After(c.cert.NotAfter) {
			return attest.Bad("VcekCertChain", "%s expired at %s (verification time %s)", c.name, c.cert.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
	}
	return attest.Bad("VcekCertChain", "certificate chain not valid at %s", now.UTC().Format(time.RFC3339))
}

// checkRevocation applies the CRLs on file that the endorsement key's ARK
// signed and that were issued by the verification time. AMD publishes one CRL
// for VCEK chains and one for VLEK chains per product line, both from the
// ARK; revocations are applied from all of them (a revoked certificate stays
// revoked), and the newest must still be current, else verification fails
// closed.
func (v *Verifier) checkRevocation(ctx context.Context, e *endorsement, p path, now time.Time) error {
	if v.crls == nil {
		if v.RequireCRL {
			return attest.Bad("collateral", "a current %s CRL is required and no CRL source is configured", e.id.productLine)
		}
		return nil
	}
	crls, err := v.crls.CRLs(ctx, e.id.productLine)
	if err != nil {
		return &attest.UnavailableError{Err: fmt.Errorf("load CRLs for %s: %w", e.id.productLine, err)}
	}
	var newest *x509.RevocationList
	var applicable []*x509.RevocationList
	for _, c := range crls {
		if now.Before(c.ThisUpdate) || !v.signedByARK(c, p.root.ARK) {
			continue // not yet issued at the verification time, or another root's CRL
		}
		applicable = append(applicable, c)
		if newest == nil || c.ThisUpdate.After(newest.ThisUpdate) {
			newest = c
		}
	}
	if newest == nil {
		if v.RequireCRL {
			return attest.Bad("collateral", "a current %s CRL is required and none signed by ARK-%s is on file (import one with `kura collateral import`)", e.id.productLine, e.id.productLine)
		}
		return nil
	}
	if !newest.NextUpdate.IsZero() && now.After(newest.NextUpdate) {
		return attest.Bad("collateral", "the newest %s CRL on file expired at %s (verification time %s); import a current CRL", e.id.productLine,
			newest.NextUpdate.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	for _, crl := range applicable {
		for _, rc := range crl.RevokedCertificateEntries {
			for _, c := range []*x509.Certificate{p.root.Intermediate, e.cert} {
				if rc.SerialNumber.Cmp(c.SerialNumber) == 0 && bytes.Equal(c.RawIssuer, crl.RawIssuer) {
					return attest.Bad("VcekCertChain", "certificate %q (serial %s) is revoked by the %s CRL", c.Subject.CommonName, c.SerialNumber, e.id.productLine)
				}
			}
		}
	}
	return nil
}

// signedByARK reports whether crl is signed by ark, caching the answer.
func (v *Verifier) signedByARK(crl *x509.RevocationList, ark *x509.Certificate) bool {
	h := sha256.New()
	h.Write(crl.Raw)
	h.Write(ark.Raw)
	var key [32]byte
	h.Sum(key[:0])
	v.mu.RLock()
	ok, seen := v.crlOK[key]
	v.mu.RUnlock()
	if seen {
		return ok
	}
	ok = crl.CheckSignatureFrom(ark) == nil
	v.mu.Lock()
	if len(v.crlOK) >= v.maxCached {
		clear(v.crlOK)
	}
	v.crlOK[key] = ok
	v.mu.Unlock()
	return ok
}

func productNameMatches(name, productLine string) bool {
	base, _, _ := bytesCut(name, '-')
	return base == productLine
}

func bytesCut(s string, sep byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// checkBinding checks that the key was issued for this chip (VCEK) and for the
// TCB the report claims, in the product line's TCB layout.
func checkBinding(r *Report, e *endorsement) error {
	const field = "VcekCertChain"
	pl := e.id.productLine
	if r.HasCPUID {
		if cpl, ok := ProductLineFromCPUID(r.Family, r.Model); ok && cpl != pl {
			return attest.Bad(field, "report CPUID family %02xh model %02xh is a %s part but the key is issued by %s", r.Family, r.Model, cpl, e.cert.Issuer.CommonName)
		}
	}
	if e.id.kind == VCEK {
		if len(e.ext.HWID) == 0 {
			return attest.Bad(field, "VCEK has no hwID extension")
		}
		if !r.MaskChipKey {
			hw := e.ext.HWID
			want := r.ChipID
			if len(hw) < len(want) {
				// Turin VCEKs carry the first 8 bytes; the rest of CHIP_ID is zero.
				if !allZero(want[len(hw):]) {
					return attest.Bad("SnpReport", "CHIP_ID has non-zero bytes past the %d-byte hwID of a %s VCEK", len(hw), pl)
				}
				want = want[:len(hw)]
			}
			if !bytes.Equal(hw, want) {
				return attest.Bad(field, "VCEK was issued for chip %s, the report comes from chip %s", shortHex(hw), shortHex(r.ChipID))
			}
		}
	} else if e.ext.CSPID == "" {
		return attest.Bad(field, "VLEK has no csp_id extension")
	}
	got := DecodeTCB(r.ReportedTCB, pl)
	certTCB := DecodeTCB(e.ext.TCB(pl), pl)
	if got.BL != certTCB.BL || got.TEE != certTCB.TEE || got.SNP != certTCB.SNP || got.UCODE != certTCB.UCODE || got.FMC != certTCB.FMC {
		return attest.Bad(field, "reported TCB %s (%s) does not match the %s's TCB %s", got, describeTCB(got), e.id.kind, describeTCB(certTCB))
	}
	return nil
}

func describeTCB(t TCB) string {
	if t.Turin {
		return fmt.Sprintf("fmc=%d bl=%d tee=%d snp=%d ucode=%d", t.FMC, t.BL, t.TEE, t.SNP, t.UCODE)
	}
	return fmt.Sprintf("bl=%d tee=%d snp=%d ucode=%d", t.BL, t.TEE, t.SNP, t.UCODE)
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// checkSignature verifies the ECDSA P-384/SHA-384 signature over the signed
// prefix. r and s are stored little-endian in 72-byte fields.
func checkSignature(r *Report, pub *ecdsa.PublicKey) error {
	return checkSignatureWith(r, func(digest []byte, rr, ss *big.Int) bool { return ecdsa.Verify(pub, digest, rr, ss) })
}

func checkSignatureWith(r *Report, verify func(digest []byte, r, s *big.Int) bool) error {
	digest := sha512.Sum384(r.Raw[:SignedSize])
	rr := new(big.Int).SetBytes(reversed(r.SignatureR))
	ss := new(big.Int).SetBytes(reversed(r.SignatureS))
	if !verify(digest[:], rr, ss) {
		return attest.Bad("SnpReport", "signature does not verify with the endorsement key (report altered, or signed by another key)")
	}
	return nil
}

func reversed(b []byte) []byte {
	out := slices.Clone(b)
	slices.Reverse(out)
	return out
}

func latest(ts ...time.Time) time.Time {
	m := ts[0]
	for _, t := range ts[1:] {
		if t.After(m) {
			m = t
		}
	}
	return m
}

func earliest(ts ...time.Time) time.Time {
	m := ts[0]
	for _, t := range ts[1:] {
		if t.Before(m) {
			m = t
		}
	}
	return m
}

// VerifySignature checks only a report's signature with a known key: the
// per-report cost once the key's chain is verified and cached. Benchmarks use
// it as the floor of an attestation.
func VerifySignature(r *Report, pub *ecdsa.PublicKey) error { return checkSignature(r, pub) }

// VerifySignatureTable is VerifySignature through a precomputed key, the way
// the verifier checks reports from keys it sees often.
func VerifySignatureTable(r *Report, k *p384.Key) error { return checkSignatureWith(r, k.Verify) }
