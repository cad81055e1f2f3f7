// Package amd is the AMD adapter of the collateral cache: it files the
// certificates and CRLs that SEV-SNP verification needs beyond what a
// request carries (VCEKs and VLEKs imported by an operator or seen in
// earlier verified requests, ASKs and ASVKs, ARK-signed CRLs) and reads
// them back for internal/attest/snp. It can also fetch VCEKs from AMD's key
// distribution service, but only when an operator enables it, with a
// bounded timeout.
//
// Nothing stored here is trusted by being stored: every certificate is
// chained to a pinned root by internal/attest/snp on use.
package amd

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/attest/collateral"
	"github.com/kura-project/kura/internal/attest/snp"
	"github.com/kura-project/kura/internal/fetch"
	"github.com/kura-project/kura/internal/store"
)

// Cache serves AMD endorsement keys and CRLs from the collateral cache and,
// if configured, from AMD KDS. It implements snp.KeySource,
// snp.KeyRecorder and snp.CRLSource.
type Cache struct {
	c   *collateral.Cache
	kds *KDS // nil: never touch the network
	// Roots, when set, are the pinned roots imported CRLs and intermediates
	// must be signed by.
	Roots *snp.Roots
}

func signedByPinned(crl *x509.RevocationList, roots []snp.Root, pl string) bool {
	for _, r := range roots {
		if r.ProductLine == pl && crl.CheckSignatureFrom(r.ARK) == nil {
			return true
		}
	}
	return false
}

// New returns the AMD cache over st; kds may be nil; now is the clock of
// the in-memory reuse of CRLs.
func New(st collateral.Store, kds *KDS, now func() time.Time) *Cache {
	a := &Cache{kds: kds}
	a.c = collateral.New(st, classifier{a}, now)
	return a
}

// classifier is the AMD Classifier; it reads the roots pinned at the time.
type classifier struct{ a *Cache }

func (c classifier) Classify(der []byte) (store.Collateral, error) { return c.a.classify(der) }

func vcekKey(pl string, hwid []byte, tcb uint64) string {
	return fmt.Sprintf("%s/%s/%016x", pl, hex.EncodeToString(hwid), tcb)
}

func vlekKey(pl string, tcb uint64) string { return fmt.Sprintf("%s/%016x", pl, tcb) }

// lookupKeys are the keys under which a report's endorsement key may be
// stored: one per product line, since a v2 report does not say its line.
func lookupKeys(r *snp.Report) []string {
	lines := []string{"Milan", "Genoa", "Turin"}
	if r.HasCPUID {
		if pl, ok := snp.ProductLineFromCPUID(r.Family, r.Model); ok {
			lines = []string{pl}
		}
	}
	var out []string
	for _, pl := range lines {
		if r.SigningKey == snp.VLEK {
			out = append(out, vlekKey(pl, r.ReportedTCB))
			continue
		}
		hw := r.ChipID
		if pl == "Turin" {
			hw = hw[:8]
		}
		out = append(out, vcekKey(pl, hw, r.ReportedTCB))
	}
	return out
}

// EndorsementKeys implements snp.KeySource.
func (c *Cache) EndorsementKeys(ctx context.Context, r *snp.Report) ([][]byte, error) {
	kind := "vcek"
	if r.SigningKey == snp.VLEK {
		kind = "vlek"
	}
	var out [][]byte
	for _, k := range lookupKeys(r) {
		items, err := c.c.Get(ctx, kind, k)
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			out = append(out, it.DER)
		}
	}
	if len(out) > 0 || c.kds == nil || r.SigningKey != snp.VCEK || !r.HasCPUID || r.MaskChipKey || allZero(r.ChipID) {
		return out, nil
	}
	pl, ok := snp.ProductLineFromCPUID(r.Family, r.Model)
	if !ok {
		return nil, nil
	}
	// Nothing is stored here: the verifier records the key through
	// RecordEndorsementKey once the report's signature has verified with it.
	der, err := c.kds.VCEK(ctx, pl, r.ChipID, r.ReportedTCB)
	if err != nil {
		return nil, err
	}
	return [][]byte{der}, nil
}

// RecordEndorsementKey implements snp.KeyRecorder: keys the verifier has
// chained to a pinned root are kept for reports that arrive without them.
func (c *Cache) RecordEndorsementKey(ctx context.Context, der []byte) error {
	return c.Put(ctx, der)
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// CRLs implements snp.CRLSource. CRLs are reused from memory for up to
// collateral.TTL: one imported through another kura node applies here
// within it.
func (c *Cache) CRLs(ctx context.Context, productLine string) ([]*x509.RevocationList, error) {
	return collateral.Cached(ctx, c.c, "crl", crlKey(productLine), parseCRLs)
}

// parseCRLs parses stored CRLs; an item that does not parse is skipped (the
// verifier requires a current one signed by the pinned ARK anyway).
func parseCRLs(items []store.Collateral) []*x509.RevocationList {
	var out []*x509.RevocationList
	for _, it := range items {
		if crl, err := x509.ParseRevocationList(it.DER); err == nil {
			out = append(out, crl)
		}
	}
	return out
}

// crlKey: AMD's CRL for a product line is issued by the ARK and covers both
// the ASK and the ASVK, so one CRL serves both key kinds.
func crlKey(pl string) string { return pl }

// Put stores one DER item (certificate or CRL), classifying it. ASK, ASVK and
// ARK certificates are refused: roots are pinned in configuration, never
// learned from collateral.
func (c *Cache) Put(ctx context.Context, der []byte) error { return c.c.Put(ctx, der) }

// classify validates one DER item and returns how it is stored.
func (c *Cache) classify(der []byte) (store.Collateral, error) {
	if cert, err := x509.ParseCertificate(der); err == nil {
		return c.classifyCert(cert)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return store.Collateral{}, errors.New("neither an X.509 certificate nor a CRL")
	}
	cn := crl.Issuer.CommonName
	pl, ok := strings.CutPrefix(cn, "ARK-")
	if !ok || pl == "" {
		return store.Collateral{}, fmt.Errorf("CRL issuer %q is not an AMD ARK", cn)
	}
	if c.Roots != nil && !signedByPinned(crl, c.Roots.All(), pl) {
		return store.Collateral{}, fmt.Errorf("CRL issued by %q is not signed by any pinned ARK-%s", cn, pl)
	}
	return store.Collateral{Kind: "crl", Key: crlKey(pl), DER: der, NotAfter: crl.NextUpdate}, nil
}

// errPinned marks an ARK that is already pinned: accepted, nothing stored.
var errPinned = fmt.Errorf("already pinned: %w", collateral.ErrSkip)

func (c *Cache) classifyCert(cert *x509.Certificate) (store.Collateral, error) {
	cn := cert.Subject.CommonName
	if pl, kind, ok := snp.IntermediateKind(cert); ok {
		// An ASK or ASVK is taken only if a pinned ARK signed it; it is
		// stored and pinned at every start (OpenAttestation).
		if c.Roots == nil {
			return store.Collateral{}, fmt.Errorf("certificate %q: intermediates can only be imported with the pinned roots known", cn)
		}
		if err := c.Roots.Clone().AddIntermediate(cert); err != nil {
			return store.Collateral{}, err
		}
		return store.Collateral{Kind: "intermediate", Key: intermediateKey(pl, kind), DER: cert.Raw, NotAfter: cert.NotAfter}, nil
	}
	if strings.HasPrefix(cn, "ARK-") {
		if c.Roots != nil && c.Roots.HasARK(cert) {
			return store.Collateral{}, errPinned
		}
		return store.Collateral{}, fmt.Errorf("certificate %q: an ARK is a trust anchor, never learned from collateral; pin new roots with the trust_roots setting", cn)
	}
	switch cn {
	case "SEV-VCEK", "SEV-VLEK":
	default:
		return store.Collateral{}, fmt.Errorf("certificate %q is not an AMD VCEK, VLEK, ASK, ASVK or ARK", cn)
	}
	ext, err := snp.ParseExtensions(cert)
	if err != nil {
		return store.Collateral{}, fmt.Errorf("certificate %q: %w", cert.Subject.CommonName, err)
	}
	pl, _, _ := strings.Cut(ext.ProductName, "-")
	tcb := ext.TCB(pl)
	if cert.Subject.CommonName == "SEV-VLEK" {
		return store.Collateral{Kind: "vlek", Key: vlekKey(pl, tcb), DER: cert.Raw, NotAfter: cert.NotAfter}, nil
	}
	if len(ext.HWID) == 0 {
		return store.Collateral{}, errors.New("VCEK has no hwID extension")
	}
	return store.Collateral{Kind: "vcek", Key: vcekKey(pl, ext.HWID, tcb), DER: cert.Raw, NotAfter: cert.NotAfter}, nil
}

func intermediateKey(pl string, kind snp.SigningKey) string { return pl + "/" + kind.String() }

// Intermediates returns the stored ASKs and ASVKs of a product line.
func (c *Cache) Intermediates(ctx context.Context, productLine string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for _, kind := range []snp.SigningKey{snp.VCEK, snp.VLEK} {
		items, err := c.c.Get(ctx, "intermediate", intermediateKey(productLine, kind))
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			if cert, err := x509.ParseCertificate(it.DER); err == nil {
				out = append(out, cert)
			}
		}
	}
	return out, nil
}

// Import stores every certificate and CRL in data (PEM with several blocks,
// or one DER item) and returns how many it stored; a file with one bad item
// stores nothing.
func (c *Cache) Import(ctx context.Context, data []byte) (int, error) {
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
		return 0, attest.ErrNotMine // a JSON document: another vendor's (Intel's bundles)
	}
	return c.c.Import(ctx, data, "CERTIFICATE", "X509 CRL")
}

// KDS fetches VCEKs from AMD's key distribution service. It remembers
// misses for MissTTL and merges concurrent fetches of the same key, so
// clients cannot turn kura into a request amplifier against AMD's
// rate-limited service.
type KDS struct {
	Base    string // default https://kdsintf.amd.com
	Client  *http.Client
	Timeout time.Duration    // per request; default 10 s
	MissTTL time.Duration    // how long a miss is remembered; default 10 min
	Now     func() time.Time // the clock of MissTTL; default time.Now

	mu       sync.Mutex
	misses   map[string]time.Time
	inflight map[string]*kdsFetch
}

type kdsFetch struct {
	done chan struct{}
	der  []byte
	err  error
}

// VCEK fetches the VCEK for a chip and TCB. AMD answering that it has no
// such key is the client's fault (a forged or unknown chip): it is an
// *attest.EvidenceError. Network failures are not.
func (k *KDS) VCEK(ctx context.Context, productLine string, chipID []byte, tcb uint64) ([]byte, error) {
	base := k.Base
	if base == "" {
		base = "https://kdsintf.amd.com"
	}
	url := snp.KDSURL(base, productLine, chipID, tcb)
	missTTL := k.MissTTL
	if missTTL == 0 {
		missTTL = 10 * time.Minute
	}
	now := time.Now
	if k.Now != nil {
		now = k.Now
	}
	k.mu.Lock()
	if k.misses == nil {
		k.misses, k.inflight = map[string]time.Time{}, map[string]*kdsFetch{}
	}
	if t, ok := k.misses[url]; ok && now().Sub(t) < missTTL {
		k.mu.Unlock()
		return nil, attest.Bad("VcekCertChain", "AMD KDS has no VCEK for chip %x… at TCB 0x%016x (cached answer)", chipID[:8], tcb)
	}
	f, ok := k.inflight[url]
	if !ok {
		f = &kdsFetch{done: make(chan struct{})}
		k.inflight[url] = f
		if len(k.misses) > 10000 {
			clear(k.misses)
		}
		k.mu.Unlock()
		f.der, f.err = k.get(ctx, url)
		k.mu.Lock()
		delete(k.inflight, url)
		if attest.IsEvidence(f.err) {
			k.misses[url] = now()
		}
		k.mu.Unlock()
		close(f.done)
		return f.der, f.err
	}
	k.mu.Unlock()
	select {
	case <-f.done:
		return f.der, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (k *KDS) get(ctx context.Context, url string) ([]byte, error) {
	timeout := k.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	a, err := fetch.Get(ctx, k.Client, url, timeout, snp.MaxCertificateSize)
	if err != nil {
		return nil, fmt.Errorf("fetch VCEK from AMD KDS: %w", err)
	}
	switch a.Status {
	case http.StatusOK:
		return a.Body, nil
	case http.StatusNotFound, http.StatusBadRequest:
		return nil, attest.Bad("VcekCertChain", "AMD KDS has no VCEK for this chip and TCB (%s)", a.Text)
	}
	return nil, fmt.Errorf("fetch VCEK from AMD KDS: answered %s", a.Text)
}
