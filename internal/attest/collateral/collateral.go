// Package collateral keeps the AMD certificates and CRLs that SEV-SNP
// verification needs beyond what a request carries: VCEKs and VLEKs imported
// by an operator (air-gapped sites) or seen in earlier verified requests, and
// CRLs. It can also fetch VCEKs from AMD's key distribution service, but
// only when an operator enables it, with a bounded timeout.
//
// Nothing stored here is trusted by being stored: every certificate is
// chained to a pinned root by internal/attest/snp on use.
package collateral

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/kura-project/kura/internal/attest/snp"
	"github.com/kura-project/kura/internal/store"
)

// Store is the part of the store collateral needs.
type Store interface {
	PutCollateral(ctx context.Context, c store.Collateral) error
	Collateral(ctx context.Context, kind, key string) ([]store.Collateral, error)
}

// Cache serves endorsement keys and CRLs from the store and, if configured,
// from AMD KDS. It implements snp.KeySource and snp.CRLSource.
type Cache struct {
	st  Store
	kds *KDS // nil: never touch the network
	// Roots, when set, are the pinned roots imported CRLs must be signed by.
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

// New returns a cache over st; kds may be nil.
func New(st Store, kds *KDS) *Cache { return &Cache{st: st, kds: kds} }

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
		items, err := c.st.Collateral(ctx, kind, k)
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			out = append(out, it.DER)
		}
	}
	if len(out) > 0 || c.kds == nil || r.SigningKey != snp.VCEK || !r.HasCPUID {
		return out, nil
	}
	pl, ok := snp.ProductLineFromCPUID(r.Family, r.Model)
	if !ok {
		return nil, nil
	}
	der, err := c.kds.VCEK(ctx, pl, r.ChipID, r.ReportedTCB)
	if err != nil {
		return nil, err
	}
	// Stored before verification; it is verified on every use, and a key
	// AMD served for this chip and TCB is worth keeping for air-gapped reuse.
	if err := c.Put(ctx, der); err != nil {
		return nil, err
	}
	return [][]byte{der}, nil
}

// CRLs implements snp.CRLSource.
func (c *Cache) CRLs(ctx context.Context, productLine string) ([]*x509.RevocationList, error) {
	items, err := c.st.Collateral(ctx, "crl", crlKey(productLine))
	if err != nil {
		return nil, err
	}
	var out []*x509.RevocationList
	for _, it := range items {
		if crl, err := x509.ParseRevocationList(it.DER); err == nil {
			out = append(out, crl)
		}
	}
	return out, nil
}

// crlKey: AMD's CRL for a product line is issued by the ARK and covers both
// the ASK and the ASVK, so one CRL serves both key kinds.
func crlKey(pl string) string { return pl }

// Put stores one DER item (certificate or CRL), classifying it. ASK, ASVK and
// ARK certificates are refused: roots are pinned in configuration, never
// learned from collateral.
func (c *Cache) Put(ctx context.Context, der []byte) error {
	if cert, err := x509.ParseCertificate(der); err == nil {
		return c.putCert(ctx, cert)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return errors.New("neither an X.509 certificate nor a CRL")
	}
	cn := crl.Issuer.CommonName
	pl, ok := strings.CutPrefix(cn, "ARK-")
	if !ok || pl == "" {
		return fmt.Errorf("CRL issuer %q is not an AMD ARK", cn)
	}
	if c.Roots != nil && !signedByPinned(crl, c.Roots.All(), pl) {
		return fmt.Errorf("CRL issued by %q is not signed by any pinned ARK-%s", cn, pl)
	}
	return c.st.PutCollateral(ctx, store.Collateral{Kind: "crl", Key: crlKey(pl), DER: der, NotAfter: crl.NextUpdate})
}

func (c *Cache) putCert(ctx context.Context, cert *x509.Certificate) error {
	switch cert.Subject.CommonName {
	case "SEV-VCEK", "SEV-VLEK":
	default:
		return fmt.Errorf("certificate %q: only VCEK and VLEK certificates are imported; ASK/ASVK/ARK roots are pinned in configuration", cert.Subject.CommonName)
	}
	ext, err := snp.ParseExtensions(cert)
	if err != nil {
		return fmt.Errorf("certificate %q: %w", cert.Subject.CommonName, err)
	}
	pl, _, _ := strings.Cut(ext.ProductName, "-")
	tcb := ext.TCB(pl)
	if cert.Subject.CommonName == "SEV-VLEK" {
		return c.st.PutCollateral(ctx, store.Collateral{Kind: "vlek", Key: vlekKey(pl, tcb), DER: cert.Raw, NotAfter: cert.NotAfter})
	}
	if len(ext.HWID) == 0 {
		return errors.New("VCEK has no hwID extension")
	}
	return c.st.PutCollateral(ctx, store.Collateral{Kind: "vcek", Key: vcekKey(pl, ext.HWID, tcb), DER: cert.Raw, NotAfter: cert.NotAfter})
}

// Import stores every certificate and CRL in data (PEM with several blocks,
// or one DER item) and returns how many it stored.
func (c *Cache) Import(ctx context.Context, data []byte) (int, error) {
	ders, err := splitPEM(data)
	if err != nil {
		return 0, err
	}
	for i, d := range ders {
		if err := c.Put(ctx, d); err != nil {
			return i, fmt.Errorf("item %d: %w", i+1, err)
		}
	}
	return len(ders), nil
}

// KDS fetches VCEKs from AMD's key distribution service.
type KDS struct {
	Base    string // default https://kdsintf.amd.com
	Client  *http.Client
	Timeout time.Duration // per request; default 10 s
}

// VCEK fetches the VCEK for a chip and TCB.
func (k *KDS) VCEK(ctx context.Context, productLine string, chipID []byte, tcb uint64) ([]byte, error) {
	base := k.Base
	if base == "" {
		base = "https://kdsintf.amd.com"
	}
	timeout := k.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	url := snp.KDSURL(base, productLine, chipID, tcb)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	cl := k.Client
	if cl == nil {
		cl = http.DefaultClient
	}
	resp, err := cl.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch VCEK from AMD KDS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch VCEK from AMD KDS: %s answered %s", url, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 64<<10))
}

// splitPEM returns the DER items of data: every PEM block (CERTIFICATE or
// X509 CRL), or data itself when it is not PEM.
func splitPEM(data []byte) ([][]byte, error) {
	trimmed := bytes.TrimSpace(data)
	if !bytes.HasPrefix(trimmed, []byte("-----BEGIN")) {
		if len(trimmed) == 0 {
			return nil, errors.New("empty file")
		}
		return [][]byte{data}, nil
	}
	var out [][]byte
	rest := trimmed
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "CERTIFICATE", "X509 CRL":
			out = append(out, blk.Bytes)
		default:
			return nil, fmt.Errorf("PEM block %q is neither a certificate nor a CRL", blk.Type)
		}
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("trailing data after the last PEM block")
	}
	return out, nil
}
