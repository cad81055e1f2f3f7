package intel

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"sync"
	"time"
)

// maxCached bounds each cache; a full cache starts over (a fleet has far
// fewer platforms than this, so that means someone is sending junk).
const maxCached = 4096

// ChainCache remembers PCK chains verified to one root pool, so a
// platform's chain (two P-256 verifications and path building) is checked
// once and not on every quote. An entry is used only while every
// certificate of its chain is valid; outside that window the chain is
// verified again, which then fails with the precise reason. The zero value
// is ready; it is safe for concurrent use. Use one cache per root pool.
type ChainCache struct {
	mu sync.Mutex
	m  map[[32]byte]cached
}

// cached is a verified result and when it holds.
type cached struct {
	chain    []*x509.Certificate
	col      *Collateral
	verified *Verified
	from, to time.Time
}

func (w cached) holds(now time.Time) bool { return !now.Before(w.from) && !now.After(w.to) }

// chainKey names a chain as offered: the leaf and the intermediates.
func chainKey(certs []*x509.Certificate) [32]byte {
	h := sha256.New()
	for _, c := range certs {
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(c.Raw))))
		h.Write(c.Raw)
	}
	var k [32]byte
	copy(k[:], h.Sum(nil))
	return k
}

// validity is when every certificate of chain is valid.
func validity(chain []*x509.Certificate) (from, to time.Time) {
	for i, c := range chain {
		if i == 0 || c.NotBefore.After(from) {
			from = c.NotBefore
		}
		if i == 0 || c.NotAfter.Before(to) {
			to = c.NotAfter
		}
	}
	return from, to
}

func (c *ChainCache) get(k [32]byte, now time.Time) ([]*x509.Certificate, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	w, ok := c.m[k]
	if !ok || !w.holds(now) {
		return nil, false
	}
	return w.chain, true
}

func (c *ChainCache) put(k [32]byte, chain []*x509.Certificate) {
	if c == nil {
		return
	}
	from, to := validity(chain)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCached {
		c.m = map[[32]byte]cached{}
	}
	c.m[k] = cached{chain: chain, from: from, to: to}
}

// collateralCache remembers verified collateral by the hash of its
// stored bytes, for as long as all its parts (documents, CRLs and every
// certificate of its chains) are valid.
type collateralCache struct {
	mu sync.Mutex
	m  map[[32]byte]cached
}

func (c *collateralCache) get(der []byte, now time.Time) (*Verified, bool) {
	_, v, ok := c.getBoth(der, now)
	return v, ok
}

// getBoth is get with the parsed collateral.
func (c *collateralCache) getBoth(der []byte, now time.Time) (*Collateral, *Verified, bool) {
	k := sha256.Sum256(der)
	c.mu.Lock()
	defer c.mu.Unlock()
	w, ok := c.m[k]
	if !ok || !w.holds(now) {
		return nil, nil, false
	}
	return w.col, w.verified, true
}

func (c *collateralCache) put(der []byte, col *Collateral, v *Verified) {
	from, to, err := col.Window()
	if err != nil {
		return
	}
	for _, ch := range [][]*x509.Certificate{col.TCBInfoChain, col.QEIdentityChain, col.PCKCRLChain, {v.Root}} {
		f, t := validity(ch)
		if f.After(from) {
			from = f
		}
		if t.Before(to) {
			to = t
		}
	}
	k := sha256.Sum256(der)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCached {
		c.m = map[[32]byte]cached{}
	}
	c.m[k] = cached{col: col, verified: v, from: from, to: to}
}

// CertCache remembers parsed certificates by the hash of their DER, so
// a platform's PCK chain, sent in every quote, is parsed once. The zero
// value is ready and safe for concurrent use; a nil *CertCache parses
// every time.
type CertCache struct {
	mu sync.Mutex
	m  map[[32]byte]*x509.Certificate
}

func (c *CertCache) parse(der []byte) (*x509.Certificate, error) {
	if c == nil {
		return x509.ParseCertificate(der)
	}
	k := sha256.Sum256(der)
	c.mu.Lock()
	cert, ok := c.m[k]
	c.mu.Unlock()
	if ok {
		return cert, nil
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCached {
		c.m = map[[32]byte]*x509.Certificate{}
	}
	c.m[k] = cert
	c.mu.Unlock()
	return cert, nil
}
